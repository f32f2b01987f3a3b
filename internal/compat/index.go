package compat

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Timing of the index. See the package documentation for the bounds they give.
const (
	// DefaultPollInterval is how often the store is swept for changes when
	// file-system watches are unavailable.
	DefaultPollInterval = 500 * time.Millisecond
	// eventDelay gathers the events of one burst of writes into one rebuild:
	// a batch is applied this long after its first event.
	eventDelay = 20 * time.Millisecond
	// settleDelay is how long a pod whose metadata.json stopped parsing keeps
	// its previous projection (a writer may be half-way through it); after
	// it the pod is re-read and whatever it then says is shown.
	settleDelay = 500 * time.Millisecond
	// DefaultReconcileInterval is how often a watching index re-checks the
	// whole store (stat only), so that a replaced pods/, a swapped symlinked
	// data dir or a lost event heals by itself; a polling index tries to go
	// back to watching as often (unless the watch limit was the reason).
	DefaultReconcileInterval = 30 * time.Second
	// firstRetry is the wait before a read that failed in a way that may
	// pass is tried again; each further failure doubles it, up to the
	// reconcile interval.
	firstRetry = time.Second
	// eventBuffer is the watcher's event channel size; the kernel queue in
	// front of it holds far more (fs.inotify.max_queued_events).
	eventBuffer = 4096
	// scanReaders read pods in parallel at start-up and on every sweep.
	// More than the cores: with a cold page cache a read waits for the
	// disk, not for a core (10,000 pods with the cache dropped: about
	// 1.5–2x faster with 16 than with 2).
	scanReaders = 16
)

// index keeps the snapshot of one store up to date. One goroutine (run) owns
// every field but the published snapshot, which readers load atomically.
type index struct {
	cfg     scanConfig
	podsDir string
	publish func(*snapshot)
	// events receives the changes each publish applies (nil: none kept).
	events *eventLog
	poll   time.Duration
	// reconcile is the interval of the full stat-only sweep while watching
	// (and of the retries of watching while polling).
	reconcile time.Duration

	// The fields below belong to the index goroutine (and to start, before
	// that goroutine exists).
	gen     uint64
	state   storeState
	cause   error
	records map[string]*podRecord
	names   []string // sorted keys of records
	// pending maps each pod whose record changed since the last publish to
	// its record as of that publish (nil when it had none): the next
	// publish turns them into events.
	pending map[string]*podRecord
	watcher *watcher
	// podsIdent is the directory pods/ was when its watch was added; a
	// sweep that finds another one there watches again.
	podsIdent dirIdent
	// podsLost says the watch of pods/ itself is gone (pods/ was removed or
	// renamed): the next sweep watches again whatever the identity says.
	podsLost bool
	// noWatch says why the index polls ("" while it watches).
	noWatch string
	dirty   map[string]bool
	resync  bool
	batchAt time.Time // when the pending batch is due; zero when none
	// held maps a pod whose projection is kept through a torn write to the
	// end of its hold (zero once it is due to be read again).
	held map[string]time.Time
	// retry maps a pod whose read failed in a way that may pass to when it
	// is read again.
	retry     map[string]retryState
	nextPoll  time.Time
	nextRetry time.Time
	nextSweep time.Time

	// cacheFile is the index cache (cachefile.go; "" when off), cachePrint
	// the fingerprint of this configuration it must carry. cacheSeeded is
	// the number of records seeded from it at start; savedGen and
	// savedReads are the generation and read count last written to it, at
	// savedAt.
	cacheFile   string
	cachePrint  [32]byte
	cacheSeeded int
	// cacheLoad delivers the cache's records to the first scan (nil once
	// taken, or when there is no cache).
	cacheLoad  chan cacheLoaded
	savedGen   uint64
	savedReads uint64
	savedAt    time.Time
	// cacheFailure is the reason the last write of the cache failed ("" when
	// it did not), so that a lasting failure is logged once.
	cacheFailure string

	stop chan struct{}
	done chan struct{}

	// Stats, read by any goroutine.
	watching  atomic.Bool
	lastReval atomic.Int64  // unix nanoseconds of the last completed revalidation
	reads     atomic.Uint64 // pod entries read (projected afresh) so far
	heldNow   atomic.Int64  // pods whose previous projection is kept right now
	sweeps    atomic.Uint64 // full sweeps of the store so far
	// cacheWrites counts the index cache files written.
	cacheWrites atomic.Uint64
	stopOnce    sync.Once
	forcePolls  bool
}

