package compat

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
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
	// watchRetryInterval is how often a polling index tries to go back to
	// watching, unless it gave up watching because the watch limit was hit.
	watchRetryInterval = 30 * time.Second
	// eventBuffer is the watcher's event channel size; the kernel queue in
	// front of it holds far more (fs.inotify.max_queued_events).
	eventBuffer = 4096
	// scanWorkers read pods in parallel at start-up and on a full resync.
	scanWorkers = 2
)

// index keeps the snapshot of one store up to date. One goroutine (run) owns
// every field but the published snapshot, which readers load atomically.
type index struct {
	cfg     scanConfig
	podsDir string
	publish func(*snapshot)
	poll    time.Duration

	// The fields below belong to the index goroutine (and to start, before
	// that goroutine exists).
	gen     uint64
	state   storeState
	cause   error
	records map[string]*podRecord
	names   []string // sorted keys of records
	// watched holds the pod directories with a watch.
	watched map[string]bool
	watcher *fsnotify.Watcher
	// noWatch says why the index polls ("" while it watches).
	noWatch   string
	dirty     map[string]bool
	resync    bool
	batchAt   time.Time // when the pending batch is due; zero when none
	held      map[string]time.Time
	nextPoll  time.Time
	nextRetry time.Time

	stop chan struct{}
	done chan struct{}

	// Stats, read by any goroutine.
	watching   atomic.Bool
	lastReval  atomic.Int64  // unix nanoseconds of the last completed revalidation
	reads      atomic.Uint64 // pod entries read (projected afresh) so far
	stopOnce   sync.Once
	forcePolls bool
}

// newIndex makes an index; start builds its first snapshot.
func newIndex(cfg scanConfig, poll time.Duration, forcePoll bool, publish func(*snapshot)) *index {
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	return &index{
		cfg: cfg, podsDir: cfg.podsDir(), publish: publish, poll: poll, forcePolls: forcePoll,
		records: map[string]*podRecord{}, watched: map[string]bool{},
		dirty: map[string]bool{}, held: map[string]time.Time{},
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
	ix.nextRetry = now.Add(watchRetryInterval)
	go ix.run()
	return nil
}

// close stops the goroutine and releases the watches.
func (ix *index) close() {
	ix.stopOnce.Do(func() { close(ix.stop) })
	<-ix.done
}

func (ix *index) openWatcher() {
	w, err := fsnotify.NewBufferedWatcher(eventBuffer)
	if err != nil {
		ix.fallBack(watchFailure(err))
		return
	}
	ix.watcher = w
	ix.watched = map[string]bool{}
	if err := w.Add(ix.podsDir); err != nil {
		// Still (or again) not watching: no new warning for the same reason.
		if reason := watchFailure(err); reason != ix.noWatch {
			ix.noWatch = ""
			ix.fallBack(reason)
		} else {
			ix.closeWatcher()
		}
		return
	}
	ix.noWatch = ""
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
		_ = ix.watcher.Close() // nothing is lost: the index polls instead
		ix.watcher = nil
	}
	ix.watched = map[string]bool{}
	ix.watching.Store(false)
}

// watchPod adds a watch on the pod directory name. force adds it even when
// the index believes it has one (a full scan cannot know what it missed).
func (ix *index) watchPod(name string, force bool) {
	if ix.watcher == nil || (ix.watched[name] && !force) {
		return
	}
	if err := ix.watcher.Add(filepath.Join(ix.podsDir, name)); err != nil {
		reason := watchFailure(err)
		if reason == "watch_limit" || reason == "watcher_limit" {
			ix.fallBack(reason)
		}
		// Otherwise the pod went away or cannot be read: its pods/ entry
		// still reports it, and it is not listed anyway.
		return
	}
	ix.watched[name] = true
}

