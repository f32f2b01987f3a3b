package workerruntime

import (
	"context"
	"strconv"
	"strings"
	"sync"
)

// Subscription delivers events after a cursor: first the retained events
// after it (replay, from the store), then live ones, in order, never
// duplicated, never with a gap. An unknown or trimmed cursor starts with one
// resync event and continues live. A subscriber that falls behind (its
// bounded buffer is full) is cut off: Next returns ErrLagged, and the client
// reconnects with its last cursor (it loses nothing: replay from the store).
type Subscription interface {
	Next(ctx context.Context) (Event, error) // ctx.Err(), ErrLagged, ErrClosed
	Close()
}

// subscriberBuffer bounds each subscriber's queue of live events: a
// subscriber that falls this far behind is cut off (ErrLagged), never
// waited for.
const subscriberBuffer = 1024

// replayPage is how many events one store read of a replay fetches.
const replayPage = 512

// cursor encodes an event seq as an opaque cursor: the instance prefix
// makes a cursor of another Runtime (or of a wiped store) unknown.
func (r *Runtime) cursor(seq int64) string {
	return r.prefix + "-" + strconv.FormatInt(seq, 10)
}

// parseCursor decodes a cursor of this Runtime; ok is false otherwise.
func (r *Runtime) parseCursor(c string) (int64, bool) {
	p, n, found := strings.Cut(c, "-")
	if !found || p != r.prefix {
		return 0, false
	}
	seq, err := strconv.ParseInt(n, 10, 64)
	if err != nil || seq < 0 || strconv.FormatInt(seq, 10) != n {
		return 0, false
	}
	return seq, true
}

// hub fans committed events out to subscriptions. publish is called by
// the store's commit hook, in cursor order, and never blocks.
type hub struct {
	mu     sync.Mutex
	last   int64
	subs   map[*subscription]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[*subscription]struct{}{}} }

func (h *hub) setLast(seq int64) {
	h.mu.Lock()
	h.last = seq
	h.mu.Unlock()
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *hub) publish(evs []StoredEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range evs {
		if e.Seq > h.last {
			h.last = e.Seq
		}
		for s := range h.subs {
			s.offer(e)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		s.wake()
		delete(h.subs, s)
	}
}

func (h *hub) remove(s *subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// subscription is one subscriber. While it replays, events up to scanTo
// come from the store and live ones queue in buf; if buf overflows during
// replay it is dropped and the replay simply reads further from the store.
// Once caught up, an overflow cuts the subscriber off (ErrLagged).
type subscription struct {
	r        *Runtime
	workerID string
	notify   chan struct{}

	mu        sync.Mutex
	pending   []Event       // ready to deliver (resync, a replay page)
	buf       []StoredEvent // live events after scanTo
	scanPos   int64         // events up to here are accounted for
	scanTo    int64         // the replay's target
	replaying bool
	overflow  bool
	lagged    bool
	ended     bool // the Runtime closed
	closed    bool // the owner closed
}

var _ Subscription = (*subscription)(nil)

func (s *subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// offer queues a live event; called with the hub's lock held.
func (s *subscription) offer(e StoredEvent) {
	if s.workerID != "" && e.Event.WorkerID != s.workerID {
		return
	}
	s.mu.Lock()
	switch {
	case s.closed || s.lagged || s.overflow:
	case len(s.buf) >= subscriberBuffer:
		s.buf = nil
		if s.replaying {
			s.overflow = true
		} else {
			s.lagged = true
		}
	default:
		s.buf = append(s.buf, e)
	}
	s.mu.Unlock()
	s.wake()
}

// Subscribe opens an event feed after req.Cursor ("" = from now on), for
// every worker or only req.WorkerID's. An unknown or trimmed cursor starts
// with one resync event. Errors: unknown_worker, runtime_unavailable.
func (r *Runtime) Subscribe(ctx context.Context, req SubscribeRequest) (Subscription, error) {
	if r.isClosing() {
		return nil, errCode(CodeRuntimeUnavailable, "the runtime is shutting down", nil)
	}
	if req.WorkerID != "" {
		if _, err := r.Get(ctx, req.WorkerID); err != nil {
			return nil, err
		}
	}
	var first int64
	if req.Cursor != "" {
		var err error
		if first, err = r.store.FirstEventSeq(ctx); err != nil {
			return nil, storeErr(err)
		}
	}
	s := &subscription{r: r, workerID: req.WorkerID, notify: make(chan struct{}, 1)}
	h := r.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errCode(CodeRuntimeUnavailable, "the runtime is shutting down", nil)
	}
	s.scanPos, s.scanTo = h.last, h.last
	if req.Cursor != "" {
		seq, ok := r.parseCursor(req.Cursor)
		switch {
		case !ok || seq > h.last:
			s.pending = []Event{{Kind: EventResync, WorkerID: req.WorkerID, Reason: ResyncCursorUnknown}}
		case first > 0 && seq < first-1, first == 0 && seq < h.last:
			s.pending = []Event{{Kind: EventResync, WorkerID: req.WorkerID, Reason: ResyncCursorExpired}}
		default:
			s.scanPos = seq
			s.replaying = seq < h.last
		}
	}
	h.subs[s] = struct{}{}
	return s, nil
}

// Next returns the next event: ctx.Err(), ErrLagged, ErrClosed, or a
// runtime_unavailable *Error when the store cannot be read.
func (s *subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return Event{}, ErrClosed
		case len(s.pending) > 0:
			e := s.pending[0]
			s.pending = s.pending[1:]
			s.mu.Unlock()
			return e, nil
		case s.ended:
			s.mu.Unlock()
			return Event{}, ErrClosed
		case s.replaying && s.scanPos < s.scanTo:
			from, to := s.scanPos, s.scanTo
			s.mu.Unlock()
			evs, err := s.r.store.EventsAfter(ctx, from, to, s.workerID, replayPage)
			if err != nil {
				if ctx.Err() != nil {
					return Event{}, ctx.Err()
				}
				return Event{}, storeErr(err)
			}
			s.mu.Lock()
			if len(evs) < replayPage {
				s.scanPos = to
			} else {
				s.scanPos = evs[len(evs)-1].Seq
			}
			for _, e := range evs {
				s.pending = append(s.pending, s.r.toEvent(e))
			}
			s.mu.Unlock()
			continue
		case s.replaying && s.overflow:
			// Live events were dropped while replaying: read them from the
			// store too, up to the hub's newest.
			s.mu.Unlock()
			s.r.hub.mu.Lock()
			s.mu.Lock()
			s.scanTo = s.r.hub.last
			s.overflow = false
			s.buf = nil
			s.mu.Unlock()
			s.r.hub.mu.Unlock()
			continue
		case s.replaying:
			s.replaying = false
			s.mu.Unlock()
			continue
		case s.lagged:
			s.mu.Unlock()
			return Event{}, ErrLagged
		case len(s.buf) > 0:
			e := s.buf[0]
			s.buf = s.buf[1:]
			if len(s.buf) == 0 {
				s.buf = nil // let an idle subscriber hold no array
			}
			s.mu.Unlock()
			return s.r.toEvent(e), nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-s.notify:
		}
	}
}

// Close ends the subscription; Next then returns ErrClosed.
func (s *subscription) Close() {
	s.mu.Lock()
	s.closed = true
	s.buf, s.pending = nil, nil
	s.mu.Unlock()
	s.wake()
	s.r.hub.remove(s)
}

func (r *Runtime) toEvent(e StoredEvent) Event {
	ev := e.Event
	ev.Cursor = r.cursor(e.Seq)
	return ev
}
