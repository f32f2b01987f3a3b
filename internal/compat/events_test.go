package compat_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// nextEvent reads one event; the deadline only guards against a hang.
func nextEvent(t *testing.T, st registry.EventStream) registry.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), freshnessDeadline)
	defer cancel()
	ev, err := st.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

// openEvents opens a stream of s and closes it when the test ends.
func openEvents(t *testing.T, s *compat.Source, q registry.EventQuery) registry.EventStream {
	t.Helper()
	st, err := s.Events(t.Context(), q)
	if err != nil {
		t.Fatalf("Events(%+v): %v", q, err)
	}
	t.Cleanup(st.Close)
	return st
}

// atomicWrite replaces pod's metadata.json by rename, as careful writers do.
func (f *fixture) atomicWrite(pod string, data []byte) {
	f.t.Helper()
	dir := f.podDir(pod)
	tmp := filepath.Join(dir, fmt.Sprintf(".metadata.json.%d", rand.Int64()))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "metadata.json")); err != nil {
		f.t.Fatal(err)
	}
}

// seen is an event as the table tests compare it.
type seen struct {
	kind  registry.EventKind
	pod   string // "" for resync
	label string // worker_upserted only
}

func (f *fixture) metaIn(root, label string) []byte {
	return []byte(`{"worker_name":` + quote(label) + `,"workspace_root":` + quote(root) + `}`)
}