// retryState is when a failed read is tried again, and the wait before it.
type retryState struct {
	at    time.Time
	delay time.Duration
}

// dirIdent identifies a directory: a replaced one has another inode.
type dirIdent struct{ dev, ino uint64 }

// dirIdentity is the identity of the directory at path, symlinks followed
// (the configured data dir and pods/ may be symlinks, and a watch follows
// them too).
func dirIdentity(path string) (dirIdent, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		if err == nil {
			return dirIdent{dev: uint64(st.Dev), ino: st.Ino}, nil //nolint:unconvert // the types differ between architectures
		}
		if err != syscall.EINTR { //nolint:errorlint // raw syscall errors are bare Errno values
			return dirIdent{}, err
		}
	}
}

// newIndex makes an index; start builds its first snapshot.
func newIndex(cfg scanConfig, poll, reconcile time.Duration, forcePoll bool, publish func(*snapshot), events *eventLog) *index {
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	if reconcile <= 0 {
		reconcile = DefaultReconcileInterval
	}
	return &index{
		cfg: cfg, podsDir: cfg.podsDir(), publish: publish, events: events, poll: poll, reconcile: reconcile, forcePolls: forcePoll,
		records: map[string]*podRecord{}, pending: map[string]*podRecord{},
		dirty: map[string]bool{}, held: map[string]time.Time{}, retry: map[string]retryState{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// start watches pods/, scans the store once (publishing the first snapshot
// before it returns) and starts the goroutine that keeps it fresh. The
// watches of the pod directories are added by that goroutine right away,
// followed by a sweep that re-reads every pod whose metadata.json changed
// since the first scan read it: start-up does not wait for 10,000 watches,
// and a rewrite made meanwhile shows after that sweep (well within 1 s).
func (ix *index) start(ctx context.Context) error {
	// The cache is read and decoded while pods/ is watched and listed (on a
	// cold page cache each waits for the disk); records seeded from it are
	// revalidated by the first scan like any others: only the pods whose
	// file key changed are read.
	ix.loadCacheAsync()
	if ix.forcePolls {
		ix.noWatch = "disabled"
	} else {
		ix.openWatcher()
	}
	if err := ix.fullScan(ctx, false); err != nil {
		ix.closeWatcher()
		return err
	}
	now := time.Now()
	if ix.watcher != nil {
		ix.resync, ix.batchAt = true, now
	}
	ix.nextPoll = now.Add(ix.poll)
	ix.nextRetry = now.Add(ix.reconcile)
	ix.nextSweep = now.Add(ix.reconcile)
	go ix.run()
	return nil
}

// close stops the goroutine and releases the watches.
func (ix *index) close() {
	ix.stopOnce.Do(func() { close(ix.stop) })
	<-ix.done
}

func (ix *index) openWatcher() {
	w, err := newWatcher(ix.podsDir, eventBuffer)
	if err != nil {
		ix.fallBack(watchFailure(err))
		return
	}
	ix.watcher = w
	// The identity is taken before the watch is added: if pods/ is replaced
	// in between, the next sweep sees an identity other than the watched
	// one and watches again (the other order could miss it for good).
	ident, identErr := dirIdentity(ix.podsDir)
	if err := w.addPods(); err != nil {
		// Still (or again) not watching: no new warning for the same reason.
		if reason := watchFailure(err); reason != ix.noWatch {
			ix.noWatch = ""
			ix.fallBack(reason)
		} else {
			ix.closeWatcher()
		}
		return
	}
	if identErr != nil {
		ident = dirIdent{} // never matches: the next sweep watches again
	}
	ix.podsIdent, ix.podsLost = ident, false
	ix.noWatch = ""
}

// checkPodsWatch watches pods/ again when its watch is gone or pods/ is
// another directory than the watched one (`mv pods pods.old && mkdir pods`,
// `rm -rf pods && mkdir pods`, a swapped symlinked data dir): a watch
// follows the inode, not the name. It starts a new watcher, so every pod
// watch is added again by the sweep that follows.
func (ix *index) checkPodsWatch() {
	ident, err := dirIdentity(ix.podsDir)
	if err != nil {
		return // the listing reports it
	}
	if !ix.podsLost && ident == ix.podsIdent {
		return
	}
	ix.cfg.log.Debug("local pod store: pods directory replaced, watching it again")
	ix.closeWatcher()
	ix.openWatcher()
}

// watchFailure is the reason word for a failed watch: never the error text,
// which holds a path.
func watchFailure(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return "watch_limit"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "watcher_limit"
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return "store_missing"
	default:
		return "watch_failed"
	}
}

// fallBack gives up watching: the index polls from now on (and retries
// watching later unless the watch limit is the reason).
func (ix *index) fallBack(reason string) {
	if ix.noWatch == "" {
		ix.cfg.log.Warn("local pod store: file watches unavailable, polling", "reason", reason,
			"poll_interval", ix.poll.String())
	}
	ix.noWatch = reason
	ix.closeWatcher()
}

func (ix *index) closeWatcher() {
	if ix.watcher != nil {
		_ = ix.watcher.close() // nothing is lost: the index polls instead
		ix.watcher = nil
	}
	ix.watching.Store(false)
}

// watchPod adds a watch on the pod directory name, or renews the one it
// has (one system call, cheaper than a set of the watched names: every pod
// is in it).
func (ix *index) watchPod(name string) {
	if ix.watcher == nil {
		return
	}
	if err := ix.watcher.addPod(name); err != nil {
		reason := watchFailure(err)
		if reason == "watch_limit" || reason == "watcher_limit" {
			ix.fallBack(reason)
		}
		// Otherwise the pod went away or cannot be read: its pods/ entry
		// still reports it, and it is not listed anyway.
		return
	}
}

// fullScan reads the whole store, reusing the record of every pod whose
// metadata.json has not changed, and publishes the result. With watchPods it
// (re-)adds the watch of every pod directory before looking at the pod.
func (ix *index) fullScan(ctx context.Context, watchPods bool) error {
	now := time.Now()
	ix.sweeps.Add(1)
	if watchPods && ix.watcher != nil {
		ix.checkPodsWatch()
	}
	pods, ents, done, err := listPods(ix.podsDir)
	ix.seedFromCache()
	if err != nil {
		for name, old := range ix.records {
			ix.touch(name, old)
		}
		ix.records, ix.names = map[string]*podRecord{}, nil
		clear(ix.held)
		clear(ix.retry)
		ix.heldNow.Store(0)
		if ix.watcher != nil {
			ix.fallBack("store_missing")
		}
		if ix.state == storeUnreadable && ix.gen > 0 {
			// Still unreadable: the same answer, so the same snapshot (and
			// version) as before; only the check is newer.
			ix.lastReval.Store(now.UnixNano())
			return nil
		}
		ix.state, ix.cause = storeUnreadable, err
		ix.publishNow()
		return nil
	}
	defer done()
	wasUnreadable := ix.state != storeOK
	ix.state, ix.cause = storeOK, nil
	if watchPods && ix.watcher != nil {
		ix.watcher.reserve(len(ents))
	}
	recs := make([]*podRecord, len(ents))
	read := make([]bool, len(ents))
	var next atomic.Int64
	var wg sync.WaitGroup
	var watchMu sync.Mutex
	for range scanReaders {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ents) || ctx.Err() != nil {
					return
				}
				de := ents[i]
				name, typ := de.Name(), de.Type()
				prev := ix.records[name]
				if prev != nil {
					// One string per pod name, shared by the record, the
					// maps and the watch.
					name = prev.name
				}
				if typ.IsDir() && watchPods {
					watchMu.Lock()
					if ix.watcher != nil {
						ix.watchPod(name)
					}
					watchMu.Unlock()
				}
				recs[i], read[i] = ix.revalidate(prev, pods, name, typ, false, now)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	// A sweep holds a torn write back as the event path does: polling
	// must not drop a pod that is half-way through being rewritten.
	for i, r := range recs {
		prev := ix.records[r.name]
		ix.noteRetry(r, read[i], now)
		// Not on the first scan: a record seeded from the index cache is
		// never shown once its file changed (a fresh start would not).
		if r != prev && ix.gen > 0 && ix.hold(prev, r, now) {
			recs[i] = prev
		}
	}
	records := make(map[string]*podRecord, len(ents))
	names := make([]string, len(ents))
	for i, r := range recs {
		records[r.name] = r
		names[i] = r.name
	}
	changed := wasUnreadable || len(records) != len(ix.records)
	for name, r := range records {
		if old := ix.records[name]; old != r {
			ix.touch(name, old)
			changed = true
		}
	}
	for name, old := range ix.records {
		if _, ok := records[name]; !ok {
			ix.touch(name, old)
		}
	}
	ix.records, ix.names = records, names // listPods sorts by name
	for name := range ix.held {
		if _, ok := records[name]; !ok {
			delete(ix.held, name)
		}
	}
	for name := range ix.retry {
		if _, ok := records[name]; !ok {
			delete(ix.retry, name)
		}
	}
	ix.heldNow.Store(int64(len(ix.held)))
	ix.watching.Store(ix.watcher != nil && watchPods)
	if changed || ix.gen == 0 {
		ix.publishNow()
	}
	// Every pod was looked at: the index matches the store as of now.
	ix.lastReval.Store(now.UnixNano())
	return nil
}

// revalidate returns the record of pod name, and whether the pod was read:
// prev itself when its metadata.json has the key prev was read with and that
// key can be trusted (nothing is read), else the record of a fresh read.
// force reads whatever the key. A read that projects the same as prev keeps
// prev (with the new key), so that nothing is published for it. It only reads
// the index's maps, so the goroutines of a full scan may call it at once.
func (ix *index) revalidate(prev *podRecord, pods podsHandle, name string, typ fs.FileMode, force bool, now time.Time) (*podRecord, bool) {
	typ = typ.Type()
	if prev != nil && !force && prev.dirType == typ {
		if !typ.IsDir() {
			return prev, false
		}
		if ix.trusted(prev, now) && prev.key == ix.cfg.statKey(pods, name) {
			return prev, false
		}
	}
	ix.reads.Add(1)
	rec := recordFor(ix.cfg, pods, name, typ)
	if prev != nil && sameProjection(prev, rec) {
		// Only the index goroutine (or the one scan goroutine that owns
		// this pod) touches a record; the snapshot holds its own copies.
		prev.key, prev.racy, prev.retry = rec.key, rec.racy, rec.retry
		return prev, true
	}
	return rec, true
}

// trusted reports whether rec's key still stands for what was read: not
// when the read raced a write within one timestamp tick, not when the file
// changed while it was read, and not once a failed read is due to be tried
// again.
func (ix *index) trusted(rec *podRecord, now time.Time) bool {
	if rec.racy || rec.problem == "changed_during_read" {
		return false
	}
	if rec.retry {
		st, ok := ix.retry[rec.name]
		return ok && now.Before(st.at)
	}
	return true
}

// noteRetry schedules the next read of a pod whose read failed in a way that
// may pass (rec.retry), backing off from firstRetry to the reconcile
// interval, and forgets the schedule once a read no longer fails so. read
// says whether rec comes from a read just now.
func (ix *index) noteRetry(rec *podRecord, read bool, now time.Time) {
	if !read {
		return
	}
	if !rec.retry {
		delete(ix.retry, rec.name)
		return
	}
	st, ok := ix.retry[rec.name]
	switch {
	case !ok:
		st.delay = min(firstRetry, ix.reconcile)
	case now.Before(st.at):
		// Read early (an event, a racy key, a held pod settling): the
		// schedule stands.
		return
	default:
		st.delay = min(2*st.delay, ix.reconcile)
	}
	st.at = now.Add(st.delay)
	ix.retry[rec.name] = st
}

// publishNow builds a snapshot from the records and publishes it.
func (ix *index) publishNow() {
	var snap *snapshot
	switch ix.state {
	case storeUnreadable:
		snap = unreadableSnapshot(ix.cfg, ix.cause)
	default:
		recs := make([]*podRecord, 0, len(ix.names))
		for _, n := range ix.names {
			recs = append(recs, ix.records[n])
		}
		snap = build(ix.cfg.hostID, recs)
	}
	ix.gen++
	snap.version = strconv.FormatUint(ix.gen, 10)
	// Held first: whoever sees this snapshot sees the holds it reflects.
	ix.heldNow.Store(int64(len(ix.held)))
	ix.publish(snap)
	ix.lastReval.Store(snap.builtAt.UnixNano())
	// Events after the snapshot: a reader told of a change finds it in a
	// list or lookup made after the event.
	ix.emit(ix.gen == 1)
}

// touch notes that pod name's record is about to change from old, unless it
// already changed since the last publish (then the older one is kept).
func (ix *index) touch(name string, old *podRecord) {
	if _, ok := ix.pending[name]; !ok {
		ix.pending[name] = old
	}
}

// emit turns the records changed since the last publish into events, in
// worker id order: worker_upserted for a pod of the current workspace that is
// new or projected differently, worker_removed for one that was listed and is
// not any more (gone, unreadable, invalid, of another workspace). first
// publishes nothing: no stream can be open before the first snapshot.
func (ix *index) emit(first bool) {
	// A new map rather than clear: a cleared map keeps the buckets of its
	// largest size (the first publish touches every pod).
	defer func() { ix.pending = map[string]*podRecord{} }()
	if ix.events == nil || first || len(ix.pending) == 0 {
		return
	}
	evs := make([]registry.Event, 0, len(ix.pending))
	for name, old := range ix.pending {
		cur := ix.records[name]
		wasListed := old != nil && old.kind == recListed
		isListed := cur != nil && cur.kind == recListed
		ref := registry.WorkerRef{RuntimeID: RuntimeID, WorkerID: WorkerIDFor(name)}
		switch {
		case isListed && wasListed && sameEntry(old.entry, cur.entry):
		case isListed:
			evs = append(evs, registry.Event{Kind: registry.EventWorkerUpserted, Ref: ref, Worker: cur.entry.worker(ix.cfg.hostID)})
		case wasListed:
			evs = append(evs, registry.Event{Kind: registry.EventWorkerRemoved, Ref: ref})
		}
	}
	slices.SortFunc(evs, func(a, b registry.Event) int { return cmp.Compare(a.Ref.WorkerID, b.Ref.WorkerID) })
	ix.events.append(evs)
}

// run applies events and sweeps until close.
func (ix *index) run() {
	defer close(ix.done)
	defer ix.closeWatcher()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if ix.watcher != nil {
			events, errs = ix.watcher.Events, ix.watcher.Errors
		}
		timer.Reset(time.Until(ix.nextWake()))
		ix.heldNow.Store(int64(len(ix.held)))
		select {
		case <-ix.stop:
			ix.saveCache(time.Now())
			return
		case ev, ok := <-events:
			if !ok {
				ix.fallBack("watcher_closed")
				continue
			}
			ix.note(ev)
		case err, ok := <-errs:
			if !ok {
				ix.fallBack("watcher_closed")
				continue
			}
			// An overflow lost events: only a full sweep can tell what
			// changed. Any other watcher error is treated the same way.
			ix.cfg.log.Debug("local pod store: watcher reported lost events", "overflow", errors.Is(err, fsnotify.ErrEventOverflow))
			ix.resync = true
			ix.due(time.Now())
		case <-timer.C:
			ix.tick(time.Now())
		}
	}
}

// nextWake is the earliest moment something is due.
func (ix *index) nextWake() time.Time {
	wake := time.Now().Add(time.Hour)
	if !ix.batchAt.IsZero() && ix.batchAt.Before(wake) {
		wake = ix.batchAt
	}
	for _, t := range ix.held {
		if !t.IsZero() && t.Before(wake) {
			wake = t
		}
	}
	for _, r := range ix.retry {
		wake = minTime(wake, r.at)
	}
	if ix.watcher == nil {
		wake = minTime(wake, ix.nextPoll)
		if ix.noWatch != "watch_limit" && ix.noWatch != "disabled" {
			wake = minTime(wake, ix.nextRetry)
		}
	} else {
		wake = minTime(wake, ix.nextSweep)
	}
	return wake
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// due schedules the pending batch eventDelay after its first event.
func (ix *index) due(now time.Time) {
	if ix.batchAt.IsZero() {
		ix.batchAt = now.Add(eventDelay)
	}
}

// note records which pod an event concerns.
func (ix *index) note(ev fsnotify.Event) {
	dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	switch {
	case ev.Name == ix.podsDir:
		// pods/ itself was removed or renamed: its watch is gone too, and
		// the index is blind until the sweep watches pods/ again.
		ix.podsLost, ix.resync = true, true
		ix.watching.Store(false)
	case dir == ix.podsDir:
		// A directory made or renamed in its place (perhaps over it,
		// perhaps with the same inode) needs a new watch: applyDirty adds
		// one to every pod it reads.
		ix.dirty[base] = true
	case filepath.Dir(dir) == ix.podsDir && base == metadataFileName:
		ix.dirty[filepath.Base(dir)] = true
	default:
		return
	}
	ix.due(time.Now())
}

// tick does what is due at now: a batch of events, held pods, failed reads
// to try again, a poll sweep, a reconciliation sweep or a retry of the
// watches.
func (ix *index) tick(now time.Time) {
	if ix.watcher == nil && ix.noWatch != "watch_limit" && ix.noWatch != "disabled" && !now.Before(ix.nextRetry) {
		ix.nextRetry = now.Add(ix.reconcile)
		ix.openWatcher()
		if ix.watcher != nil {
			ix.resync = true // adds every pod's watch and catches up
		}
	}
	if ix.watcher == nil && !now.Before(ix.nextPoll) {
		ix.nextPoll = now.Add(ix.poll)
		ix.resync = true
	}
	if ix.watcher != nil && !now.Before(ix.nextSweep) {
		// Watching is not trusted blindly: a replaced pods/, a swapped
		// symlinked data dir or a lost event is found by this stat-only
		// sweep, which also adds any pod watch that went missing.
		ix.resync = true
	}
	for name, t := range ix.held {
		if !t.IsZero() && !now.Before(t) {
			// Settled: re-read once more and show whatever it says.
			ix.held[name] = time.Time{}
			ix.dirty[name] = true
			ix.batchAt = now
		}
	}
	for name, r := range ix.retry {
		if !now.Before(r.at) && !ix.dirty[name] {
			ix.dirty[name] = true
			ix.batchAt = now
		}
	}
	if ix.resync {
		ix.resync, ix.batchAt = false, time.Time{}
		ix.nextSweep = now.Add(ix.reconcile)
		ix.dirty = map[string]bool{}
		if err := ix.fullScan(context.Background(), true); err != nil {
			ix.cfg.log.Debug("local pod store: sweep failed")
		}
		// The cache is written after the first sweep, then at most once
		// per reconcile interval (and at close).
		if ix.savedAt.IsZero() || now.Sub(ix.savedAt) >= ix.reconcile {
			ix.saveCache(now)
		}
		return
	}
	if !ix.batchAt.IsZero() && !now.Before(ix.batchAt) {
		ix.batchAt = time.Time{}
		ix.applyDirty(now)
	}
}

// applyDirty re-reads the pods named by events and publishes a new snapshot
// if any of them changed.
func (ix *index) applyDirty(now time.Time) {
	if ix.state != storeOK {
		ix.resync = true
		ix.tick(now)
		return
	}
	changed := false
	for name := range ix.dirty {
		delete(ix.dirty, name)
		prev := ix.records[name]
		if prev != nil {
			name = prev.name
		} else {
			// The name is cut from an event's path: a copy of its own,
			// not the whole path, is what the index keeps.
			name = strings.Clone(name)
		}
		fi, err := os.Lstat(filepath.Join(ix.podsDir, name))
		if err != nil {
			if prev != nil {
				ix.touch(name, prev)
				ix.remove(name)
				changed = true
			}
			delete(ix.held, name)
			delete(ix.retry, name)
			continue
		}
		typ := fi.Mode().Type()
		if typ.IsDir() {
			ix.watchPod(name)
		}
		// Always read: an event says the file was written, and a rewrite
		// of the same size within one timestamp tick leaves its key as it
		// was. Held pods and due retries are read again the same way.
		rec, read := ix.revalidate(prev, byPath(ix.podsDir), name, typ, true, now)
		ix.noteRetry(rec, read, now)
		if rec == prev {
			continue
		}
		if ix.hold(prev, rec, now) {
			continue
		}
		if prev == nil {
			i, _ := slices.BinarySearch(ix.names, name)
			ix.names = slices.Insert(ix.names, i, name)
		}
		ix.touch(name, prev)
		ix.records[name] = rec
		changed = true
	}
	if changed {
		ix.publishNow()
	} else if ix.watcher != nil && !ix.podsLost {
		// Nothing new, and the watches say nothing else happened.
		ix.lastReval.Store(now.UnixNano())
	}
}

// hold keeps prev for settleDelay when a pod that had a projection now reads
// as invalid JSON or as changed while read (a writer is most likely half-way
// through the file), or could not be read for a reason that may pass. It
// reports whether prev was kept.
func (ix *index) hold(prev, rec *podRecord, now time.Time) bool {
	if prev == nil || (prev.kind != recListed && prev.kind != recHidden) {
		return false
	}
	deadline, held := ix.held[rec.name]
	if rec.kind != recProblem || (rec.problem != "json" && rec.problem != "changed_during_read" && !rec.retry) {
		delete(ix.held, rec.name)
		return false
	}
	switch {
	case held && deadline.IsZero():
		// Held for settleDelay and still invalid: show what the file says.
		delete(ix.held, rec.name)
		return false
	case held:
		return true
	}
	ix.held[rec.name] = now.Add(settleDelay)
	return true
}

func (ix *index) remove(name string) {
	delete(ix.records, name)
	if i, ok := slices.BinarySearch(ix.names, name); ok {
		ix.names = slices.Delete(ix.names, i, i+1)
	}
}
