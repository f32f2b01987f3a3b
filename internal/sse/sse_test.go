package sse_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/sse"
)

func TestFrame(t *testing.T) {
	tests := []struct {
		id, event, data, want string
	}{
		{"c1", "worker.upserted", `{"a":1}`, "id: c1\nevent: worker.upserted\ndata: {\"a\":1}\n\n"},
		{"", "resync", `{}`, "event: resync\ndata: {}\n\n"},
	}
	for _, tt := range tests {
		if got := string(sse.Frame(tt.id, tt.event, []byte(tt.data))); got != tt.want {
			t.Errorf("Frame(%q, %q) = %q, want %q", tt.id, tt.event, got, tt.want)
		}
	}
}

var errEnd = errors.New("end")

func TestServe(t *testing.T) {
	tests := []struct {
		name       string
		events     []string
		encodeFail string
		want       string
		wantEnded  error
		wantFailed string
	}{
		{"events then end", []string{"a", "b"}, "", ": ok\n\nevent: e\ndata: a\n\nevent: e\ndata: b\n\n", errEnd, ""},
		{"encoding fails", []string{"a", "bad", "c"}, "bad", ": ok\n\nevent: e\ndata: a\n\n", nil, "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			var ended error
			var failed string
			w := httptest.NewRecorder()
			sse.Serve(t.Context(), w, sse.Stream[string]{
				Next: func(context.Context) (string, error) {
					if i == len(tt.events) {
						return "", errEnd
					}
					i++
					return tt.events[i-1], nil
				},
				Encode: func(s string) ([]byte, error) {
					if s == tt.encodeFail {
						return nil, errors.New("cannot")
					}
					return sse.Frame("", "e", []byte(s)), nil
				},
				Heartbeat:    time.Hour,
				Ended:        func(err error) { ended = err },
				EncodeFailed: func(s string, _ error) { failed = s },
			})
			if got := w.Body.String(); got != tt.want {
				t.Errorf("body = %q, want %q", got, tt.want)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !errors.Is(ended, tt.wantEnded) || (tt.wantEnded == nil && ended != nil) {
				t.Errorf("Ended got %v, want %v", ended, tt.wantEnded)
			}
			if failed != tt.wantFailed {
				t.Errorf("EncodeFailed got %q, want %q", failed, tt.wantFailed)
			}
		})
	}
}