// TestEvents applies one change to a watched store and checks the events a
// stream opened before it reads. Each case ends with a change to the marker
// pod "zz-marker": a change that must produce no event is checked by the
// marker's event coming first.
func TestEvents(t *testing.T) {
	marker := seen{registry.EventWorkerUpserted, "zz-marker", "mark"}
	tests := []struct {
		name   string
		before func(f *fixture)
		query  func(f *fixture) registry.EventQuery
		change func(f *fixture)
		want   []seen
	}{
		{"a new pod", nil, nil, func(f *fixture) { f.raw("p", f.labelled("p")) },
			[]seen{{registry.EventWorkerUpserted, "p", "p"}, marker}},
		{"a rewrite", func(f *fixture) { f.raw("p", f.labelled("one")) }, nil,
			func(f *fixture) { f.atomicWrite("p", f.labelled("two")) },
			[]seen{{registry.EventWorkerUpserted, "p", "two"}, marker}},
		{"a rewrite that projects the same", func(f *fixture) { f.raw("p", f.labelled("same")) }, nil,
			func(f *fixture) { f.atomicWrite("p", f.labelled("same")) },
			[]seen{marker}},
		{"a removed pod", func(f *fixture) { f.raw("p", f.labelled("p")) }, nil,
			func(f *fixture) {
				if err := os.RemoveAll(filepath.Join(f.pods, "p")); err != nil {
					f.t.Fatal(err)
				}
			},
			[]seen{{registry.EventWorkerRemoved, "p", ""}, marker}},
		{"a renamed pod directory", func(f *fixture) { f.raw("a", f.labelled("x")) }, nil,
			func(f *fixture) {
				if err := os.Rename(filepath.Join(f.pods, "a"), filepath.Join(f.pods, "b")); err != nil {
					f.t.Fatal(err)
				}
			},
			[]seen{{registry.EventWorkerRemoved, "a", ""}, {registry.EventWorkerUpserted, "b", "x"}, marker}},
		{"a pod moved to another workspace", func(f *fixture) { f.raw("p", f.labelled("p")) }, nil,
			func(f *fixture) { f.atomicWrite("p", f.metaIn("/elsewhere", "p")) },
			[]seen{{registry.EventWorkerRemoved, "p", ""}, marker}},
		{"a pod moved into the workspace", func(f *fixture) { f.raw("p", f.metaIn("/elsewhere", "p")) }, nil,
			func(f *fixture) { f.atomicWrite("p", f.labelled("p")) },
			[]seen{{registry.EventWorkerUpserted, "p", "p"}, marker}},
		{"another workspace's pod changes", func(f *fixture) { f.raw("p", f.metaIn("/elsewhere", "p")) }, nil,
			func(f *fixture) { f.atomicWrite("p", f.metaIn("/elsewhere", "p2")) },
			[]seen{marker}},
		{"a pod whose metadata turns invalid", func(f *fixture) { f.raw("p", f.labelled("p")) }, nil,
			func(f *fixture) { f.atomicWrite("p", []byte(`{"worker_name":`)) },
			// Held for a while as a possible torn write, then removed.
			[]seen{{registry.EventWorkerRemoved, "p", ""}, marker}},
		{"one worker's stream", func(f *fixture) { f.raw("p", f.labelled("p")); f.raw("zz-marker", f.labelled("m")) },
			func(*fixture) registry.EventQuery {
				return registry.EventQuery{WorkerID: compat.WorkerIDFor("zz-marker")}
			},
			func(f *fixture) { f.atomicWrite("p", f.labelled("p2")) },
			[]seen{marker}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.before != nil {
				tt.before(f)
			}
			s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir})
			waitWatching(t, s)
			var q registry.EventQuery
			if tt.query != nil {
				q = tt.query(f)
			}
			st := openEvents(t, s, q)
			tt.change(f)
			if tt.name == "a pod whose metadata turns invalid" {
				// The marker must come after the hold has ended.
				eventually(t, "invalid pod dropped", func() bool {
					_, err := labelOf(s, "p")
					return errors.Is(err, registry.ErrUnknownWorker)
				})
			}
			f.atomicWrite("zz-marker", f.labelled("mark"))
			var got []seen
			upserted := map[registry.WorkerID]registry.Worker{}
			for len(got) == 0 || got[len(got)-1] != marker {
				if len(got) > len(tt.want) {
					break
				}
				ev := nextEvent(t, st)
				if ev.Cursor == "" || !registry.ValidID(ev.Cursor) {
					t.Errorf("cursor %q", ev.Cursor)
				}
				g := seen{kind: ev.Kind, label: ev.Worker.Label}
				for _, pod := range []string{"p", "a", "b", "zz-marker"} {
					if ev.Ref.WorkerID == compat.WorkerIDFor(pod) {
						g.pod = pod
					}
				}
				if ev.Kind == registry.EventWorkerUpserted {
					if ev.Worker.ID != ev.Ref.WorkerID {
						t.Errorf("upserted %s carries worker %s", ev.Ref.WorkerID, ev.Worker.ID)
					}
					upserted[ev.Ref.WorkerID] = ev.Worker
				}
				got = append(got, g)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("events %+v, want %+v", got, tt.want)
			}
			// Nothing changes after the marker: each upserted Worker is
			// what a lookup answers now.
			for id, w := range upserted {
				if got, err := s.Worker(t.Context(), id); err != nil || !reflect.DeepEqual(got, w) {
					t.Errorf("upserted %+v, lookup %+v %v", w, got, err)
				}
			}
		})
	}
}

