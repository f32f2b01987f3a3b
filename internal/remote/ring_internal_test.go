package remote

import (
	"strconv"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// The ring of recent events is bounded by count and by bytes (the upstream
// stream is always open, so it always fills): what is dropped is the oldest,
// and a dropped cursor is not found (it catches up upstream instead).
func TestRingBounds(t *testing.T) {
	cases := []struct {
		name    string
		content int // bytes of transcript content per event
		events  int
	}{
		{"small events", 10, 3 * ringSize},
		{"64 KiB lines", 64 << 10, 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelay(&Source{})
			body := strings.Repeat("x", tc.content)
			for i := 1; i <= tc.events; i++ {
				r.remember(ringEvent{rc: "c-" + strconv.Itoa(i), ev: registry.Event{Kind: registry.EventTranscriptAppended, Entry: registry.TranscriptEntry{Content: body}}})
				if len(r.ring) > ringSize || r.ringBytes > ringMaxBytes {
					t.Fatalf("after %d events: %d kept, %d bytes", i, len(r.ring), r.ringBytes)
				}
			}
			sum := 0
			for _, re := range r.ring {
				sum += re.size()
			}
			if sum != r.ringBytes || len(r.ring) == 0 {
				t.Fatalf("ringBytes %d, counted %d, %d kept", r.ringBytes, sum, len(r.ring))
			}
			newest := "c-" + strconv.Itoa(tc.events)
			if r.ring[len(r.ring)-1].rc != newest {
				t.Fatalf("newest kept %s, want %s", r.ring[len(r.ring)-1].rc, newest)
			}
			if _, found := r.after("c-1", ""); found {
				t.Fatal("the oldest cursor is still found after trimming")
			}
			prev := "c-" + strconv.Itoa(tc.events-1)
			if replay, found := r.after(prev, ""); !found || len(replay) != 1 {
				t.Fatalf("resume from the one before the newest: %d events, found %v", len(replay), found)
			}
		})
	}
}