// fullScan reads the whole store, reusing the record of every pod whose
// metadata.json has not changed, and publishes the result. With watchPods it
// (re-)adds the watch of every pod directory before looking at the pod.
func (ix *index) fullScan(ctx context.Context, watchPods bool) error {
	ents, err := os.ReadDir(ix.podsDir)
	if err != nil {
		ix.records, ix.names = map[string]*podRecord{}, nil
		ix.state, ix.cause = storeUnreadable, err
		if ix.watcher != nil {
			ix.fallBack("store_missing")
		}
		ix.publishNow()
		return nil
	}
	wasUnreadable := ix.state != storeOK
	ix.state, ix.cause = storeOK, nil
	recs := make([]*podRecord, len(ents))
	var next atomic.Int64
	var wg sync.WaitGroup
	var watchMu sync.Mutex
	for range scanWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ents) || ctx.Err() != nil {
					return
				}
				de := ents[i]
				name, typ := de.Name(), de.Type()
				if typ.IsDir() && watchPods {
					watchMu.Lock()
					if ix.watcher != nil {
						ix.watchPod(name, true)
					}
					watchMu.Unlock()
				}
				recs[i] = ix.revalidate(ix.records[name], name, typ, false)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	records := make(map[string]*podRecord, len(ents))
	names := make([]string, len(ents))
	for i, r := range recs {
		records[r.name] = r
		names[i] = r.name
	}
	changed := wasUnreadable || len(records) != len(ix.records)
	if !changed {
		for name, r := range records {
			if ix.records[name] != r {
				changed = true
				break
			}
		}
	}
	ix.records, ix.names = records, names // os.ReadDir sorts by name
	clear(ix.held)                        // a sweep shows every pod as it is now
	for name := range ix.watched {
		if _, ok := records[name]; !ok {
			delete(ix.watched, name)
		}
	}
	ix.watching.Store(ix.watcher != nil && watchPods)
	if changed || ix.gen == 0 {
		ix.publishNow()
	} else {
		ix.lastReval.Store(time.Now().UnixNano())
	}
	return nil
}

// revalidate returns the record of pod name: prev itself when its
// metadata.json has the key prev was read with (nothing is re-read), else a
// fresh record. force re-reads whatever the key. A pod that had a projection
// and whose metadata stops parsing keeps the previous projection for
// settleDelay (see run); the caller learns so from ix.held.
func (ix *index) revalidate(prev *podRecord, name string, typ fs.FileMode, force bool) *podRecord {
	typ = typ.Type()
	if prev != nil && !force && prev.dirType == typ {
		if !typ.IsDir() {
			return prev
		}
		if prev.key == statMetadata(filepath.Join(ix.podsDir, name)) && prev.problem != "changed_during_read" {
			return prev
		}
	}
	ix.reads.Add(1)
	return recordFor(ix.cfg, name, typ)
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
		snap = build(recs)
	}
	ix.gen++
	snap.version = strconv.FormatUint(ix.gen, 10)
	ix.publish(snap)
	ix.lastReval.Store(snap.builtAt.UnixNano())
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
		select {
		case <-ix.stop:
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
	if ix.watcher == nil {
		wake = minTime(wake, ix.nextPoll)
		if ix.noWatch != "watch_limit" && ix.noWatch != "disabled" {
			wake = minTime(wake, ix.nextRetry)
		}
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
		// pods/ itself was removed or renamed: its watch is gone too.
		ix.resync = true
	case dir == ix.podsDir:
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			// The directory's watch went with it; a directory made in its
			// place (perhaps with the same inode) needs a new one.
			delete(ix.watched, base)
		}
		ix.dirty[base] = true
	case filepath.Dir(dir) == ix.podsDir && base == metadataFileName:
		ix.dirty[filepath.Base(dir)] = true
	default:
		return
	}
	ix.due(time.Now())
}

// tick does what is due at now: a batch of events, held pods, a poll sweep or
// a retry of the watches.
func (ix *index) tick(now time.Time) {
	if ix.watcher == nil && ix.noWatch != "watch_limit" && ix.noWatch != "disabled" && !now.Before(ix.nextRetry) {
		ix.nextRetry = now.Add(watchRetryInterval)
		ix.openWatcher()
		if ix.watcher != nil {
			ix.resync = true // adds every pod's watch and catches up
		}
	}
	if ix.watcher == nil && !now.Before(ix.nextPoll) {
		ix.nextPoll = now.Add(ix.poll)
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
	if ix.resync {
		ix.resync, ix.batchAt = false, time.Time{}
		clear(ix.dirty)
		if err := ix.fullScan(context.Background(), true); err != nil {
			ix.cfg.log.Debug("local pod store: sweep failed")
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
		fi, err := os.Lstat(filepath.Join(ix.podsDir, name))
		if err != nil {
			if prev != nil {
				ix.remove(name)
				changed = true
			}
			delete(ix.watched, name)
			delete(ix.held, name)
			continue
		}
		typ := fi.Mode().Type()
		if typ.IsDir() {
			ix.watchPod(name, false)
		}
		deadline, held := ix.held[name]
		rec := ix.revalidate(prev, name, typ, held && deadline.IsZero())
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
		ix.records[name] = rec
		changed = true
	}
	if changed {
		ix.publishNow()
	}
}

// hold keeps prev for settleDelay when a pod that had a projection now reads
// as invalid JSON or as changed while read: a writer is most likely half-way
// through the file. It reports whether prev was kept.
func (ix *index) hold(prev, rec *podRecord, now time.Time) bool {
	if prev == nil || (prev.kind != recListed && prev.kind != recHidden) {
		return false
	}
	deadline, held := ix.held[rec.name]
	if rec.kind != recProblem || (rec.problem != "json" && rec.problem != "changed_during_read") {
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
