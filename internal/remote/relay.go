package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gen "github.com/workspace-backend/runtime-registry/internal/gen/workerruntimeapi"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Relay bounds.
const (
	ringSize      = 4096    // recent events kept for resuming browsers
	ringMaxBytes  = 4 << 20 // and their transcript content at most, about (the stream is always open)
	subscriberBuf = 256     // a browser stream further behind than this is cut
	reconnectMin  = 200 * time.Millisecond
	reconnectMax  = 5 * time.Second
)

// relay holds one upstream event stream to the Runtime from Start to Close
// (keep reconnects it with backoff; before Start, while at least one browser
// stream watches) and fans the events out. It also keeps the position of
// the stream (pos) that versions the cached list pages (listcache.go).
// Browser cursors are
// "<instance tag>:<runtime cursor>": a browser that resumes is replayed
// from the recent events kept here or, for an older cursor, through a
// catch-up stream of its own read upstream until it meets the shared one.
type relay struct {
	s *Source

	mu        sync.Mutex
	subs      map[*stream]struct{}
	running   bool
	cancel    context.CancelFunc // ends the upstream loop
	connCanc  context.CancelFunc // ends the current upstream connection
	connected chan struct{}      // closed once the current loop is connected
	loopDone  chan struct{}
	instance  string // the Runtime's instance id as last seen
	last      string // the last runtime cursor received
	ring      []ringEvent
	ringBytes int // ringEvent.size of the ring
	closed    bool
	pinned    bool // keep holds the upstream loop running without browsers

	// pos is the relay's position: a generation that moves on every event,
	// (re)connection, disconnection, instance change and own write, shifted
	// left by one, with the low bit set while the upstream stream is
	// connected. Atomic: every list reads it.
	pos atomic.Uint64
	upC chan struct{} // closed (and reset) when the stream connects; r.mu
}

// upLocked returns a channel that is closed once the upstream stream is
// connected (at once if it is). r.mu held.
func (r *relay) upLocked() <-chan struct{} {
	if cacheable(r.pos.Load()) {
		c := make(chan struct{})
		close(c)
		return c
	}
	if r.upC == nil {
		r.upC = make(chan struct{})
	}
	return r.upC
}

// moved advances the position, setting the connected bit as given. r.mu
// held (it wakes the waiters of upLocked).
func (r *relay) moved(connected bool) {
	var bit uint64
	if connected {
		bit = 1
	}
	for {
		old := r.pos.Load()
		if r.pos.CompareAndSwap(old, ((old>>1)+1)<<1|bit) {
			break
		}
	}
	if connected && r.upC != nil {
		close(r.upC)
		r.upC = nil
	}
}

// bump advances the position, keeping the connected bit.
func (r *relay) bump() {
	for {
		old := r.pos.Load()
		if r.pos.CompareAndSwap(old, ((old>>1)+1)<<1|old&1) {
			return
		}
	}
}

// size is about what one kept event holds: its transcript content (up to
// 64 KiB a line) and a fixed allowance for the rest.
func (e ringEvent) size() int {
	return 256 + len(e.rc) + len(e.ev.Entry.Content)
}

type ringEvent struct {
	rc string
	ev registry.Event
}

func newRelay(s *Source) *relay { return &relay{s: s, subs: map[*stream]struct{}{}} }

// tagOf is the short tag of an instance id that prefixes browser cursors.
func tagOf(instance string) string {
	sum := sha256.Sum256([]byte(instance))
	return "r" + hex.EncodeToString(sum[:4])
}

func (r *relay) cursorOf(rc string) string {
	return tagOf(r.instance) + ":" + rc
}

// parseCursor splits a browser cursor; ok is false for one this source did
// not make.
func parseCursor(c string) (tag, rc string, ok bool) {
	tag, rc, ok = strings.Cut(c, ":")
	if !ok || len(tag) != 9 || tag[0] != 'r' || rc == "" || !registry.ValidID(rc) {
		return "", "", false
	}
	return tag, rc, true
}

// stream is one browser stream.
type stream struct {
	r        *relay
	workerID registry.WorkerID
	ch       chan registry.Event
	end      chan struct{} // closed when the relay cuts the stream
	endOnce  sync.Once

	mu      sync.Mutex
	pending []registry.Event

	// catch-up: the stream's own upstream reader until it meets the relay
	catchup     *sseReader
	catchBody   io.Closer
	catchCancel context.CancelFunc
}

