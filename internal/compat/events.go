package compat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Event log sizes.
const (
	// DefaultEventRing is how many past events the index keeps for streams
	// that resume from a cursor; an older cursor gets a resync.
	DefaultEventRing = 10_000
	// DefaultEventBuffer is how many events one stream holds for its reader;
	// a reader that falls further behind is cut off (ErrStreamEnded), never
	// waited for, and resumes from its last cursor.
	DefaultEventBuffer = 256
	// epochBytes of randomness start every cursor of one index: a cursor of
	// another process (or of an earlier Start) is told apart.
	epochBytes = 8
)

// eventLog numbers the changes one index applies, keeps the latest of them
// for resuming streams and hands them to the open streams. Cursors are
// "<epoch>-<sequence>": the epoch is random per log, so a cursor from before a
// restart is unknown here and answered with a resync.
type eventLog struct {
	epoch  string
	buffer int

	mu  sync.Mutex
	seq uint64 // sequence of the latest event; 0 before the first
	// ring grows up to max events (a log of a store that does not change
	// holds none), then wraps.
	ring   []registry.Event
	max    int
	head   int // index in ring of the oldest retained event
	size   int // retained events
	subs   map[*eventStream]struct{}
	closed bool
}

func newEventLog(ring, buffer int) *eventLog {
	if ring <= 0 {
		ring = DefaultEventRing
	}
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	var b [epochBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (Go 1.24+)
	return &eventLog{epoch: hex.EncodeToString(b[:]), buffer: buffer,
		max: ring, subs: map[*eventStream]struct{}{}}
}

// cursor is the cursor of event seq.
func (l *eventLog) cursor(seq uint64) string { return l.epoch + "-" + strconv.FormatUint(seq, 10) }

// parseCursor returns the sequence of a cursor of this log. ok is false for
// anything else; foreign is true when c has the shape of a cursor of another
// log (another process, an earlier Start).
func (l *eventLog) parseCursor(c string) (seq uint64, ok, foreign bool) {
	epoch, n, found := strings.Cut(c, "-")
	if !found || len(epoch) != 2*epochBytes {
		return 0, false, false
	}
	if _, err := hex.DecodeString(epoch); err != nil {
		return 0, false, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	if err != nil || n != strconv.FormatUint(seq, 10) {
		return 0, false, false
	}
	if epoch != l.epoch {
		return 0, false, true
	}
	return seq, true, false
}

// append numbers evs, retains them and hands each to every stream that
// wants it. A stream whose buffer is full is cut: it reads what it holds,
// then ErrStreamEnded, and resumes from its last cursor.
func (l *eventLog) append(evs []registry.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	for _, ev := range evs {
		l.seq++
		ev.Cursor = l.cursor(l.seq)
		if l.size < l.max {
			// Not full yet, so never wrapped: head is 0.
			l.ring = append(l.ring, ev)
			l.size++
		} else {
			l.ring[l.head] = ev
			l.head = (l.head + 1) % len(l.ring)
		}
		for st := range l.subs {
			if !st.wants(ev) {
				continue
			}
			select {
			case st.ch <- ev:
			default:
				l.endLocked(st)
			}
		}
	}
}

// subscribe opens a stream for q. Under the log's lock the replay is taken
// and the stream is registered at once, so that nothing falls between the
// two: no gap and no duplicate.
func (l *eventLog) subscribe(q registry.EventQuery) *eventStream {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := &eventStream{log: l, worker: q.WorkerID, ch: make(chan registry.Event, l.buffer)}
	if l.closed {
		st.ended = true
		close(st.ch)
		return st
	}
	if q.Cursor != "" {
		seq, ok, foreign := l.parseCursor(q.Cursor)
		oldest := l.seq - uint64(l.size) // the cursor of the event before the oldest retained
		switch {
		case foreign:
			st.replay = []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncSourceRestarted}}
		case !ok || seq > l.seq:
			st.replay = []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncCursorUnknown}}
		case seq < oldest:
			st.replay = []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncCursorExpired}}
		default:
			for i := int(seq - oldest); i < l.size; i++ {
				if ev := l.ring[(l.head+i)%len(l.ring)]; st.wants(ev) {
					st.replay = append(st.replay, ev)
				}
			}
		}
	}
	l.subs[st] = struct{}{}
	return st
}

// close ends every stream; the log takes no more events.
func (l *eventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for st := range l.subs {
		l.endLocked(st)
	}
}

func (l *eventLog) endLocked(st *eventStream) {
	if !st.ended {
		st.ended = true
		delete(l.subs, st)
		close(st.ch)
	}
}

// eventStream is one reader of an eventLog: first its replay (or its one
// resync), then live events from its bounded channel.
type eventStream struct {
	log    *eventLog
	worker registry.WorkerID
	// ch carries live events; the log closes it when it ends the stream.
	ch chan registry.Event
	// ended is guarded by log.mu.
	ended bool
	// replay belongs to the reader (Next).
	replay []registry.Event
	// closed is set by Close: Next then ends at once.
	closed atomic.Bool
}

var _ registry.EventStream = (*eventStream)(nil)

func (st *eventStream) wants(ev registry.Event) bool {
	return st.worker == "" || ev.Kind == registry.EventResync || ev.Ref.WorkerID == st.worker
}

// Next returns the next event: the replay first, then live events. It
// returns ctx.Err() when ctx ends and registry.ErrStreamEnded once the
// stream was closed, cut for lagging or the Source closed.
func (st *eventStream) Next(ctx context.Context) (registry.Event, error) {
	if st.closed.Load() {
		return registry.Event{}, registry.ErrStreamEnded
	}
	if len(st.replay) > 0 {
		ev := st.replay[0]
		st.replay[0] = registry.Event{} // let the Worker go
		st.replay = st.replay[1:]
		return ev, nil
	}
	select {
	case ev, ok := <-st.ch:
		if !ok {
			return registry.Event{}, registry.ErrStreamEnded
		}
		return ev, nil
	case <-ctx.Done():
		return registry.Event{}, ctx.Err()
	}
}

// Close ends the stream and releases its place in the log.
func (st *eventStream) Close() {
	st.closed.Store(true)
	st.log.mu.Lock()
	defer st.log.mu.Unlock()
	st.log.endLocked(st)
}

// Events streams the changes the index applies to the current workspace's
// Workers: worker_upserted (a pod listed anew or projected differently) and
// worker_removed (a pod gone, no longer readable or moved to another
// workspace). q.WorkerID keeps one Worker's events; it must name a Worker
// of the current workspace (unknown_worker, worker_not_visible otherwise). A
// stream without a cursor delivers every change applied after Events
// returned; with a cursor of this index the retained events after it, then
// live ones; with any other cursor (an earlier process, a trimmed one) one
// resync first. Without a started index (no data dir, not started, closed)
// Events answers runtime_unavailable.
func (s *Source) Events(_ context.Context, q registry.EventQuery) (registry.EventStream, error) {
	s.mu.Lock()
	log := s.events
	s.mu.Unlock()
	if log == nil {
		return nil, registry.RuntimeUnavailable(RuntimeID, "Local worker events need the local pod index, which is not running.", nil)
	}
	if q.WorkerID != "" {
		if _, err := s.Worker(context.Background(), q.WorkerID); err != nil {
			return nil, err
		}
	}
	return log.subscribe(q), nil
}

var _ registry.EventStreamer = (*Source)(nil)