// TestEventsCursors resumes streams from cursors: a known one replays what
// followed it, an unknown, trimmed or foreign one gets one resync first.
func TestEventsCursors(t *testing.T) {
	f := newFixture(t)
	s := startedWithHooks(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir},
		compat.TestHooks{EventRing: 3})
	waitWatching(t, s)
	live := openEvents(t, s, registry.EventQuery{})
	var evs []registry.Event
	for i := range 4 {
		f.raw(fmt.Sprintf("p%d", i), f.labelled(fmt.Sprintf("p%d", i)))
		evs = append(evs, nextEvent(t, live))
	}
	cursors := map[string]bool{}
	for _, ev := range evs {
		if cursors[ev.Cursor] {
			t.Fatalf("cursor %q repeated", ev.Cursor)
		}
		cursors[ev.Cursor] = true
	}
	epoch, _, _ := strings.Cut(evs[0].Cursor, "-")

	tests := []struct {
		name   string
		cursor string
		want   []registry.Event // then the live event
	}{
		{"the latest", evs[3].Cursor, nil},
		{"a retained one", evs[1].Cursor, evs[2:]},
		{"the one before the oldest retained", evs[0].Cursor, evs[1:]},
		{"a trimmed one", epoch + "-0", []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncCursorExpired}}},
		{"one from the future", epoch + "-99", []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncCursorUnknown}}},
		{"garbage", "nope", []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncCursorUnknown}}},
		{"another process's", "0123456789abcdef-2", []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncSourceRestarted}}},
	}
	var streams []registry.EventStream
	for _, tt := range tests {
		streams = append(streams, openEvents(t, s, registry.EventQuery{Cursor: tt.cursor}))
	}
	f.raw("p9", f.labelled("p9"))
	liveEv := nextEvent(t, live)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, want := range append(slices.Clone(tt.want), liveEv) {
				if got := nextEvent(t, streams[i]); !reflect.DeepEqual(got, want) {
					t.Fatalf("got %+v\nwant %+v", got, want)
				}
			}
		})
	}

	// A restart: cursors of the earlier run are unknown to the new one.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Next(t.Context()); !errors.Is(err, registry.ErrStreamEnded) {
		t.Errorf("a stream of a closed source: %v, want ErrStreamEnded", err)
	}
	if _, err := s.Events(t.Context(), registry.EventQuery{}); !errors.Is(err, registry.ErrRuntimeUnavailable) {
		t.Errorf("Events of a closed source: %v, want runtime_unavailable", err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	again := openEvents(t, s, registry.EventQuery{Cursor: liveEv.Cursor})
	if got := nextEvent(t, again); got.Kind != registry.EventResync || got.Reason != registry.ResyncSourceRestarted || got.Cursor != "" {
		t.Errorf("after a restart: %+v, want resync source_restarted", got)
	}
}

// TestEventsStreamLifecycle covers what ends a stream and what Events refuses.
func TestEventsStreamLifecycle(t *testing.T) {
	f := newFixture(t)
	f.raw("p", f.labelled("p"))
	f.raw("other", f.metaIn("/elsewhere", "other"))
	s := f.source()

	st := openEvents(t, s, registry.EventQuery{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := st.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with an ended context: %v", err)
	}
	st.Close()
	if _, err := st.Next(t.Context()); !errors.Is(err, registry.ErrStreamEnded) {
		t.Errorf("Next after Close: %v, want ErrStreamEnded", err)
	}
	st.Close() // twice is fine

	for _, tt := range []struct {
		name string
		s    *compat.Source
		id   registry.WorkerID
		want error
	}{
		{"unknown worker", s, compat.WorkerIDFor("nobody"), registry.ErrUnknownWorker},
		{"another workspace's worker", s, compat.WorkerIDFor("other"), registry.ErrWorkerNotVisible},
		{"not started", compat.New(compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir}), "", registry.ErrRuntimeUnavailable},
		{"no data dir", started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root}), "", registry.ErrRuntimeUnavailable},
	} {
		if _, err := tt.s.Events(t.Context(), registry.EventQuery{WorkerID: tt.id}); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestEventsLaggingStreamIsCut checks that a stream whose reader falls behind
// is cut, not waited for, and that resuming from its last cursor loses
// nothing.
func TestEventsLaggingStreamIsCut(t *testing.T) {
	const pods = 20
	f := newFixture(t)
	s := startedWithHooks(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir},
		compat.TestHooks{EventBuffer: 4})
	waitWatching(t, s)
	slow := openEvents(t, s, registry.EventQuery{})
	for i := range pods {
		f.raw(fmt.Sprintf("p%02d", i), f.labelled("x"))
	}
	eventually(t, "every pod listed", func() bool { return len(list(t, s).Workers) == pods })

	got := map[registry.WorkerID]int{}
	var last string
	n := 0
	for {
		ev, err := slow.Next(t.Context())
		if errors.Is(err, registry.ErrStreamEnded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[ev.Ref.WorkerID]++
		last, n = ev.Cursor, n+1
	}
	// The reader starts once every pod is listed, but the events of the last
	// snapshot may still be arriving while it drains its four, so it can
	// read a few more than its buffer; it must not read them all.
	if n >= pods {
		t.Errorf("read all %d events: the lagging stream was never cut", n)
	}
	resumed := openEvents(t, s, registry.EventQuery{Cursor: last})
	for len(got) < pods {
		ev := nextEvent(t, resumed)
		if ev.Kind != registry.EventWorkerUpserted {
			t.Fatalf("resumed stream: %+v", ev)
		}
		got[ev.Ref.WorkerID]++
	}
	for id, c := range got {
		if c != 1 {
			t.Errorf("%s: %d events, want 1", id, c)
		}
	}
}

// TestEventsConcurrent runs streams while writers change the store and
// checks that every stream sees the same events, that folding them onto the
// list taken when they opened gives the final list (no gap, no duplicate),
// and that a stream resumed from any of them sees exactly what followed.
func TestEventsConcurrent(t *testing.T) {
	const (
		initial   = 10
		writers   = 3
		ops       = 40
		listeners = 4
	)
	f := newFixture(t)
	for i := range initial {
		f.raw(fmt.Sprintf("p%02d", i), f.labelled("x"))
	}
	s := f.source()
	waitWatching(t, s)
	streams := make([]registry.EventStream, listeners)
	for i := range streams {
		streams[i] = openEvents(t, s, registry.EventQuery{})
	}
	start := map[registry.WorkerID]registry.Worker{}
	for _, w := range list(t, s).Workers {
		start[w.ID] = w
	}

	// Readers collect until the marker pod, written last, shows.
	markerID := compat.WorkerIDFor("zz-marker")
	results := make([][]registry.Event, listeners)
	var readers sync.WaitGroup
	for i, st := range streams {
		readers.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // a hang guard
			defer cancel()
			for {
				ev, err := st.Next(ctx)
				if errors.Is(err, registry.ErrStreamEnded) && len(results[i]) > 0 {
					// Cut for lagging: resume where it stopped, as a client does.
					st, err = s.Events(ctx, registry.EventQuery{Cursor: results[i][len(results[i])-1].Cursor})
					if err != nil {
						t.Errorf("resume: %v", err)
						return
					}
					t.Cleanup(st.Close)
					continue
				}
				if err != nil {
					t.Errorf("reader %d: %v", i, err)
					return
				}
				results[i] = append(results[i], ev)
				if ev.Ref.WorkerID == markerID {
					return
				}
			}
		})
	}

	var ws sync.WaitGroup
	for w := range writers {
		ws.Go(func() {
			for op := range ops {
				pod := fmt.Sprintf("p%02d", rand.IntN(initial+5))
				// Errors are expected: another writer may be removing the
				// pod meanwhile.
				switch rand.IntN(4) {
				case 0, 1:
					tryWrite(f.pods, pod, f.labelled(fmt.Sprintf("w%d-%d", w, op)))
				case 2:
					tryWrite(f.pods, pod, f.metaIn("/elsewhere", pod))
				case 3:
					_ = os.RemoveAll(filepath.Join(f.pods, pod))
				}
			}
		})
	}
	ws.Wait()
	f.atomicWrite("zz-marker", f.labelled("end"))
	readers.Wait()
	if t.Failed() {
		return
	}

	final := map[registry.WorkerID]registry.Worker{}
	for _, w := range list(t, s).Workers {
		final[w.ID] = w
	}
	for i, evs := range results {
		if !reflect.DeepEqual(evs, results[0]) {
			t.Fatalf("stream %d saw %d events, stream 0 %d, or in another order", i, len(evs), len(results[0]))
		}
	}
	state := maps.Clone(start)
	seenCursor := map[string]bool{}
	for _, ev := range results[0] {
		if seenCursor[ev.Cursor] {
			t.Fatalf("cursor %s twice", ev.Cursor)
		}
		seenCursor[ev.Cursor] = true
		switch ev.Kind {
		case registry.EventWorkerUpserted:
			state[ev.Ref.WorkerID] = ev.Worker
		case registry.EventWorkerRemoved:
			delete(state, ev.Ref.WorkerID)
		default:
			t.Fatalf("unexpected %+v", ev)
		}
	}
	if !reflect.DeepEqual(state, final) {
		t.Errorf("folding %d events onto the first list gives %d workers; the final list has %d", len(results[0]), len(state), len(final))
	}
	t.Logf("%d events", len(results[0]))

	// A stream resumed from any event sees exactly what followed it.
	for _, k := range []int{0, len(results[0]) / 2, len(results[0]) - 1} {
		st := openEvents(t, s, registry.EventQuery{Cursor: results[0][k].Cursor})
		for _, want := range results[0][k+1:] {
			if got := nextEvent(t, st); !reflect.DeepEqual(got, want) {
				t.Fatalf("resumed after event %d: %+v, want %+v", k, got, want)
			}
		}
	}
}

