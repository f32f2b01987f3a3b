package workerruntime_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/wrtest"
)

// seqOf reads the seq out of a cursor (opaque to clients; tests check
// contiguity with it).
func seqOf(t *testing.T, c string) int64 {
	t.Helper()
	_, n, ok := strings.Cut(c, "-")
	seq, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil {
		t.Fatalf("cursor %q", c)
	}
	return seq
}

func next(t *testing.T, s wr.Subscription) wr.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func subscribe(t *testing.T, e *env, req wr.SubscribeRequest) wr.Subscription {
	t.Helper()
	s, err := e.rt.Subscribe(t.Context(), req)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// emit makes n transcript events on p and waits until they are committed.
func emit(t *testing.T, e *env, id string, p *wrtest.Process, n int) {
	t.Helper()
	before, _ := e.rt.Transcript(t.Context(), id, 0, 1)
	for i := range n {
		p.Emit(wr.RoleAssistant, fmt.Sprint("line ", i))
	}
	waitFor(t, "lines committed", func() bool {
		pg, _ := e.rt.Transcript(t.Context(), id, 0, 1)
		return pg.LastSequence == before.LastSequence+int64(n)
	})
}

func TestSubscribeLive(t *testing.T) {
	e := newEnv(t, nil)
	s := subscribe(t, e, wr.SubscribeRequest{})
	w, p := e.create(t, wr.CreateRequest{})
	ev := next(t, s)
	if ev.Kind != wr.EventWorkerUpserted || ev.Worker == nil || ev.Worker.Status != wr.StatusStarting || ev.WorkerID != w.ID || ev.Cursor == "" {
		t.Fatalf("first event: %+v", ev)
	}
	ev = next(t, s)
	if ev.Kind != wr.EventWorkerUpserted || ev.Worker.Status != wr.StatusRunning {
		t.Fatalf("second event: %+v", ev)
	}
	if _, err := e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: "hi"}); err != nil {
		t.Fatal(err)
	}
	ev = next(t, s)
	if ev.Kind != wr.EventTranscriptAppended || ev.Entry == nil || ev.Entry.Role != wr.RoleUser || ev.Entry.Content != "hi" || ev.Entry.Sequence != 1 {
		t.Fatalf("input event: %+v", ev)
	}
	p.Emit(wr.RoleAssistant, "hello")
	ev = next(t, s)
	if ev.Kind != wr.EventTranscriptAppended || ev.Entry.Role != wr.RoleAssistant || ev.Entry.Content != "hello" {
		t.Fatalf("output event: %+v", ev)
	}
	waitFor(t, "stats", func() bool { return e.rt.Stats().TranscriptLines == 2 })
	if st := e.rt.Stats(); st.Subscribers != 1 || st.Events != 4 || st.ProcessesStarted != 1 || st.WorkersByState[wr.StateActive] != 1 || st.StoreWrites == 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestReplayNoGapNoDuplicate resumes from a cursor while events keep
// coming, many more than a subscriber's buffer: every event after the
// cursor arrives exactly once, in order.
func TestReplayNoGapNoDuplicate(t *testing.T) {
	e := newEnv(t, nil)
	first := subscribe(t, e, wr.SubscribeRequest{})
	w, p := e.create(t, wr.CreateRequest{})
	cursor := next(t, first).Cursor // the worker's first event
	first.Close()
	emit(t, e, w.ID, p, 1500)

	s := subscribe(t, e, wr.SubscribeRequest{Cursor: cursor})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3000 {
			p.Emit(wr.RoleSystem, fmt.Sprint("more ", i))
		}
	}()
	<-done
	want := seqOf(t, cursor) + 1
	waitFor(t, "all lines committed", func() bool {
		pg, _ := e.rt.Transcript(t.Context(), w.ID, 0, 1)
		return pg.LastSequence == 4500
	})
	for {
		ev := next(t, s)
		if got := seqOf(t, ev.Cursor); got != want {
			t.Fatalf("event seq %d, want %d (gap or duplicate)", got, want)
		}
		want++
		if ev.Entry != nil && ev.Entry.Sequence == 4500 {
			break
		}
	}
}

