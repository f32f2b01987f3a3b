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
//     the data dir. On Linux the pod directory is opened with O_NOFOLLOW and
//     the file relative to it, so a link swapped in after the listing is
//     refused too. The configured data dir and its pods/ are configuration,
//     not store content: they may be symlinks.
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
package compat

import (
	"context"
	"log/slog"
	"runtime"
	"sort"

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
}

// Source is the local compatibility registry.Source. It holds only its
// configuration and reads the store afresh on every call, so it is safe for
// concurrent use.
type Source struct {
	// ReadOnlyOperations answers operation_unsupported for create, input and
	// stop: this backend has no route to a local pod's process.
	registry.ReadOnlyOperations

	scanCfg   scanConfig
	hostID    registry.HostID
	hostLabel string
}

var _ registry.Source = (*Source)(nil)

// New builds the Source for cfg. It does not touch the filesystem: a missing
// or unreadable store is reported by the calls, not at start-up, because the
// local Worker system may create it later.
func New(cfg Config) *Source {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hostID := HostIDFor(cfg.WorkspaceID)
	root := ""
	if cfg.WorkspaceRoot != "" {
		root = normalizeRoot(cfg.WorkspaceRoot)
	}
	return &Source{
		ReadOnlyOperations: registry.ReadOnlyOperations{Runtime: RuntimeID},
		scanCfg:            scanConfig{dataDir: cfg.DataDir, root: root, hostID: hostID, log: log},
		hostID:             hostID,
		hostLabel:          hostLabel(cfg.WorkspaceRoot),
	}
}

// snapshot reads the store. v0 has no cache: every call sees the files as they
// are now.
func (s *Source) snapshot() *snapshot { return scan(s.scanCfg) }

// RuntimeID returns RuntimeID.
func (s *Source) RuntimeID() registry.RuntimeID { return RuntimeID }

// capabilities is shared by the Runtime and its host: both can only be listed
// and read.
func capabilities(state storeState) registry.Capabilities {
	inspection := registry.InspectionAvailable
	if state == storeNoDataDir {
		inspection = registry.InspectionUnavailable
	}
	return registry.Capabilities{
		CanListHosts:       true,
		CanListWorkers:     true,
		CanGetWorker:       true,
		LocalPodInspection: inspection,
		WorkspaceScope:     registry.WorkspaceScopeCurrent,
		OS:                 runtime.GOOS,
		Arch:               runtime.GOARCH,
	}
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
		Capabilities: capabilities(snap.state),
	}, nil
}

// Hosts lists the one host of the workspace. Its diagnostics describe the
// store as a whole; per-pod diagnostics belong to the worker lists.
func (s *Source) Hosts(context.Context) ([]registry.Host, []registry.Diagnostic, error) {
	snap := s.snapshot()
	host := registry.Host{
		ID:           s.hostID,
		RuntimeID:    RuntimeID,
		Kind:         HostKind,
		Label:        s.hostLabel,
		Status:       status(snap.state),
		Capabilities: capabilities(snap.state),
	}
	diags := []registry.Diagnostic{}
	if snap.state != storeOK {
		diags = append(diags, snap.diags...)
	}
	return []registry.Host{host}, diags, nil
}

// Workers returns one page of the current workspace's Workers in ascending id
// order. A store that cannot be read gives an empty page with a diagnostic,
// not an error, so merged lists still show the other Runtimes.
func (s *Source) Workers(_ context.Context, q registry.WorkerQuery) (registry.WorkerPage, error) {
	page := registry.WorkerPage{Workers: []registry.Worker{}, Diagnostics: []registry.Diagnostic{}}
	if q.HostID != "" && q.HostID != s.hostID {
		// Not this Runtime's host: nothing to list, and nothing worth reading
		// the store for.
		return page, nil
	}
	snap := s.snapshot()
	page.Diagnostics = append(page.Diagnostics, snap.diags...)
	limit := q.Limit
	if limit < 1 {
		// The registry always asks for at least one; a careless caller gets a
		// bounded page rather than everything.
		limit = registry.DefaultMaxRecords
	}
	start := 0
	if q.After != "" {
		start = sort.Search(len(snap.workers), func(i int) bool { return snap.workers[i].ID > q.After })
	}
	rest := snap.workers[start:]
	if len(rest) > limit {
		rest, page.More = rest[:limit], true
	}
	page.Workers = append(page.Workers, rest...)
	return page, nil
}

// Worker returns one Worker of the current workspace by its id. A pod of
// another workspace answers worker_not_visible; an id of no readable pod
// (including one whose metadata is unreadable, invalid or names no workspace)
// answers unknown_worker; a store that cannot be read answers
// runtime_unavailable.
func (s *Source) Worker(_ context.Context, id registry.WorkerID) (registry.Worker, error) {
	snap := s.snapshot()
	ref := registry.WorkerRef{RuntimeID: RuntimeID, WorkerID: id}
	switch snap.state {
	case storeNoDataDir:
		return registry.Worker{}, registry.RuntimeUnavailable(RuntimeID, "No local pod data directory is configured.", nil)
	case storeUnreadable:
		return registry.Worker{}, registry.RuntimeUnavailable(RuntimeID, "The local pod store is missing or cannot be read.", snap.cause)
	}
	e, ok := snap.byID[id]
	switch {
	case !ok:
		return registry.Worker{}, registry.UnknownWorker(ref)
	case !e.visible:
		return registry.Worker{}, registry.WorkerNotVisible(ref)
	}
	return e.worker, nil
}