// tryWrite replaces pod's metadata.json by rename, ignoring errors.
func tryWrite(pods, pod string, data []byte) {
	dir := filepath.Join(pods, pod)
	tmp := filepath.Join(dir, fmt.Sprintf(".metadata.json.%d", rand.Int64()))
	if os.MkdirAll(dir, 0o755) != nil || os.WriteFile(tmp, data, 0o644) != nil {
		return
	}
	if os.Rename(tmp, filepath.Join(dir, "metadata.json")) != nil {
		_ = os.Remove(tmp)
	}
}

// TestEventsStoreGoneAndBack checks that a store that becomes unreadable
// removes its workers and that its return upserts them again.
func TestEventsStoreGoneAndBack(t *testing.T) {
	f := newFixture(t)
	f.raw("p", f.labelled("p"))
	s := f.source()
	waitWatching(t, s)
	st := openEvents(t, s, registry.EventQuery{})
	if err := os.Rename(f.pods, f.pods+".away"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, st); ev.Kind != registry.EventWorkerRemoved || ev.Ref.WorkerID != compat.WorkerIDFor("p") {
		t.Fatalf("store gone: %+v", ev)
	}
	if err := os.Rename(f.pods+".away", f.pods); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, st); ev.Kind != registry.EventWorkerUpserted || ev.Worker.Label != "p" {
		t.Fatalf("store back: %+v", ev)
	}
}

