package compat

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// The diagnostic codes of this source (see DESIGN.md, "Local compatibility
// source"). Their messages never carry a path, a pod directory name or a
// session: at most a worker_id, which is itself a safe projection.
const (
	// DiagRegistryUnavailable reports that no data dir is configured.
	DiagRegistryUnavailable = "local_pod_registry_unavailable"
	// DiagRegistryUnreadable reports that <data-dir>/pods is missing or unreadable.
	DiagRegistryUnreadable = "local_pod_registry_unreadable"
	// DiagMetadataUnreadable reports a pod whose metadata.json is missing, not
	// a regular file, behind a symlink, or cannot be read.
	DiagMetadataUnreadable = "local_pod_metadata_unreadable"
	// DiagMetadataInvalid reports a metadata.json over 1 MiB or not valid metadata JSON.
	DiagMetadataInvalid = "local_pod_metadata_invalid"
	// DiagWorkspaceRootMissing reports a pod that names no workspace_root; it is not listed.
	DiagWorkspaceRootMissing = "local_pod_workspace_root_missing"
	// DiagWorkspaceNotVisible reports (as info) how many pods of other workspaces were skipped.
	DiagWorkspaceNotVisible = "local_pod_workspace_not_visible"
	// DiagMetadataStale reports a pod whose metadata disagrees with its
	// directory; it is still listed under the directory-derived id.
	DiagMetadataStale = "local_pod_metadata_stale"
)

const (
	metadataFileName          = "metadata.json"
	podsDirName               = "pods"
	maxMetadataBytes          = 1 << 20
	metadataUnreadableMessage = "The metadata of local worker %s cannot be read; it is not listed."
)

// storeState is the condition of the store as a whole at scan time.
type storeState int

const (
	storeOK         storeState = iota
	storeNoDataDir             // no data dir configured
	storeUnreadable            // <data-dir>/pods missing or unreadable
)

// entry is the projection of one pod with usable metadata, in compact form:
// what its Worker holds that is not the same for every local pod (worker
// builds the Worker). It is what a lookup by worker_id finds, and it is
// never modified once built, so snapshots share it. Held this way instead of
// as a registry.Worker, a pod costs about a third of the memory.
type entry struct {
	id registry.WorkerID
	// hint is the sanitized pod directory name (the display hint); label is
	// the Worker's label when it is another ("" when the metadata names the
	// pod as its directory does: a label is never empty).
	hint, label string
	// role and profile are interned (see optionalDisplay); nil is null.
	role, profile *string
	// diag is the Worker's one diagnostic (nil when none): an array, so
	// that the Worker's slice of it costs no allocation.
	diag   *[1]registry.Diagnostic
	status workerStatus
	// visible is false for a pod of another workspace: it exists, so a lookup
	// answers worker_not_visible rather than unknown_worker.
	visible bool
}

// labelOrHint is the Worker's label.
func (e *entry) labelOrHint() string {
	if e.label == "" {
		return e.hint
	}
	return e.label
}

// sameEntry reports whether a and b project to the same Worker.
func sameEntry(a, b *entry) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.id == b.id && a.label == b.label && a.hint == b.hint && sameString(a.role, b.role) &&
		sameString(a.profile, b.profile) && (a.diag == nil) == (b.diag == nil) && (a.diag == nil || *a.diag == *b.diag) && a.status == b.status && a.visible == b.visible
}