func (st *stream) cut() { st.endOnce.Do(func() { close(st.end) }) }

// Events opens a browser stream of the Runtime (or of one Worker).
func (s *Source) Events(ctx context.Context, q registry.EventQuery) (registry.EventStream, error) {
	if f, down := s.down(); down {
		return nil, s.unavailable(f)
	}
	return s.relay.subscribe(ctx, q)
}

// ensureRunning starts the upstream loop if it is not running and waits
// until it is connected (so a stream opened without a cursor misses
// nothing after it is answered, and a resumed cursor is checked against the
// instance id read just before that connection: the loop may be
// reconnecting to a restarted Runtime). Called with r.mu held; it releases it
// while waiting and holds it again on return.
func (r *relay) ensureRunning(ctx context.Context) error {
	if r.closed {
		return r.s.unavailable(faultUnreachable)
	}
	r.startLocked()
	up, done := r.upLocked(), r.loopDone
	r.mu.Unlock()
	defer r.mu.Lock()
	wait := time.NewTimer(r.s.cfg.Timeout)
	defer wait.Stop()
	select {
	case <-up:
		return nil
	case <-done:
	case <-wait.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	f, _ := r.s.down()
	if f == faultNone {
		f = faultUnreachable
	}
	return r.s.unavailable(f)
}

// startLocked starts the upstream loop unless it runs. r.mu held.
func (r *relay) startLocked() {
	if r.running {
		return
	}
	lctx, cancel := context.WithCancel(context.Background())
	r.running, r.cancel = true, cancel
	r.moved(false) // no stream of the new loop is connected yet
	r.connected = make(chan struct{})
	r.loopDone = make(chan struct{})
	go r.loop(lctx, r.connected, r.loopDone)
}

// keep holds the upstream loop running until ctx ends (Start to Close),
// so that the list cache has a position to trust while no browser
// watches: when the loop gives up (the Runtime is down or unreachable) it
// is started again after a backoff (200 ms doubling to 5 s, reset once a
// loop has connected). It closes done when it returns.
func (r *relay) keep(ctx context.Context, done chan struct{}) {
	defer close(done)
	backoff := reconnectMin
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		r.pinned = true
		r.startLocked()
		connected, loopDone := r.connected, r.loopDone
		r.mu.Unlock()
		select {
		case <-loopDone:
		case <-ctx.Done():
			return
		}
		select {
		case <-connected:
			backoff = reconnectMin
		default:
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, reconnectMax)
	}
}

func (r *relay) subscribe(ctx context.Context, q registry.EventQuery) (registry.EventStream, error) {
	st := &stream{r: r, workerID: q.WorkerID, ch: make(chan registry.Event, subscriberBuf), end: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ensureRunning(ctx); err != nil {
		r.stopIfIdle()
		return nil, err
	}
	if q.Cursor == "" {
		r.subs[st] = struct{}{}
		return st, nil
	}
	tag, rc, ok := parseCursor(q.Cursor)
	switch {
	case !ok:
		st.pending = []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncCursorUnknown}}
		r.subs[st] = struct{}{}
		return st, nil
	case tag != tagOf(r.instance):
		st.pending = []registry.Event{{Kind: registry.EventResync, Reason: registry.ResyncSourceRestarted}}
		r.subs[st] = struct{}{}
		return st, nil
	}
	if replay, found := r.after(rc, st.workerID); found {
		st.pending = replay
		r.subs[st] = struct{}{}
		return st, nil
	}
	// An older cursor: catch up through a stream of its own, opened now so
	// nothing after it is missed; Next switches to the shared stream when
	// the two meet.
	r.mu.Unlock()
	rd, body, cancel, err := r.s.openUpstream(ctx, rc)
	r.mu.Lock()
	if err != nil {
		r.stopIfIdle()
		return nil, err
	}
	st.catchup, st.catchBody, st.catchCancel = rd, body, cancel
	return st, nil
}

// after returns the kept events after runtime cursor rc (for workerID, or
// all), and whether rc is known here (the last one, or in the ring).
func (r *relay) after(rc string, workerID registry.WorkerID) ([]registry.Event, bool) {
	if rc == r.last && rc != "" {
		return nil, true
	}
	for i := range r.ring {
		if r.ring[i].rc == rc {
			var out []registry.Event
			for _, re := range r.ring[i+1:] {
				if workerID == "" || re.ev.Ref.WorkerID == workerID {
					out = append(out, re.ev)
				}
			}
			return out, true
		}
	}
	return nil, false
}

