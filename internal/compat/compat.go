// Package compat is the local compatibility source: a read-only projection of
// the local Worker/Pod metadata files (<data-dir>/pods/<pod>/metadata.json) as
// one Runtime of the registry. It is never authority: it reports what the
// files say, under ids it derives itself, and it cannot create, stop or talk
// to a Worker.
//
// The store is written by other programs, so everything in it is treated as
// hostile input:
//
//   - Symlinks are never followed: a pod directory that is a symlink, and a
//     metadata.json that is one, are reported as unreadable and not listed.
//     Following them would let whoever can write the store make the backend
//     read, and project to the browser, any file the server can read outside
//     the data dir. On Linux a sweep opens each file relative to pods/ with
//     openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) (elsewhere, and where
//     openat2 is unavailable, the pod directory is opened with O_NOFOLLOW and
//     the file relative to it), so a link swapped in after the listing is
//     refused too. The configured data dir and its pods/ are configuration,
//     not store content: they may be symlinks.
//   - A metadata.json with more than one hard link is refused like a
//     symlink: the other name may lie outside the data dir.
//   - Only regular files are read (never a FIFO, device or socket; opening
//     never blocks), and at most 1 MiB of each.
//   - Metadata that is not a JSON object, has a known field of the wrong
//     type or nests deeper than encoding/json allows (10,000 levels) is
//     invalid. Of duplicate keys the last one wins, as in encoding/json and
//     the common JSON readers the store's writers use, so both sides read a
//     document the same way.
//   - Pod directory names (newlines, invalid UTF-8, 255 bytes) never appear
//     raw: ids are derived by Bounded and display strings are sanitized.
//     Diagnostics and logs name a pod by its worker id only, never by a path.
//
// # Index
//
// A started Source (Start) answers from an in-memory index: an immutable
// snapshot (each pod's compact projection, sorted by worker id, the
// diagnostics and a generation) that is swapped atomically whenever the store
// changes. A lookup is a binary search; a list page is a binary search and,
// the first time the snapshot is asked for it, the building of at most limit
// Workers (kept with the snapshot for the next request); neither touches the
// filesystem. Start reads the store once (on 16 goroutines: with a cold page
// cache the reads wait for the disk) and publishes the first snapshot before
// it returns, so the first request after start-up is already correct.
//
// Freshness. The index watches pods/ and every pod directory with inotify
// (its own on Linux, github.com/fsnotify/fsnotify elsewhere). Events are gathered for 20 ms and then only
// the pods they name are read again (always: a rewrite of the same size
// within one timestamp tick leaves the file's key as it was). A change
// therefore shows within about 20 ms plus the rebuild of the snapshot (a few
// milliseconds at 10,000 pods); a read that finds the same projection
// publishes nothing. Watching is not trusted blindly: every
// ReconcileInterval (default 30 s) the index sweeps the whole store (stat
// only), watches pods/ again when it is another directory than the watched
// one (`mv pods pods.old && mkdir pods`, a swapped symlinked data dir) and
// adds any pod watch that went missing (a directory renamed over a pod);
// an event about pods/ itself triggers that sweep at once. When watches are unavailable (no inotify
// instance, the watch limit fs.inotify.max_user_watches is reached, pods/ is
// missing) the index polls instead: every PollInterval (default 500 ms) it
// lists pods/ and stats each metadata.json, re-reading only what changed; a
// change then shows within PollInterval plus one sweep (about 5 µs per pod
// here: ~50 ms at 10,000 pods). Both stay within 1 s up to roughly 50,000 pods
// when polling. A pod is not re-read while its key (inode, size, mtime,
// ctime) is unchanged, unless that key was taken within one timestamp tick
// of a write (10 ms; 2 s when the times are whole seconds): such a "racy"
// key is not trusted and the file is read again. A lost-events overflow of
// the inotify queue triggers the same sweep at once. A polling index tries
// to watch again every ReconcileInterval unless the watch limit was the
// reason.
//
// Restarts. With Config.IndexCache the index keeps the records it trusts
// (pods listed or of another workspace, read outside the racy window) in a
// file, written atomically (mode 0600) after the first sweep, at most once
// per ReconcileInterval when changed, and at Close. Start seeds the index
// from it, so the first scan only stats each metadata.json and reads the
// pods whose key changed, the new ones and every pod with a problem, exactly
// as a sweep of a running index does: the answers are those of a fresh read.
// The file is ignored (an info line with a reason word) unless it is a
// regular file of this user that no one else can write, intact, of this
// format and written for this workspace, root, data dir and projection
// version (see cachefile.go).
//
// Failed reads. An open or read that fails in a way that may pass (out of
// file descriptors or memory, an I/O error) is not the file's answer: the
// pod is read again after 1 s, backing off to ReconcileInterval, until it
// reads.
//
// Torn writes. A metadata.json is read with one fstat before and one after:
// a file that changed while it was read is never decoded. A pod that had a
// projection and whose file stops parsing (or cannot be read for a reason
// that may pass) keeps its previous projection for 500 ms, watching or
// polling (a writer is most likely half-way through) and is then re-read; if
// it is still invalid the pod is reported invalid like on a fresh scan. A
// truncated file never parses as another Worker, so a torn write shows the
// previous projection or the invalid diagnostic, never a wrong Worker.
//
// Events. Each snapshot the index publishes also becomes events (Events,
// registry.EventStreamer): worker_upserted for a current-workspace pod that is
// new or projected differently, worker_removed for one that is gone, no
// longer readable or moved to another workspace, in worker id order per
// batch, after the snapshot itself (a reader told of a change finds it in a
// list made after the event). Cursors are "<epoch>-<sequence>" with a random
// epoch per Start, so a cursor of an earlier process is answered with a
// resync. The last 10,000 events are kept for streams that resume; each
// stream holds 256 events for its reader and is cut (ErrStreamEnded), never
// waited for, when its reader falls further behind.
//
// A Source that was not started (or was closed) reads the store afresh on
// every call: slow, but correct, and what the tests of the projection use. It
// has no events.
package compat

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// RuntimeID is the runtime_id of the local compatibility Runtime. It is kept
// stable so that existing clients and bookmarks keep working.
const RuntimeID registry.RuntimeID = "local-worker-runtime"