// TestEventsThroughRegistry streams through the real registry: the runtime
// says it can stream, a worker's stream is routed, and the Worker of an
// event is the one the registry lists.
func TestEventsThroughRegistry(t *testing.T) {
	f := newFixture(t)
	f.raw("p", f.labelled("p"))
	s := f.source()
	waitWatching(t, s)
	reg, err := registry.New(registry.Options{WorkspaceID: "my-workspace", Auditor: registry.Auditors{}}, s)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := reg.Runtime(t.Context(), compat.RuntimeID)
	if err != nil || !sum.Capabilities.CanStreamEvents {
		t.Fatalf("runtime %+v %v: want can_stream_events", sum.Capabilities, err)
	}
	st, err := reg.Events(t.Context(), compat.RuntimeID, registry.EventQuery{WorkerID: compat.WorkerIDFor("p")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f.atomicWrite("p", f.labelled("p2"))
	ev := nextEvent(t, st)
	w, err := reg.Worker(t.Context(), registry.WorkerRef{RuntimeID: compat.RuntimeID, WorkerID: compat.WorkerIDFor("p")})
	if err != nil || ev.Kind != registry.EventWorkerUpserted || !reflect.DeepEqual(ev.Worker, w) || !w.Capabilities.CanStreamEvents {
		t.Errorf("event %+v\nlookup %+v %v", ev, w, err)
	}
}
