// Package embedded is the registry source over a Worker Runtime that runs in
// the backend's own process (DESIGN "The embedded source"): every call is a
// library call on a *workerruntime.Runtime, worker ids are the Runtime's own
// (the authority is runtime_id + worker_id), and the Runtime's typed errors
// are mapped onto registry codes in one place (errors.go).
package embedded

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// RuntimeID is the runtime_id of the embedded Worker Runtime.
const RuntimeID registry.RuntimeID = "embedded-worker-runtime"

// RuntimeKind is the kind of the embedded Runtime.
const RuntimeKind = "embedded_worker_runtime"

// HostKind is the kind of the embedded Runtime's one host.
const HostKind = "embedded-worker-host"

// hostIDPrefix prefixes the host id: bounded("embedded-", workspace_id).
const hostIDPrefix = "embedded-"

const (
	runtimeLabel = "Embedded worker runtime"
	hostLabel    = "Embedded worker host"
	sourceNote   = "A Worker Runtime inside the backend process; its workers are child processes started from the operator's profiles."
	// maxDisplay bounds the display strings of a projected Worker (the
	// contract's maxLength for label, role, profile and display_hint).
	maxDisplay = 80
)

// Config configures a Source.
type Config struct {
	// WorkspaceID names the workspace served; the host id is derived from it.
	WorkspaceID string
}

// Source is the registry.Source of an in-process Worker Runtime. It
// implements every optional operation (create, input, stop, transcript,
// profiles, events) and Starter/Closer; Close closes the Runtime, which
// gives each live worker the graceful stop sequence. It is safe for
// concurrent use.
type Source struct {
	rt        *workerruntime.Runtime
	hostID    registry.HostID
	maxWorker int
	openedAt  time.Time

	// projected keeps the projections of the pages of one Runtime Version
	// (the newest seen): an unchanged page is not projected again.
	projected   atomic.Pointer[projectedSet]
	projectedMu sync.Mutex // serialises stores to projected
}

// maxProjectedPages bounds the projected pages kept.
const maxProjectedPages = 16

type pageKey struct {
	after string
	limit int
}

// projectedSet is an immutable set of projected pages of one Version.
type projectedSet struct {
	version string
	pages   map[pageKey]registry.WorkerPage
}

var (
	_ registry.Source           = (*Source)(nil)
	_ registry.Starter          = (*Source)(nil)
	_ registry.Closer           = (*Source)(nil)
	_ registry.WorkerCreator    = (*Source)(nil)
	_ registry.InputSender      = (*Source)(nil)
	_ registry.WorkerStopper    = (*Source)(nil)
	_ registry.TranscriptReader = (*Source)(nil)
	_ registry.ProfileLister    = (*Source)(nil)
	_ registry.EventStreamer    = (*Source)(nil)
)

// New returns the Source over rt. The Source owns rt from now on: its Close
// closes rt.
func New(rt *workerruntime.Runtime, cfg Config) *Source {
	info, _ := rt.Info(context.Background()) // never fails: it reads memory only
	return &Source{
		rt:        rt,
		hostID:    HostIDFor(cfg.WorkspaceID),
		maxWorker: info.MaxWorkers,
		// The in-process Runtime is observed continuously; the host's
		// observed_at is when it was opened, a value of the Runtime's state
		// that does not move with the request clock (so an unchanged host
		// list keeps its ETag).
		openedAt: time.Now().UTC().Truncate(time.Second),
	}
}

// HostIDFor returns the host id of the workspace workspaceID:
// bounded("embedded-", workspaceID), the same projection as the local
// source's host ids.
func HostIDFor(workspaceID string) registry.HostID {
	return registry.HostID(compat.Bounded(hostIDPrefix, workspaceID))
}

// Runtime returns the Runtime behind the Source (for metrics).
func (s *Source) Runtime() *workerruntime.Runtime { return s.rt }

// RuntimeID returns RuntimeID.
func (s *Source) RuntimeID() registry.RuntimeID { return RuntimeID }

// Start checks that the Runtime answers; the Runtime itself was opened (and
// its crash recovery done) before the Source was made.
func (s *Source) Start(ctx context.Context) error {
	_, err := s.rt.Info(ctx)
	return mapError(err, "")
}

// Close closes the Runtime: every live worker gets the graceful stop
// sequence (10 s in all) and ends stopped:runtime_shutdown, every event
// stream ends, and the store is closed. Later calls answer the same.
func (s *Source) Close(ctx context.Context) error {
	return s.rt.Close(ctx)
}

// capabilities is shared by the Runtime and its host: everything the
// Runtime does is routed, nothing of the workspace's files or tools is.
func (s *Source) capabilities() registry.Capabilities {
	maxWorkers := s.maxWorker
	return registry.Capabilities{
		CanListHosts:             true,
		CanListWorkers:           true,
		CanGetWorker:             true,
		CanSpawnWorker:           true,
		CanStopWorker:            true,
		CanAcceptInput:           true,
		CanStreamEvents:          true,
		CanReadBoundedTranscript: true,
		LocalPodInspection:       registry.InspectionUnavailable,
		WorkspaceScope:           registry.WorkspaceScopeCurrent,
		MaxWorkers:               &maxWorkers,
		OS:                       runtime.GOOS,
		Arch:                     runtime.GOARCH,
	}
}