// HostKind is the kind of the one host of the local Runtime.
const HostKind = "local-worker-host"

// RuntimeKind is the kind of the local Runtime.
const RuntimeKind = "local_pod"

const (
	runtimeLabel = "Local Worker runtime"
	sourceNote   = "A read-only compatibility projection of the local Worker/Pod metadata; it is never authority over those Workers."
)

// Config configures a Source.
type Config struct {
	// WorkspaceID names the workspace served; the host id is derived from it.
	WorkspaceID string
	// WorkspaceRoot is the workspace's root directory. Only pods whose
	// workspace_root names the same directory (compared lexically) are
	// listed. Its last element is shown as the host label.
	WorkspaceRoot string
	// DataDir holds pods/<pod>/metadata.json. Empty means no local store is
	// configured: the Runtime is listed as degraded and lists nothing.
	DataDir string
	// Logger receives debug lines about skipped pods (worker_id and a reason
	// word only). Nil discards them.
	Logger *slog.Logger
	// PollInterval is how often a started Source sweeps the store when file
	// watches are unavailable; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// DisableWatch makes a started Source poll instead of watching (for
	// filesystems without inotify, and for tests of the fallback).
	DisableWatch bool
	// ReconcileInterval is how often a watching Source re-checks the whole
	// store (stat only) and a polling one tries to watch again; 0 means
	// DefaultReconcileInterval.
	ReconcileInterval time.Duration
	// IndexCache is a file the started Source keeps its index in (written
	// atomically, mode 0600, after the first sweep, at most once per
	// ReconcileInterval when changed, and at Close), so that the next Start
	// only stats each pod instead of reading it: a pod whose metadata.json
	// changed, appeared or went is read as on a first start. A missing,
	// foreign, corrupt or mismatched file is ignored. Empty turns it off.
	IndexCache string
	// ListLimit is the most Workers one list answers (the server's
	// --max-records), reported as the Runtime's max_workers; 0 means
	// registry.DefaultMaxRecords.
	ListLimit int
}