// stopIfIdle ends the upstream loop when no browser watches and keep does
// not hold it. r.mu held.
func (r *relay) stopIfIdle() {
	if len(r.subs) == 0 && r.running && !r.pinned {
		r.cancel()
		r.running = false
		r.moved(false)
	}
}

func (r *relay) remove(st *stream) {
	r.mu.Lock()
	delete(r.subs, st)
	r.stopIfIdle()
	r.mu.Unlock()
}

// broadcast hands ev to every stream that wants it; a full one is cut. r.mu held.
func (r *relay) broadcast(ev registry.Event) {
	for st := range r.subs {
		if ev.Kind != registry.EventResync && st.workerID != "" && ev.Ref.WorkerID != st.workerID {
			continue
		}
		select {
		case st.ch <- ev:
		default:
			delete(r.subs, st)
			st.cut()
		}
	}
}

// endAll cuts every browser stream (they resume with their last cursor). r.mu held.
func (r *relay) endAll() {
	for st := range r.subs {
		delete(r.subs, st)
		st.cut()
	}
	r.stopIfIdle()
}

// sourceDown is called when the Source starts failing fast: the browser
// streams end; they are answered 503 until a probe succeeds.
func (r *relay) sourceDown() {
	r.bump()
	r.mu.Lock()
	r.endAll()
	r.mu.Unlock()
}

