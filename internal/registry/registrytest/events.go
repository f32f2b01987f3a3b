package registrytest

import (
	"context"
	"strconv"
	"sync"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// streamBuffer is how many events a stream holds before the double cuts it
// (ErrStreamEnded), as a real Source cuts a lagging subscriber.
const streamBuffer = 64

// stream is one open event stream of the double.
type stream struct {
	s      *Source
	worker registry.WorkerID
	ch     chan registry.Event
	done   chan struct{}
	once   sync.Once
}

var _ registry.EventStream = (*stream)(nil)

// Next returns the next event, ctx.Err() when ctx ends, and
// registry.ErrStreamEnded once the stream is closed or was cut.
func (st *stream) Next(ctx context.Context) (registry.Event, error) {
	select {
	case ev := <-st.ch:
		return ev, nil
	default:
	}
	select {
	case ev := <-st.ch:
		return ev, nil
	case <-st.done:
		return registry.Event{}, registry.ErrStreamEnded
	case <-ctx.Done():
		return registry.Event{}, ctx.Err()
	}
}

// Close ends the stream.
func (st *stream) Close() {
	st.s.mu.Lock()
	delete(st.s.streams, st)
	st.s.mu.Unlock()
	st.end()
}

func (st *stream) end() { st.once.Do(func() { close(st.done) }) }

// events opens a stream. The double keeps no event log: a stream opened with
// a cursor starts with one resync (cursor_unknown), then live events.
func (s *Source) events(ctx context.Context, q registry.EventQuery) (registry.EventStream, error) {
	if err := s.enter(ctx, MethodEvents); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.WorkerID != "" {
		if _, ok := s.workers[q.WorkerID]; !ok {
			return nil, registry.UnknownWorker(registry.WorkerRef{RuntimeID: s.id, WorkerID: q.WorkerID})
		}
	}
	st := &stream{s: s, worker: q.WorkerID, ch: make(chan registry.Event, streamBuffer), done: make(chan struct{})}
	if q.Cursor != "" {
		st.ch <- registry.Event{Kind: registry.EventResync, Reason: registry.ResyncCursorUnknown}
	}
	s.streams[st] = struct{}{}
	return st, nil
}

// Emit delivers ev to every open stream that wants it, with a fresh cursor
// unless ev is a resync or carries one. The operations of the double emit
// their own events (upserted on create and stop, transcript_appended on
// input).
func (s *Source) Emit(ev registry.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish(ev)
}

// publish is Emit with s.mu held. A stream whose buffer is full is cut.
func (s *Source) publish(ev registry.Event) {
	if ev.Kind != registry.EventResync && ev.Cursor == "" {
		s.eventSeq++
		ev.Cursor = "e-" + strconv.Itoa(s.eventSeq)
	}
	for st := range s.streams {
		if st.worker != "" && ev.Kind != registry.EventResync && ev.Ref.WorkerID != st.worker {
			continue
		}
		select {
		case st.ch <- ev:
		default:
			delete(s.streams, st)
			st.end()
		}
	}
}