// Source is the local compatibility registry.Source. Once started it answers
// from its index; before Start and after Close it reads the store afresh on
// every call. It is safe for concurrent use.
type Source struct {
	// It implements none of the registry's operation interfaces (create,
	// input, stop, transcript): this backend has no route to a local pod's
	// process, so the registry answers operation_unsupported.

	scanCfg   scanConfig
	hostID    registry.HostID
	hostLabel string
	poll      time.Duration
	reconcile time.Duration
	noWatch   bool
	listLimit int

	// indexCache and cachePrint configure the index cache (cachefile.go).
	indexCache string
	cachePrint [32]byte

	// eventRing and eventBuffer size the event log (0: the defaults).
	eventRing, eventBuffer int

	mu sync.Mutex // guards ix and events
	ix *index
	// events is the running index's event log (nil when there is none).
	events  *eventLog
	current atomic.Pointer[snapshot]
}

var (
	_ registry.Source          = (*Source)(nil)
	_ registry.VersionedLookup = (*Source)(nil)
)

// New builds the Source for cfg. It does not touch the filesystem: a missing
// or unreadable store is reported by the calls, not at start-up, because the
// local Worker system may create it later.
func New(cfg Config) *Source {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hostID := HostIDFor(cfg.WorkspaceID)
	listLimit := cfg.ListLimit
	if listLimit <= 0 {
		listLimit = registry.DefaultMaxRecords
	}
	root := ""
	if cfg.WorkspaceRoot != "" {
		root = normalizeRoot(cfg.WorkspaceRoot)
	}
	scanCfg := scanConfig{dataDir: cfg.DataDir, root: root, hostID: hostID, log: log}
	return &Source{
		scanCfg:    scanCfg,
		indexCache: cfg.IndexCache,
		cachePrint: cacheFingerprint(cfg.WorkspaceID, scanCfg),
		hostID:     hostID,
		hostLabel:  hostLabel(cfg.WorkspaceRoot),
		poll:       cfg.PollInterval,
		reconcile:  cfg.ReconcileInterval,
		noWatch:    cfg.DisableWatch,
		listLimit:  listLimit,
	}
}

// Start builds the index and keeps it fresh until Close: it reads the store
// once, publishes the result and returns; from then on calls answer from
// memory. Without a data dir there is nothing to watch and the Source answers
// as before. A missing or unreadable store is not an error: it is reported by
// the calls, and the index polls until the store appears. Start fails only if
// ctx ends during the first scan, or if the Source was already started.
func (s *Source) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix != nil {
		return errors.New("compat: source already started")
	}
	if s.scanCfg.dataDir == "" {
		snap := noDataDirSnapshot()
		snap.version = "none"
		s.current.Store(snap)
		return nil
	}
	// A new log per Start: its epoch makes the cursors of an earlier run
	// unknown here, so a resumed stream gets a resync.
	events := newEventLog(s.eventRing, s.eventBuffer)
	ix := newIndex(s.scanCfg, s.poll, s.reconcile, s.noWatch, s.current.Store, events)
	ix.cacheFile, ix.cachePrint = s.indexCache, s.cachePrint
	if err := ix.start(ctx); err != nil {
		return err
	}
	s.ix, s.events = ix, events
	return nil
}

// Close stops the index, releases its watches and ends every event stream;
// the Source then reads the store on every call again. It returns nil, also when the Source was never
// started.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ix != nil {
		s.ix.close()
		s.ix = nil
	}
	if s.events != nil {
		// Open streams end (ErrStreamEnded); their clients resume later
		// and are told to resync.
		s.events.close()
		s.events = nil
	}
	s.current.Store(nil)
	return nil
}