func (r *relay) close() {
	r.mu.Lock()
	r.closed, r.pinned = true, false
	r.endAll()
	done := r.loopDone
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

// observeInstance records the Runtime's instance id; a change (its store
// was replaced) sends resync and restarts the upstream stream from now.
func (r *relay) observeInstance(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setInstanceLocked(id)
}

func (r *relay) setInstanceLocked(id string) {
	if r.instance == id {
		return
	}
	changed := r.instance != ""
	r.instance = id
	r.bump()
	if !changed {
		return
	}
	r.ring, r.ringBytes, r.last = nil, 0, ""
	r.broadcast(registry.Event{Kind: registry.EventResync, Reason: registry.ResyncSourceRestarted})
	if r.connCanc != nil {
		r.connCanc()
	}
}

// openUpstream opens GET /v1/events after runtime cursor rc ("" = from
// now), waiting at most the Runtime's timeout for the headers.
func (s *Source) openUpstream(ctx context.Context, rc string) (*sseReader, io.Closer, context.CancelFunc, error) {
	cctx, cancel := context.WithCancel(ctx)
	params := &gen.StreamEventsParams{}
	if rc != "" {
		params.LastEventID = &rc
	}
	timer := time.AfterFunc(s.cfg.Timeout, cancel)
	resp, err := s.client.StreamEvents(cctx, params)
	stopped := timer.Stop()
	if err != nil || !stopped {
		cancel()
		if resp != nil {
			_ = resp.Body.Close()
		}
		if ctx.Err() != nil {
			return nil, nil, nil, ctx.Err()
		}
		f := faultTimeout
		if err != nil && stopped {
			f = classify(err)
		}
		s.recordFailure(f)
		return nil, nil, nil, s.unavailable(f)
	}
	if resp.StatusCode != http.StatusOK || !isJSON(resp.Header.Get("Content-Type"), "text/event-stream") {
		f, derr := s.readAnswer(resp, http.StatusOK, "", nil)
		cancel()
		if f == faultNone {
			f = faultBadResponse
		}
		if derr != nil {
			return nil, nil, nil, derr
		}
		s.recordFailure(f)
		return nil, nil, nil, s.unavailable(f)
	}
	s.recordSuccess()
	return newSSEReader(resp.Body), resp.Body, cancel, nil
}

// loop holds the upstream stream until ctx ends: it (re)connects from the
// last cursor, checking the instance id first, and fans out every event.
func (r *relay) loop(ctx context.Context, connected chan struct{}, done chan struct{}) {
	defer close(done)
	defer func() {
		// A loop that gave up (the Runtime is down) ends its streams and
		// lets the next subscriber start a fresh one.
		r.mu.Lock()
		if r.loopDone == done && r.running {
			r.running = false
			r.moved(false)
			r.cancel()
			for st := range r.subs {
				delete(r.subs, st)
				st.cut()
			}
		}
		r.mu.Unlock()
	}()
	backoff := reconnectMin
	first := true
	for ctx.Err() == nil {
		if _, down := r.s.down(); down {
			r.mu.Lock()
			r.endAll()
			r.mu.Unlock()
			return
		}
		info, err := r.s.fetchInfo(ctx, true)
		var rd *sseReader
		var body io.Closer
		var cancel context.CancelFunc
		if err == nil {
			r.mu.Lock()
			r.setInstanceLocked(info.InstanceId)
			last := r.last
			r.mu.Unlock()
			rd, body, cancel, err = r.s.openUpstream(ctx, last)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if first {
				return // the subscriber that started the loop is answered 503
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, reconnectMax)
			continue
		}
		r.mu.Lock()
		r.connCanc = cancel
		if r.loopDone == done {
			// The Runtime subscribed this stream before it answered the
			// headers: every commit from here on arrives as an event.
			r.moved(true)
		}
		r.mu.Unlock()
		if first {
			close(connected)
			first = false
		}
		backoff = reconnectMin
		// A stream silent for longer than the Runtime's heartbeats is dead
		// (a connection lost without an error): cut it and reconnect.
		idle := time.AfterFunc(r.s.idle, cancel)
		rd.onLine = func() { idle.Reset(r.s.idle) }
		r.pump(rd, done)
		idle.Stop()
		cancel()
		_ = body.Close()
		r.mu.Lock()
		if r.loopDone == done {
			r.moved(false)
		}
		r.mu.Unlock()
	}
}

// remember keeps re in the ring; past ringSize events or ringMaxBytes it
// keeps the newer half (by count and by bytes): an older cursor catches up
// upstream instead. r.mu held.
func (r *relay) remember(re ringEvent) {
	r.ring = append(r.ring, re)
	r.ringBytes += re.size()
	if len(r.ring) <= ringSize && r.ringBytes <= ringMaxBytes {
		return
	}
	drop := 0
	for drop < len(r.ring) && (len(r.ring)-drop > ringSize/2 || r.ringBytes > ringMaxBytes/2) {
		r.ringBytes -= r.ring[drop].size()
		drop++
	}
	r.ring = append(r.ring[:0:0], r.ring[drop:]...)
}

// pump reads the upstream stream until it ends.
func (r *relay) pump(rd *sseReader, done chan struct{}) {
	for {
		f, err := rd.next()
		if err != nil {
			return
		}
		rc, ev, ok := r.s.eventIn(f)
		if !ok {
			r.mu.Lock()
			if r.loopDone == done {
				r.bump() // something changed, even if this backend cannot say what
			}
			r.mu.Unlock()
			continue
		}
		r.mu.Lock()
		if r.loopDone != done {
			// A newer loop holds the stream now: this one must not repeat it.
			r.mu.Unlock()
			return
		}
		r.bump()
		if ev.Kind == registry.EventResync {
			r.ring, r.ringBytes, r.last = nil, 0, ""
			r.broadcast(ev)
			r.mu.Unlock()
			continue
		}
		ev.Cursor = r.cursorOf(rc)
		r.last = rc
		r.remember(ringEvent{rc: rc, ev: ev})
		r.broadcast(ev)
		r.mu.Unlock()
	}
}

// eventIn converts one upstream frame; ok is false for a frame to skip (an
// unknown kind, a malformed one: logged by kind only).
func (s *Source) eventIn(f frame) (string, registry.Event, bool) {
	kind := registry.EventKind(f.event)
	if kind == registry.EventResync {
		var d gen.ResyncEvent
		reason := registry.ResyncCursorUnknown
		if json.Unmarshal(f.data, &d) == nil {
			switch string(d.Reason) {
			case registry.ResyncCursorExpired, registry.ResyncSubscriberLagged, registry.ResyncCursorUnknown:
				reason = string(d.Reason)
			}
		}
		return "", registry.Event{Kind: registry.EventResync, Reason: reason}, true
	}
	if !registry.ValidID(f.id) || len(f.id) > 100 {
		s.log.Warn("remote event skipped", slog.String("kind", boundedKind(f.event)), slog.String("reason", "cursor"))
		return "", registry.Event{}, false
	}
	switch kind {
	case registry.EventWorkerUpserted:
		var w gen.Worker
		if json.Unmarshal(f.data, &w) == nil {
			if rw, ok := s.workerIn(w); ok {
				return f.id, registry.Event{Kind: kind, Ref: rw.Ref(), Worker: rw}, true
			}
		}
	case registry.EventWorkerRemoved:
		var d gen.WorkerRemovedEvent
		if json.Unmarshal(f.data, &d) == nil && registry.ValidID(d.WorkerId) {
			return f.id, registry.Event{Kind: kind, Ref: registry.WorkerRef{RuntimeID: s.cfg.ID, WorkerID: registry.WorkerID(d.WorkerId)}}, true
		}
	case registry.EventTranscriptAppended:
		var d gen.TranscriptAppendedEvent
		if json.Unmarshal(f.data, &d) == nil && registry.ValidID(d.WorkerId) {
			item := gen.TranscriptItem{Sequence: d.Sequence, Role: d.Role, Content: d.Content, At: d.At}
			if e, ok := entryIn(item); ok {
				return f.id, registry.Event{Kind: kind, Ref: registry.WorkerRef{RuntimeID: s.cfg.ID, WorkerID: registry.WorkerID(d.WorkerId)}, Entry: e}, true
			}
		}
	}
	s.log.Warn("remote event skipped", slog.String("kind", boundedKind(f.event)), slog.String("reason", "data"))
	return "", registry.Event{}, false
}

func boundedKind(k string) string {
	switch registry.EventKind(k) {
	case registry.EventWorkerUpserted, registry.EventWorkerRemoved, registry.EventTranscriptAppended, registry.EventResync:
		return k
	}
	return "unknown"
}

// Next returns the next event of the browser stream.
func (st *stream) Next(ctx context.Context) (registry.Event, error) {
	st.mu.Lock()
	if len(st.pending) > 0 {
		ev := st.pending[0]
		st.pending = st.pending[1:]
		st.mu.Unlock()
		return ev, nil
	}
	catching := st.catchup != nil
	st.mu.Unlock()
	if catching {
		return st.nextCatchup(ctx)
	}
	select {
	case ev := <-st.ch:
		return ev, nil
	default:
	}
	select {
	case ev := <-st.ch:
		return ev, nil
	case <-st.end:
		// Deliver what was queued before the cut, then end.
		select {
		case ev := <-st.ch:
			return ev, nil
		default:
		}
		return registry.Event{}, registry.ErrStreamEnded
	case <-ctx.Done():
		return registry.Event{}, ctx.Err()
	}
}

// nextCatchup reads the stream's own upstream connection until an event the
// relay also holds: from there the stream joins the relay.
func (st *stream) nextCatchup(ctx context.Context) (registry.Event, error) {
	r := st.r
	st.mu.Lock()
	rd := st.catchup
	st.mu.Unlock()
	if rd == nil {
		return st.Next(ctx)
	}
	for {
		f, err := rd.next()
		if err != nil {
			st.stopCatchup()
			if ctx.Err() != nil {
				return registry.Event{}, ctx.Err()
			}
			return registry.Event{}, registry.ErrStreamEnded
		}
		rc, ev, ok := r.s.eventIn(f)
		if !ok {
			continue
		}
		r.mu.Lock()
		if ev.Kind == registry.EventResync {
			// The Runtime no longer holds the cursor: join the live stream
			// first, then tell the browser to re-read.
			st.join(nil)
			r.mu.Unlock()
			st.stopCatchup()
			return ev, nil
		}
		ev.Cursor = r.cursorOf(rc)
		replay, found := r.after(rc, st.workerID)
		if found {
			st.join(replay)
		}
		r.mu.Unlock()
		if found {
			st.stopCatchup()
		}
		if st.workerID != "" && ev.Ref.WorkerID != st.workerID {
			if found {
				return st.Next(ctx)
			}
			continue
		}
		return ev, nil
	}
}

// join makes the stream a relay subscriber with replay pending. r.mu held.
func (st *stream) join(replay []registry.Event) {
	st.mu.Lock()
	st.pending = append(st.pending, replay...)
	st.mu.Unlock()
	if st.r.closed || !st.r.running {
		st.cut()
		return
	}
	st.r.subs[st] = struct{}{}
}

func (st *stream) stopCatchup() {
	st.mu.Lock()
	cancel, body := st.catchCancel, st.catchBody
	st.catchup, st.catchCancel, st.catchBody = nil, nil, nil
	st.mu.Unlock()
	if cancel != nil {
		cancel()
		_ = body.Close()
	}
}

// Close ends the browser stream.
func (st *stream) Close() {
	st.stopCatchup()
	st.cut()
	st.r.remove(st)
}