// Summary projects the Runtime. It never fails.
func (s *Source) Summary(context.Context) (registry.RuntimeSummary, error) {
	return registry.RuntimeSummary{
		ID:      RuntimeID,
		Label:   runtimeLabel,
		Kind:    RuntimeKind,
		Status:  registry.Available,
		HostIDs: []registry.HostID{s.hostID},
		Source: registry.SourceInfo{
			Kind:              registry.SourceEmbeddedWorkerRuntime,
			Status:            registry.SourceActive,
			IdentityAuthority: registry.IdentityAuthorityProjection,
			Note:              sourceNote,
		},
		Capabilities: s.capabilities(),
		Diagnostics:  []registry.Diagnostic{},
	}, nil
}

// Hosts lists the Runtime's one host. It never fails.
func (s *Source) Hosts(context.Context) ([]registry.Host, []registry.Diagnostic, error) {
	return []registry.Host{{
		ID:           s.hostID,
		RuntimeID:    RuntimeID,
		Kind:         HostKind,
		Label:        hostLabel,
		Status:       registry.Available,
		Capabilities: s.capabilities(),
		ObservedAt:   s.openedAt,
		Diagnostics:  []registry.Diagnostic{},
	}}, []registry.Diagnostic{}, nil
}

// Workers returns one page of the Runtime's Workers in id (creation) order.
// Its Version is the Runtime's: it changes whenever any worker changes.
// Errors: runtime_unavailable.
func (s *Source) Workers(ctx context.Context, q registry.WorkerQuery) (registry.WorkerPage, error) {
	page := registry.WorkerPage{Workers: []registry.Worker{}, Diagnostics: []registry.Diagnostic{}}
	if q.HostID != "" && q.HostID != s.hostID {
		return page, nil
	}
	limit := q.Limit
	if limit < 1 || limit > registry.DefaultMaxRecords {
		limit = registry.DefaultMaxRecords
	}
	wp, err := s.rt.List(ctx, string(q.After), limit)
	if err != nil {
		return registry.WorkerPage{}, mapError(err, "")
	}
	key := pageKey{after: string(q.After), limit: limit}
	// The same Version is the same Runtime page, and the projection depends
	// on nothing else: the kept one is shared (pages are read-only).
	if ps := s.projected.Load(); ps != nil && ps.version == wp.Version && wp.Version != "" {
		if p, ok := ps.pages[key]; ok {
			return p, nil
		}
	}
	page.Workers = make([]registry.Worker, len(wp.Workers))
	for i, w := range wp.Workers {
		page.Workers[i] = s.project(w)
	}
	page.More = wp.More
	page.Version = wp.Version
	if wp.Version != "" {
		s.keepProjected(key, page)
	}
	return page, nil
}

// keepProjected keeps page under key for its Version, dropping the pages
// of another Version (copy on write: readers never lock).
func (s *Source) keepProjected(key pageKey, page registry.WorkerPage) {
	s.projectedMu.Lock()
	defer s.projectedMu.Unlock()
	next := &projectedSet{version: page.Version, pages: map[pageKey]registry.WorkerPage{}}
	if old := s.projected.Load(); old != nil && old.version == page.Version {
		for k, p := range old.pages {
			if len(next.pages) == maxProjectedPages-1 {
				break
			}
			next.pages[k] = p
		}
	}
	next.pages[key] = page
	s.projected.Store(next)
}

// Worker returns one Worker. Errors: unknown_worker, runtime_unavailable.
func (s *Source) Worker(ctx context.Context, id registry.WorkerID) (registry.Worker, error) {
	w, err := s.rt.Get(ctx, string(id))
	if err != nil {
		return registry.Worker{}, mapError(err, id)
	}
	return s.project(w), nil
}

// CreateWorker creates a Worker from the request's profile (the default
// when it names none). Errors: invalid_request (field profile, intent.kind,
// Idempotency-Key, ...), runtime_at_capacity, idempotency_key_reused,
// runtime_unavailable.
func (s *Source) CreateWorker(ctx context.Context, req registry.CreateWorkerRequest) (registry.Worker, error) {
	w, err := s.rt.Create(ctx, workerruntime.CreateRequest{
		Intent: workerruntime.Intent{
			Kind:      workerruntime.IntentKind(req.Intent.Kind),
			Purpose:   req.Intent.Purpose,
			Objective: req.Intent.Objective,
			Role:      req.Intent.Role,
		},
		Profile:        req.Profile,
		Label:          req.WorkerName,
		IdempotencyKey: req.IdempotencyKey,
	})
	if err != nil {
		return registry.Worker{}, mapError(err, "")
	}
	return s.project(w), nil
}