// Stats describes the index for monitoring.
type Stats struct {
	// Indexed is true while the Source answers from its index.
	Indexed bool
	// Watching is true while file watches keep the index fresh (false when
	// it polls, or is not started).
	Watching bool
	// Pods is the number of pods/ entries in the index; Workers the number
	// of Workers it lists.
	Pods, Workers int
	// RefreshedAt is when the index was last known to match the whole
	// store: the last full sweep (every poll, or every reconcile interval
	// while watching), or the last batch of events applied while every
	// watch was in place. It does not move while the index is blind (its
	// watch of pods/ is gone and the sweep that restores it has not run).
	RefreshedAt time.Time
	// Reads counts the pod entries the index has read and projected since
	// Start: one per pod at start-up (only the changed, new and problem
	// pods with an index cache), then one per changed pod.
	Reads uint64
	// Held is the number of pods whose previous projection is kept right
	// now because their metadata.json reads as half-written (or could not
	// be read for a reason that may pass).
	Held int
	// Sweeps counts the full sweeps of the store since Start (the first
	// scan, every poll, every reconciliation sweep, every resync).
	Sweeps uint64
	// CacheSeeded is the number of pod records Start took from the index
	// cache (Config.IndexCache); 0 when there was none or it was ignored.
	CacheSeeded int
	// CacheWrites counts the index cache files written since Start.
	CacheWrites uint64
}

// Stats reports the index's size and freshness.
func (s *Source) Stats() Stats {
	snap := s.current.Load()
	if snap == nil {
		return Stats{}
	}
	st := Stats{Indexed: true, Pods: snap.pods, Workers: len(snap.listed), RefreshedAt: snap.builtAt}
	s.mu.Lock()
	ix := s.ix
	s.mu.Unlock()
	if ix != nil {
		st.Watching = ix.watching.Load()
		st.RefreshedAt = time.Unix(0, ix.lastReval.Load())
		st.Reads = ix.reads.Load()
		st.Held = int(ix.heldNow.Load())
		st.Sweeps = ix.sweeps.Load()
		st.CacheSeeded = ix.cacheSeeded
		st.CacheWrites = ix.cacheWrites.Load()
	}
	return st
}

// snapshot is the index's current snapshot, or a fresh scan when the Source
// is not started.
func (s *Source) snapshot() *snapshot {
	if snap := s.current.Load(); snap != nil {
		return snap
	}
	return scan(s.scanCfg)
}

// RuntimeID returns RuntimeID.
func (s *Source) RuntimeID() registry.RuntimeID { return RuntimeID }

// capabilities is shared by the Runtime and its host: both can be listed,
// read and (with a store configured) streamed from the index; max_workers is
// the list limit, as the earlier local server reported it.
func (s *Source) capabilities(state storeState) registry.Capabilities {
	inspection := registry.InspectionAvailable
	if state == storeNoDataDir {
		inspection = registry.InspectionUnavailable
	}
	maxWorkers := s.listLimit
	return registry.Capabilities{
		CanListHosts:       true,
		CanListWorkers:     true,
		CanGetWorker:       true,
		CanStreamEvents:    state != storeNoDataDir,
		LocalPodInspection: inspection,
		WorkspaceScope:     registry.WorkspaceScopeCurrent,
		MaxWorkers:         &maxWorkers,
		OS:                 runtime.GOOS,
		Arch:               runtime.GOARCH,
	}
}

// storeDiagnostics says why the store as a whole cannot be listed ([] when
// it can): the Runtime's and the host's own diagnostics.
func storeDiagnostics(snap *snapshot) []registry.Diagnostic {
	switch snap.state {
	case storeNoDataDir:
		return []registry.Diagnostic{unavailableDiagnostic()}
	case storeUnreadable:
		return []registry.Diagnostic{unreadableDiagnostic()}
	}
	return []registry.Diagnostic{}
}

// status is degraded whenever the store cannot be listed, so that a Runtime
// that answers every lookup with runtime_unavailable does not claim to be
// available.
func status(state storeState) registry.Availability {
	if state == storeOK {
		return registry.Available
	}
	return registry.Degraded
}

// Summary projects the local Runtime. It never fails: a store that cannot be
// read makes the Runtime degraded, not absent.
func (s *Source) Summary(context.Context) (registry.RuntimeSummary, error) {
	snap := s.snapshot()
	return registry.RuntimeSummary{
		ID:      RuntimeID,
		Label:   runtimeLabel,
		Kind:    RuntimeKind,
		Status:  status(snap.state),
		HostIDs: []registry.HostID{s.hostID},
		Source: registry.SourceInfo{
			Kind:              registry.SourceLocalCompatibility,
			Status:            registry.SourceActive,
			IdentityAuthority: registry.IdentityAuthorityProjection,
			Note:              sourceNote,
		},
		Capabilities: s.capabilities(snap.state),
		Diagnostics:  storeDiagnostics(snap),
	}, nil
}