func TestSubscribeResync(t *testing.T) {
	e := newEnv(t, func(_ *wr.Options, s *wrtest.Store, _ *wrtest.Executor) { s.EventRetention = 10 })
	w, p := e.create(t, wr.CreateRequest{})
	emit(t, e, w.ID, p, 30)
	tests := []struct{ cursor, reason string }{
		{"garbage", wr.ResyncCursorUnknown},
		{"deadbeef-5", wr.ResyncCursorUnknown}, // another runtime's
		{"0f0f0f0f-99999", wr.ResyncCursorUnknown},
		{"0f0f0f0f-1", wr.ResyncCursorExpired},
	}
	for _, tc := range tests {
		t.Run(tc.cursor, func(t *testing.T) {
			s := subscribe(t, e, wr.SubscribeRequest{Cursor: tc.cursor})
			ev := next(t, s)
			if ev.Kind != wr.EventResync || ev.Reason != tc.reason || ev.Cursor != "" {
				t.Fatalf("first event %+v, want resync %s", ev, tc.reason)
			}
			// Then live only.
			p.Emit(wr.RoleAssistant, "after "+tc.cursor)
			ev = next(t, s)
			if ev.Entry == nil || ev.Entry.Content != "after "+tc.cursor {
				t.Fatalf("after resync: %+v", ev)
			}
		})
	}
	// The oldest retained cursor still replays.
	pg, _ := e.rt.List(t.Context(), "", 1)
	newest := seqOf(t, pg.Version)
	s := subscribe(t, e, wr.SubscribeRequest{Cursor: fmt.Sprintf("0f0f0f0f-%d", newest-9)})
	if ev := next(t, s); ev.Kind == wr.EventResync || seqOf(t, ev.Cursor) != newest-8 {
		t.Fatalf("replay from the oldest retained: %+v", ev)
	}
}

func TestSubscribeOneWorker(t *testing.T) {
	e := newEnv(t, nil)
	a, pa := e.create(t, wr.CreateRequest{})
	_, pb := e.create(t, wr.CreateRequest{})
	s := subscribe(t, e, wr.SubscribeRequest{WorkerID: a.ID, Cursor: "0f0f0f0f-0"})
	pb.Emit(wr.RoleAssistant, "b")
	pa.Emit(wr.RoleAssistant, "a")
	var got []string
	for len(got) < 3 {
		ev := next(t, s)
		if ev.WorkerID != a.ID {
			t.Fatalf("event of another worker: %+v", ev)
		}
		got = append(got, string(ev.Kind))
	}
	if got[0] != "worker_upserted" || got[2] != "transcript_appended" {
		t.Fatalf("events %v", got)
	}
	_, err := e.rt.Subscribe(t.Context(), wr.SubscribeRequest{WorkerID: "nope"})
	code(t, err, wr.CodeUnknownWorker, "")
}

func TestLaggingSubscriberIsCutOff(t *testing.T) {
	e := newEnv(t, nil)
	s := subscribe(t, e, wr.SubscribeRequest{})
	w, p := e.create(t, wr.CreateRequest{})
	emit(t, e, w.ID, p, 3000) // never read: the publisher must not wait
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var err error
	for err == nil {
		_, err = s.Next(ctx)
	}
	if !errors.Is(err, wr.ErrLagged) {
		t.Fatalf("Next: %v, want ErrLagged", err)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	e := newEnv(t, nil)
	s := subscribe(t, e, wr.SubscribeRequest{})
	if err := e.rt.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(t.Context()); !errors.Is(err, wr.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	_, err := e.rt.Subscribe(t.Context(), wr.SubscribeRequest{})
	code(t, err, wr.CodeRuntimeUnavailable, "")
	s2 := subscribe(t, newEnv(t, nil), wr.SubscribeRequest{})
	s2.Close()
	if _, err := s2.Next(t.Context()); !errors.Is(err, wr.ErrClosed) {
		t.Fatalf("Next after own Close: %v", err)
	}
}