// SendInput queues one input for the Worker's process, committed to its
// transcript first. Errors: invalid_request, unknown_worker,
// worker_not_running, worker_busy, runtime_unavailable.
func (s *Source) SendInput(ctx context.Context, id registry.WorkerID, in registry.WorkerInput) (registry.InputAck, error) {
	ack, err := s.rt.SendInput(ctx, string(id), workerruntime.Input{Kind: workerruntime.InputKind(in.Kind), Content: in.Content})
	if err != nil {
		return registry.InputAck{}, mapError(err, id)
	}
	return registry.InputAck{Ref: ref(id), Accepted: true, Sequence: ack.Sequence}, nil
}

// StopWorker stops a Worker, gracefully or by force; a stopped Worker is
// answered as it is. Errors: invalid_request, unknown_worker,
// runtime_unavailable.
func (s *Source) StopWorker(ctx context.Context, id registry.WorkerID, mode registry.StopMode) (registry.StopAck, error) {
	w, err := s.rt.Stop(ctx, string(id), workerruntime.StopMode(mode))
	if err != nil {
		return registry.StopAck{}, mapError(err, id)
	}
	return registry.StopAck{Ref: ref(id), Mode: mode, State: registry.WorkerState(w.State), Status: w.Status}, nil
}

// Transcript returns one page of a Worker's transcript. Errors:
// invalid_request, unknown_worker, runtime_unavailable.
func (s *Source) Transcript(ctx context.Context, id registry.WorkerID, q registry.TranscriptQuery) (registry.TranscriptPage, error) {
	p, err := s.rt.Transcript(ctx, string(id), q.After, q.Limit)
	if err != nil {
		return registry.TranscriptPage{}, mapError(err, id)
	}
	out := registry.TranscriptPage{
		Ref:           ref(id),
		Items:         make([]registry.TranscriptEntry, len(p.Items)),
		NextAfter:     p.NextAfter,
		FirstSequence: p.FirstSequence,
		LastSequence:  p.LastSequence,
	}
	for i, e := range p.Items {
		out.Items[i] = entry(e)
	}
	return out, nil
}

// Profiles lists the profiles a create may name, in the file's order.
func (s *Source) Profiles(ctx context.Context) ([]registry.Profile, error) {
	info, err := s.rt.Info(ctx)
	if err != nil {
		return nil, mapError(err, "")
	}
	out := make([]registry.Profile, len(info.Profiles))
	for i, p := range info.Profiles {
		out[i] = registry.Profile{Name: p.Name, Label: truncate(p.Label), Description: p.Description}
	}
	return out, nil
}

func ref(id registry.WorkerID) registry.WorkerRef {
	return registry.WorkerRef{RuntimeID: RuntimeID, WorkerID: id}
}

func entry(e workerruntime.TranscriptEntry) registry.TranscriptEntry {
	return registry.TranscriptEntry{Sequence: e.Sequence, Role: string(e.Role), Content: e.Content, At: e.At.UTC()}
}

// project is the browser-safe projection of one of the Runtime's workers.
// Capabilities are truthful for the worker's state: only an active worker
// takes input, and a stopped one can no longer be stopped.
func (s *Source) project(w workerruntime.Worker) registry.Worker {
	label := w.Label
	if label == "" {
		label = truncate(workerruntime.SanitizeLabel(w.ProfileLabel + " worker"))
	}
	var role *string
	if r := workerruntime.SanitizeLabel(w.Intent.Role); r != "" {
		role = &r
	}
	var profile *string
	if p := truncate(w.Profile); p != "" {
		profile = &p
	}
	lastSeen := w.UpdatedAt.UTC()
	live := w.State != workerruntime.StateStopped
	return registry.Worker{
		ID:        registry.WorkerID(w.ID),
		RuntimeID: RuntimeID,
		HostID:    s.hostID,
		Label:     truncate(label),
		Role:      role,
		Profile:   profile,
		State:     registry.WorkerState(w.State),
		Status:    w.Status,
		Workspace: registry.WorkerWorkspace{Visibility: registry.WorkspaceScopeCurrent, Identity: "runtime_workspace"},
		Implementation: registry.WorkerImplementation{
			Kind:        registry.ImplementationEmbeddedWorker,
			DisplayHint: truncate(workerruntime.SanitizeLabel(w.ProfileLabel)),
		},
		Capabilities: registry.WorkerCapabilities{
			CanGetWorker:             true,
			CanStopWorker:            live,
			CanStop:                  live,
			CanAcceptInput:           w.State == workerruntime.StateActive,
			CanStreamEvents:          true,
			CanReadBoundedTranscript: true,
		},
		LastSeenAt:  &lastSeen,
		Diagnostics: []registry.Diagnostic{},
	}
}

// truncate keeps the first maxDisplay characters of s.
func truncate(s string) string {
	n := 0
	for i := range s {
		if n == maxDisplay {
			return s[:i]
		}
		n++
	}
	return s
}
