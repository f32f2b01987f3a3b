package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

func init() {
	// kin-openapi has no decoder for event streams; the contract declares
	// the body a string (EventStreamText), which is what this gives it.
	openapi3filter.RegisterBodyDecoder("text/event-stream",
		func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		})
}

// hangGuard bounds every wait of the stream tests; it is never what a test
// asserts.
const hangGuard = 60 * time.Second

// sseEvent is one frame of an event stream.
type sseEvent struct {
	ID, Kind string
	Data     json.RawMessage
}

// eventSchemas names the contract schema of each event kind's data.
var eventSchemas = map[string]string{
	"worker_upserted":     "WorkerSummary",
	"worker_removed":      "WorkerRemovedEvent",
	"transcript_appended": "TranscriptAppendedEvent",
	"resync":              "ResyncEvent",
}

// sseStream is an open event stream over a real HTTP connection. Every
// frame is checked against the contract as it is read.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
	ended  chan struct{}
}

// openSSE opens an event stream and checks the answer's status and
// headers, and that the first bytes are the ": ok" comment. The stream is
// closed when the test ends.
func openSSE(t *testing.T, base, path string, header ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		_ = resp.Body.Close()
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("stream Content-Type %q", ct)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" ||
		resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("stream headers %v", resp.Header)
	}
	// The answer's status and headers against the contract (the body is
	// checked frame by frame as it is read).
	checkResponse(t, http.MethodGet, path, response{Status: resp.StatusCode, Header: resp.Header, Body: []byte(": ok\n\n")})
	s := &sseStream{t: t, resp: resp, cancel: cancel, events: make(chan sseEvent, 1024), ended: make(chan struct{})}
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || first != ": ok\n" {
		t.Fatalf("first line %q %v", first, err)
	}
	go s.read(rd)
	t.Cleanup(s.Close)
	return s
}

// header is the stream's response header.
func (s *sseStream) header() http.Header { return s.resp.Header }

// read parses frames until the body ends. Problems are reported with
// t.Errorf (safe from another goroutine).
func (s *sseStream) read(rd *bufio.Reader) {
	defer close(s.ended)
	defer close(s.events)
	c, err := contract()
	if err != nil {
		s.t.Error(err)
		return
	}
	var ev sseEvent
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.Kind == "" && ev.Data == nil {
				continue
			}
			name, ok := eventSchemas[ev.Kind]
			var v any
			switch {
			case !ok:
				s.t.Errorf("event of unknown kind %q", ev.Kind)
			case json.Unmarshal(ev.Data, &v) != nil:
				s.t.Errorf("%s data is not JSON: %s", ev.Kind, ev.Data)
			default:
				if err := c.doc.Components.Schemas[name].Value.VisitJSON(v); err != nil {
					s.t.Errorf("%s data does not match %s: %v\n%s", ev.Kind, name, err, ev.Data)
				}
			}
			if ev.Kind != "resync" && ev.ID == "" {
				s.t.Errorf("%s event without an id", ev.Kind)
			}
			s.events <- ev
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			// a comment (heartbeat)
		case strings.HasPrefix(line, "id: "):
			ev.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.Kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if ev.Data != nil {
				s.t.Errorf("a second data line in one event")
			}
			ev.Data = json.RawMessage(strings.TrimPrefix(line, "data: "))
		default:
			s.t.Errorf("unexpected stream line %q", line)
		}
	}
}

// next returns the next event, failing the test if the stream ends or the
// hang guard passes.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(hangGuard):
		s.t.Fatal("no event within the hang guard")
	}
	return sseEvent{}
}

// until returns the events up to and including the first that pred accepts.
func (s *sseStream) until(pred func(sseEvent) bool) []sseEvent {
	s.t.Helper()
	var seen []sseEvent
	for {
		ev := s.next()
		seen = append(seen, ev)
		if pred(ev) {
			return seen
		}
	}
}

// waitEnd waits for the server to end the stream.
func (s *sseStream) waitEnd() {
	s.t.Helper()
	select {
	case <-s.ended:
	case <-time.After(hangGuard):
		s.t.Fatal("the stream did not end")
	}
}

// Close leaves the stream.
func (s *sseStream) Close() {
	s.cancel()
	_ = s.resp.Body.Close()
	<-s.ended
}

// upsertOf matches a worker_upserted event of worker id in state.
func upsertOf(id, state string) func(sseEvent) bool {
	return func(ev sseEvent) bool {
		if ev.Kind != "worker_upserted" {
			return false
		}
		var w struct{ WorkerID, State string }
		var raw map[string]any
		_ = json.Unmarshal(ev.Data, &raw)
		w.WorkerID, _ = raw["worker_id"].(string)
		w.State, _ = raw["state"].(string)
		return w.WorkerID == id && w.State == state
	}
}

// appendOf matches a transcript_appended event of worker id with content.
func appendOf(id, content string) func(sseEvent) bool {
	return func(ev sseEvent) bool {
		if ev.Kind != "transcript_appended" {
			return false
		}
		var raw map[string]any
		_ = json.Unmarshal(ev.Data, &raw)
		return raw["worker_id"] == id && raw["content"] == content
	}
}