func sameString(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// snapshot is the projection of the store at one moment. It is never modified
// after it is built, so concurrent calls share it: the index publishes a new
// one whenever the store changes, and an unstarted Source builds one per call.
type snapshot struct {
	state storeState
	// cause is the raw error behind storeUnreadable; it may hold a path and
	// only ever travels in registry.Error.Cause.
	cause error
	// hostID is the host of every Worker of the snapshot.
	hostID registry.HostID
	// listed are the listed pods, ascending by worker id (byte order).
	listed []*entry
	// hidden are the pods of other workspaces, ascending by worker id: a
	// lookup finds them (worker_not_visible). A lookup is a binary search of
	// listed and then of hidden: no map of every pod to build per snapshot
	// (3 MiB at 100,000 pods), for about 0.3 µs more per lookup.
	hidden []*entry
	// pages holds the Worker pages built from listed so far (see page).
	pages pageCache
	diags []registry.Diagnostic
	// version identifies this snapshot's content within the process ("" for
	// a snapshot built per call, which nothing may cache).
	version string
	// pods is the number of entries of the pods directory that were looked at.
	pods int
	// builtAt is when the snapshot was built.
	builtAt time.Time
}

// scanConfig is the part of the Source configuration a scan depends on.
type scanConfig struct {
	dataDir string
	root    string // normalized workspace root; "" matches nothing
	hostID  registry.HostID
	log     *slog.Logger
	// hooks are nil outside tests (see export_test.go).
	hooks *testHooks
}

// testHooks let a test stand in for what it cannot make the kernel do on
// demand: a filesystem whose timestamps do not move, a failing open.
type testHooks struct {
	// key rewrites every file key the scan sees.
	key func(fileKey) fileKey
	// now is the clock a read is timed with.
	now func() time.Time
	// failRead makes the read of pod name fail as if open(2) had.
	failRead func(name string) bool
}

func (cfg scanConfig) podsDir() string { return filepath.Join(cfg.dataDir, podsDirName) }

// now is the time a read starts at.
func (cfg scanConfig) now() time.Time {
	if cfg.hooks != nil && cfg.hooks.now != nil {
		return cfg.hooks.now()
	}
	return time.Now()
}

func (cfg scanConfig) adjustKey(k fileKey) fileKey {
	if cfg.hooks != nil && cfg.hooks.key != nil {
		return cfg.hooks.key(k)
	}
	return k
}

// statKey is the key of pod name's metadata.json as it is now, without
// opening it (zero when it cannot be stat'ed).
func (cfg scanConfig) statKey(pods podsHandle, name string) fileKey {
	return cfg.adjustKey(statMetadata(pods, name))
}

// recordKind says what one entry of the pods directory amounts to.
type recordKind uint8

const (
	recSkip    recordKind = iota // not a pod (a stray file): ignored
	recProblem                   // a pod that cannot be projected: a warning, not listed
	recHidden                    // a pod of another workspace: counted, not listed
	recListed                    // a pod of this workspace: listed (perhaps with a warning)
)

// podRecord is what one entry of the pods directory projects to. It is the
// unit both a full scan and the index work in: the index keeps one per pod and
// rebuilds only the records of pods that changed.
type podRecord struct {
	name string
	kind recordKind
	// dirType is the type bits of the directory entry (dir, symlink, ...).
	dirType fs.FileMode
	// key identifies the metadata.json that was read (zero when none was).
	key fileKey
	// racy says key cannot be trusted: the file's times were within one
	// timestamp tick of the read, so a rewrite of the same size right after
	// the read may have left the key as it was. The index reads it again.
	racy bool
	// retry says the read failed in a way that may pass (an open or read
	// error: out of file descriptors, memory, I/O): the failure is not the
	// file's answer, so the index reads it again (see index.go).
	retry bool
	// problem is the reason word of a recProblem record ("" otherwise); an
	// invalid read is held back by the index for a while (see index.go).
	problem string
	// entry is the projection (nil for recSkip and recProblem).
	entry *entry
	// warn is the record's diagnostic, if any (problems and stale metadata).
	warn *registry.Diagnostic
}

// scan reads the store once and projects it. It depends only on cfg and the
// filesystem; the index (index.go) builds its snapshots from the same
// records, so both always agree.
func scan(cfg scanConfig) *snapshot {
	if cfg.dataDir == "" {
		return noDataDirSnapshot()
	}
	pods, ents, done, err := listPods(cfg.podsDir())
	if err != nil {
		return unreadableSnapshot(cfg, err)
	}
	defer done()
	recs := make([]*podRecord, 0, len(ents))
	for _, de := range ents {
		recs = append(recs, recordFor(cfg, pods, de.Name(), de.Type()))
	}
	return build(cfg.hostID, recs)
}

func noDataDirSnapshot() *snapshot {
	return &snapshot{state: storeNoDataDir,
		diags: []registry.Diagnostic{unavailableDiagnostic()}, builtAt: time.Now()}
}

func unreadableSnapshot(cfg scanConfig, err error) *snapshot {
	reason := "unreadable"
	if errors.Is(err, fs.ErrNotExist) {
		reason = "missing"
	}
	cfg.log.Debug("local pod store unreadable", "reason", reason)
	return &snapshot{state: storeUnreadable, cause: err,
		diags: []registry.Diagnostic{unreadableDiagnostic()}, builtAt: time.Now()}
}

// recordFor projects the entry name of the pods directory, whose directory
// entry type is typ.
func recordFor(cfg scanConfig, pods podsHandle, name string, typ fs.FileMode) *podRecord {
	rec := &podRecord{name: name, dirType: typ.Type()}
	id := WorkerIDFor(name)
	warn := func(code, reason, format string) *podRecord {
		cfg.log.Debug("local pod not listed", "worker_id", string(id), "reason", reason)
		rec.kind, rec.problem = recProblem, reason
		rec.warn = &registry.Diagnostic{Code: code, Severity: registry.SeverityWarning, Message: fmt.Sprintf(format, id)}
		return rec
	}
	switch {
	case typ&fs.ModeSymlink != 0:
		// A symlinked pod directory could point anywhere: it is never
		// followed, but it looks like a pod, so say it was skipped.
		return warn(DiagMetadataUnreadable, "pod_dir_symlink", metadataUnreadableMessage)
	case !typ.IsDir():
		// Stray files next to the pods are not pods.
		rec.kind = recSkip
		return rec
	}
	start := cfg.now()
	var m *podMetadata
	var key fileKey
	var prob *podProblem
	if cfg.hooks != nil && cfg.hooks.failRead != nil && cfg.hooks.failRead(name) {
		key, prob = statMetadata(pods, name), unreadable("open_failed", syscall.EMFILE)
	} else {
		m, key, prob = readPod(pods, name)
	}
	rec.key = cfg.adjustKey(key)
	rec.racy = racyKey(rec.key, start)
	if prob != nil {
		rec.retry = transientProblem(prob.reason)
		return warn(prob.code, prob.reason, prob.message)
	}
	if m.WorkspaceRoot == "" {
		return warn(DiagWorkspaceRootMissing, "workspace_root_missing",
			"Local worker %s names no workspace; it is not listed.")
	}
	e := project(name, m)
	if cfg.root == "" || normalizeRoot(m.WorkspaceRoot) != cfg.root {
		// Counted, not named: another workspace's workers are not this
		// caller's business beyond the fact that some were skipped.
		cfg.log.Debug("local pod not listed", "worker_id", string(id), "reason", "other_workspace")
		rec.kind, rec.entry = recHidden, e
		return rec
	}
	if m.WorkerName != "" && m.WorkerName != name {
		cfg.log.Debug("local pod metadata stale", "worker_id", string(id), "reason", "worker_name_mismatch")
		d := staleDiagnostic(id)
		rec.warn = &d
		// The worker carries it too (one diagnostic: within MaxDiagnostics).
		e.diag = &[1]registry.Diagnostic{*rec.warn}
	}
	e.visible = true
	rec.kind, rec.entry = recListed, e
	return rec
}

// staleDiagnostic is the warning of a listed pod whose metadata names
// another worker than its directory does.
func staleDiagnostic(id registry.WorkerID) registry.Diagnostic {
	return registry.Diagnostic{
		Code: DiagMetadataStale, Severity: registry.SeverityWarning,
		Message: fmt.Sprintf("The metadata of local worker %s disagrees with its directory; it is listed under the directory-derived id.", id),
	}
}

// Timestamp granularity. A file's times are stamped from a coarse clock:
// two writes within one tick of it get the same times, so a key taken
// within a tick of a write may not change when the file is written again.
const (
	// racyWindow is the tick assumed for filesystems with sub-second
	// timestamps (the kernel's coarse clock ticks every 1 to 10 ms).
	racyWindow = 10 * time.Millisecond
	// coarseRacyWindow is assumed when both times are whole seconds: a
	// filesystem with 1 s (or FAT's 2 s) timestamps.
	coarseRacyWindow = 2 * time.Second
)

// racyKey reports whether a key read at start may miss a later rewrite of
// the same size: the file changed within one timestamp tick before the read.
// Such a key is not trusted, and the file is read again next time.
func racyKey(k fileKey, start time.Time) bool {
	changed := max(k.mtime, k.ctime)
	if changed == 0 {
		return false
	}
	window := racyWindow
	if k.mtime%int64(time.Second) == 0 && k.ctime%int64(time.Second) == 0 {
		window = coarseRacyWindow
	}
	return start.UnixNano()-changed < int64(window)
}

// transientProblem reports whether a read that failed for reason may succeed
// when tried again with the file unchanged.
func transientProblem(reason string) bool {
	switch reason {
	case "open_failed", "read_failed", "stat_failed":
		return true
	}
	return false
}

// sameProjection reports whether a and b show the same thing: a re-read that
// finds the same projection keeps the previous record (and snapshot).
func sameProjection(a, b *podRecord) bool {
	if a.kind != b.kind || a.dirType != b.dirType || a.problem != b.problem {
		return false
	}
	if (a.warn == nil) != (b.warn == nil) || (a.warn != nil && *a.warn != *b.warn) {
		return false
	}
	return sameEntry(a.entry, b.entry)
}

// build makes the snapshot of a readable store from its records, given in
// pods-directory (name) order so that diagnostics come in that order. The
// snapshot shares the records' entries (they are immutable).
func build(hostID registry.HostID, recs []*podRecord) *snapshot {
	snap := &snapshot{hostID: hostID, pods: len(recs), builtAt: time.Now()}
	var warnings []registry.Diagnostic
	n := 0
	for _, r := range recs {
		if r.kind == recListed {
			n++
		}
	}
	snap.listed = make([]*entry, 0, n)
	hidden := 0
	for _, r := range recs {
		if r.warn != nil && len(warnings) < registry.MaxDiagnostics {
			warnings = append(warnings, *r.warn)
		} else if r.warn != nil {
			// Counted past the cap only so that the cut is marked.
			warnings = append(warnings[:registry.MaxDiagnostics], *r.warn)
		}
		switch r.kind {
		case recHidden:
			hidden++
			snap.hidden = append(snap.hidden, r.entry)
		case recListed:
			snap.listed = append(snap.listed, r.entry)
		}
	}
	byID := func(a, b *entry) int { return cmp.Compare(a.id, b.id) }
	slices.SortFunc(snap.listed, byID)
	slices.SortFunc(snap.hidden, byID)

	diags := warnings
	if hidden > 0 {
		msg := "1 local worker of another workspace is not listed."
		if hidden > 1 {
			msg = fmt.Sprintf("%d local workers of other workspaces are not listed.", hidden)
		}
		diags = append(diags, registry.Diagnostic{Code: DiagWorkspaceNotVisible, Severity: registry.SeverityInfo, Message: msg})
	}
	// A store full of broken pods must not produce unbounded diagnostics
	// on every page.
	snap.diags = registry.CapDiagnostics(diags)
	return snap
}

// lookup finds the pod of worker id: its Worker, and whether it exists and
// is of the current workspace.
func (snap *snapshot) lookup(id registry.WorkerID) (w registry.Worker, found, visible bool) {
	if e := findEntry(snap.listed, id); e != nil {
		return e.worker(snap.hostID), true, true
	}
	if findEntry(snap.hidden, id) != nil {
		return registry.Worker{}, true, false
	}
	return registry.Worker{}, false, false
}

// findEntry is the entry of id in es (sorted by id), nil when there is none.
func findEntry(es []*entry, id registry.WorkerID) *entry {
	i, ok := slices.BinarySearchFunc(es, id, func(e *entry, id registry.WorkerID) int { return cmp.Compare(e.id, id) })
	if !ok {
		return nil
	}
	return es[i]
}

// page returns at most limit listed Workers with ids above after, and whether
// more follow. A page's Workers are built once per snapshot and shared,
// read-only, by every call that asks for the same page (see pageCache).
func (snap *snapshot) page(after registry.WorkerID, limit int) ([]registry.Worker, bool) {
	start := 0
	if after != "" {
		start = sort.Search(len(snap.listed), func(i int) bool { return snap.listed[i].id > after })
	}
	end, more := len(snap.listed), false
	if end-start > limit {
		end, more = start+limit, true
	}
	if start == end {
		return nil, more
	}
	return snap.pages.get(start, end, func() []registry.Worker {
		ws := make([]registry.Worker, end-start)
		for i, e := range snap.listed[start:end] {
			ws[i] = e.worker(snap.hostID)
		}
		return ws
	}), more
}

// maxCachedPages bounds the pages a snapshot keeps (about 43 KiB each at
// 200 Workers); a page beyond them is built for its caller alone.
const maxCachedPages = 64

// pageCache keeps the pages of one snapshot by their bounds, so that
// serving the same page again costs no copy: a snapshot lives until the
// store changes, and clients ask for the same few pages (the first one
// above all).
type pageCache struct {
	mu    sync.Mutex
	pages map[[2]int][]registry.Worker
}

// get returns the page [start, end), built by fill the first time.
func (c *pageCache) get(start, end int, fill func() []registry.Worker) []registry.Worker {
	key := [2]int{start, end}
	c.mu.Lock()
	ws, ok := c.pages[key]
	c.mu.Unlock()
	if ok {
		return ws
	}
	ws = fill()
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.pages[key]; ok {
		return prev
	}
	if c.pages == nil {
		c.pages = map[[2]int][]registry.Worker{}
	}
	if len(c.pages) < maxCachedPages {
		c.pages[key] = ws
	}
	return ws
}

func unavailableDiagnostic() registry.Diagnostic {
	return registry.Diagnostic{Code: DiagRegistryUnavailable, Severity: registry.SeverityWarning,
		Message: "No local pod data directory is configured; local workers cannot be listed."}
}

func unreadableDiagnostic() registry.Diagnostic {
	return registry.Diagnostic{Code: DiagRegistryUnreadable, Severity: registry.SeverityWarning,
		Message: "The local pod store is missing or cannot be read; local workers cannot be listed."}
}

// podProblem says why one pod could not be read. message is a format with one
// %s for the worker id; cause may hold a path and is never shown or logged.
type podProblem struct {
	code    string
	reason  string
	message string
	cause   error
}

func unreadable(reason string, cause error) *podProblem {
	return &podProblem{code: DiagMetadataUnreadable, reason: reason, message: metadataUnreadableMessage, cause: cause}
}

func invalid(reason string, cause error) *podProblem {
	return &podProblem{code: DiagMetadataInvalid, reason: reason,
		message: "The metadata of local worker %s is not valid; it is not listed.", cause: cause}
}

// readPod reads and decodes the metadata of the pod directory name under
// podsDir, and returns the identity of the file it read. It never follows a
// symlink, never blocks on a special file and never reads more than 1 MiB + 1
// byte.
func readPod(pods podsHandle, name string) (*podMetadata, fileKey, *podProblem) {
	data, key, prob := readMetadataFile(pods, name)
	if prob != nil {
		return nil, key, prob
	}
	m, err := parseMetadata(data)
	if err != nil {
		return nil, key, invalid("json", err)
	}
	return m, key, nil
}