// Hosts lists the one host of the workspace. Its diagnostics (the list's and
// the host's own) describe the store as a whole; per-pod diagnostics belong
// to the worker lists. observed_at is when the index last saw the store
// change (the build time of the snapshot answered from), so it stays the
// same, and an unchanged list keeps its ETag, for as long as the store does
// not change; last_seen_at is not known locally.
func (s *Source) Hosts(context.Context) ([]registry.Host, []registry.Diagnostic, error) {
	snap := s.snapshot()
	host := registry.Host{
		ID:           s.hostID,
		RuntimeID:    RuntimeID,
		Kind:         HostKind,
		Label:        s.hostLabel,
		Status:       status(snap.state),
		Capabilities: s.capabilities(snap.state),
		ObservedAt:   snap.builtAt,
		Diagnostics:  storeDiagnostics(snap),
	}
	return []registry.Host{host}, storeDiagnostics(snap), nil
}

// Workers returns one page of the current workspace's Workers in ascending id
// order. A store that is not configured or cannot be read answers
// runtime_unavailable, as a lookup does: the registry turns it into a
// diagnostic of a merged list (the other Runtimes are still listed) and a 503
// of this Runtime's own list, never an empty list that could be cached.
func (s *Source) Workers(_ context.Context, q registry.WorkerQuery) (registry.WorkerPage, error) {
	page := registry.WorkerPage{Workers: []registry.Worker{}, Diagnostics: []registry.Diagnostic{}}
	if q.HostID != "" && q.HostID != s.hostID {
		// Not this Runtime's host: nothing to list, and nothing worth reading
		// the store for.
		return page, nil
	}
	snap := s.snapshot()
	if err := unavailable(snap); err != nil {
		return registry.WorkerPage{}, err
	}
	page.Diagnostics = append(page.Diagnostics, snap.diags...)
	limit := q.Limit
	if limit < 1 {
		// The registry always asks for at least one; a careless caller gets a
		// bounded page rather than everything.
		limit = registry.DefaultMaxRecords
	}
	rest, more := snap.page(q.After, limit)
	page.More = more
	if len(rest) > 0 {
		// The page is shared with the snapshot (read-only, capacity cut so
		// that an append copies): the same page again costs no copy.
		page.Workers = rest[:len(rest):len(rest)]
	}
	page.Version = snap.version
	return page, nil
}

// Worker returns one Worker of the current workspace by its id. A pod of
// another workspace answers worker_not_visible; an id of no readable pod
// (including one whose metadata is unreadable, invalid or names no workspace)
// answers unknown_worker; a store that cannot be read answers
// runtime_unavailable.
func (s *Source) Worker(ctx context.Context, id registry.WorkerID) (registry.Worker, error) {
	w, _, err := s.VersionedWorker(ctx, id)
	return w, err
}

// VersionedWorker is Worker plus the version of the snapshot it was read
// from ("" when the Source is not started and reads per call).
func (s *Source) VersionedWorker(_ context.Context, id registry.WorkerID) (registry.Worker, string, error) {
	snap := s.snapshot()
	ref := registry.WorkerRef{RuntimeID: RuntimeID, WorkerID: id}
	if err := unavailable(snap); err != nil {
		return registry.Worker{}, snap.version, err
	}
	w, found, visible := snap.lookup(id)
	switch {
	case !found:
		return registry.Worker{}, snap.version, registry.UnknownWorker(ref)
	case !visible:
		return registry.Worker{}, snap.version, registry.WorkerNotVisible(ref)
	}
	return w, snap.version, nil
}

// unavailable is the runtime_unavailable error of a snapshot whose store is
// not configured or cannot be read, nil for a readable one.
func unavailable(snap *snapshot) error {
	switch snap.state {
	case storeNoDataDir:
		return registry.RuntimeUnavailable(RuntimeID, "No local pod data directory is configured.", nil)
	case storeUnreadable:
		return registry.RuntimeUnavailable(RuntimeID, "The local pod store is missing or cannot be read.", snap.cause)
	}
	return nil
}
