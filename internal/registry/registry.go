// Package registry is the Runtime registry domain: validated ids, the Source
// interface that every Runtime implements, the Registry that looks Runtimes up
// and routes every Worker call by runtime_id + worker_id, typed errors, and the
// visibility and audit hooks. It imports nothing of HTTP.
package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// DefaultMaxRecords is the default and highest list limit.
const DefaultMaxRecords = 200

// Options configures a Registry.
type Options struct {
	// WorkspaceID names the workspace this backend serves; it is echoed in
	// every list.
	WorkspaceID string
	// MaxRecords is the list cap, 1 to DefaultMaxRecords; 0 means the default.
	MaxRecords int
	// Visibility is the visibility policy; nil keeps each Source's own scoping.
	Visibility VisibilityPolicy
	// Auditor receives every authority-bearing call; nil logs with slog.Default.
	Auditor Auditor
	// SourceTimeout bounds how long a merged list or a host lookup waits for
	// each Source; 0 means DefaultSourceTimeout.
	SourceTimeout time.Duration
	// Logger receives the registry's own logs (a Source's failure, by type
	// only); nil means slog.Default.
	Logger *slog.Logger
}

// Registry is the aggregation boundary in front of all Runtimes. It is
// immutable after New and safe for concurrent use. It keeps no Worker state:
// every call is delegated to the Source that owns the runtime_id.
type Registry struct {
	workspaceID string
	maxRecords  int
	sources     []Source
	byID        map[RuntimeID]Source
	visibility  VisibilityPolicy
	auditor     Auditor
	log         *slog.Logger
	// sourceTimeout bounds each Source's answer in a fan-out.
	sourceTimeout time.Duration
	// versioned is true when lists may carry a Version: only the default
	// visibility policy is known not to depend on the caller.
	versioned bool
}

// List is one list response: the items, the limit they were bounded by, the
// diagnostics (at most MaxDiagnostics) and, for paged lists, the cursor of the
// next page ("" on the last page).
type List[T any] struct {
	WorkspaceID string
	Limit       int
	Items       []T
	Diagnostics []Diagnostic
	NextCursor  string
	// Version identifies the content of this list: the same call answered
	// with the same non-empty Version returns an identical list, so a
	// transport may reuse what it encoded for it. It is built from the
	// Sources' WorkerPage.Version and is empty when any Source gave none,
	// when a Source failed, or when a custom VisibilityPolicy is in use (a
	// policy may depend on the caller). The registry itself caches nothing.
	Version string
}

// New builds a Registry over sources, in the order they are listed. It fails
// when a runtime_id is invalid or registered twice, MaxRecords is out of
// range or SourceTimeout is negative: all are start-up errors.
func New(opts Options, sources ...Source) (*Registry, error) {
	maxRecords := opts.MaxRecords
	if maxRecords == 0 {
		maxRecords = DefaultMaxRecords
	}
	if maxRecords < 1 || maxRecords > DefaultMaxRecords {
		return nil, fmt.Errorf("registry: max records %d is outside 1..%d", opts.MaxRecords, DefaultMaxRecords)
	}
	if opts.SourceTimeout < 0 {
		return nil, fmt.Errorf("registry: source timeout %s is negative", opts.SourceTimeout)
	}
	r := &Registry{
		workspaceID:   opts.WorkspaceID,
		maxRecords:    maxRecords,
		byID:          make(map[RuntimeID]Source, len(sources)),
		visibility:    opts.Visibility,
		auditor:       opts.Auditor,
		log:           opts.Logger,
		sourceTimeout: opts.SourceTimeout,
	}
	if r.sourceTimeout == 0 {
		r.sourceTimeout = DefaultSourceTimeout
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.visibility == nil {
		r.visibility = SourceScopedVisibility{}
	}
	_, r.versioned = r.visibility.(SourceScopedVisibility)
	if r.auditor == nil {
		r.auditor = SlogAuditor{Logger: slog.Default()}
	}
	for _, s := range sources {
		id := s.RuntimeID()
		if !ValidID(string(id)) {
			return nil, fmt.Errorf("registry: runtime id %q is not a valid identifier", id)
		}
		if _, dup := r.byID[id]; dup {
			return nil, fmt.Errorf("registry: runtime id %q is registered twice", id)
		}
		r.byID[id] = s
		r.sources = append(r.sources, s)
	}
	return r, nil
}

// WorkspaceID returns the workspace this registry serves.
func (r *Registry) WorkspaceID() string { return r.workspaceID }

// MaxRecords returns the list cap.
func (r *Registry) MaxRecords() int { return r.maxRecords }

func newList[T any](r *Registry, limit int) List[T] {
	return List[T]{WorkspaceID: r.workspaceID, Limit: limit, Items: []T{}, Diagnostics: []Diagnostic{}}
}

// audit reports one call and passes its error through.
func (r *Registry) audit(ctx context.Context, rec AuditRecord, err error) {
	rec.Outcome = OutcomeOK
	if err != nil {
		rec.Outcome = string(ErrorCode(err))
	}
	r.auditor.Audit(ctx, rec)
}

func (r *Registry) source(id RuntimeID) (Source, error) {
	s, ok := r.byID[id]
	if !ok {
		return nil, UnknownRuntime(id)
	}
	return s, nil
}

// Runtimes lists every registered Runtime's summary, in registration order.
// The Runtimes are asked concurrently, each under the source timeout: one
// that fails or is late is listed as unavailable (from what the registry
// knows of it), with one runtime_unavailable diagnostic naming it.
func (r *Registry) Runtimes(ctx context.Context) List[RuntimeSummary] {
	out := newList[RuntimeSummary](r, r.maxRecords)
	sources := r.sources
	if len(sources) > r.maxRecords {
		sources = sources[:r.maxRecords]
	}
	answers := fanOut(ctx, r, sources, OpGetRuntime, func(ctx context.Context, s Source) (RuntimeSummary, error) {
		return s.Summary(ctx)
	})
	for i, a := range answers {
		s := sources[i]
		if a.failed() {
			out.Diagnostics = appendDiagnostics(out.Diagnostics, unavailableDiagnostic(s.RuntimeID(), a.late, "describe itself", listedUnavailable))
			out.Items = append(out.Items, unavailableSummary(s, a.late))
			continue
		}
		out.Items = append(out.Items, clampSummary(s, a.v))
	}
	if len(r.sources) > len(sources) {
		out.Diagnostics = appendDiagnostics(out.Diagnostics, truncated("runtimes", r.maxRecords))
	}
	return out
}

// Runtime returns one Runtime's summary. Errors: unknown_runtime,
// runtime_unavailable.
func (r *Registry) Runtime(ctx context.Context, id RuntimeID) (sum RuntimeSummary, err error) {
	defer func() { r.audit(ctx, AuditRecord{Operation: OpGetRuntime, RuntimeID: id}, err) }()
	s, err := r.source(id)
	if err != nil {
		return RuntimeSummary{}, err
	}
	sum, err = s.Summary(ctx)
	if err != nil {
		return RuntimeSummary{}, r.sanitise(err, route{runtime: id, op: OpGetRuntime})
	}
	return clampSummary(s, sum), nil
}

// hostsAnswer is one Source's answer to Hosts.
type hostsAnswer struct {
	hosts []Host
	diags []Diagnostic
}

func askHosts(ctx context.Context, s Source) (hostsAnswer, error) {
	hosts, diags, err := s.Hosts(ctx)
	return hostsAnswer{hosts: hosts, diags: diags}, err
}

// Hosts lists the hosts of every Runtime, in registration order, bounded by
// the list cap. The Runtimes are asked concurrently, each under the source
// timeout: one that fails or is late is left out with one
// runtime_unavailable diagnostic naming it.
func (r *Registry) Hosts(ctx context.Context) List[Host] {
	out := newList[Host](r, r.maxRecords)
	answers := fanOut(ctx, r, r.sources, OpListRuntimeHosts, askHosts)
	cut := false
	for i, a := range answers {
		s := r.sources[i]
		if a.failed() {
			out.Diagnostics = appendDiagnostics(out.Diagnostics, unavailableDiagnostic(s.RuntimeID(), a.late, "list its hosts", leftOut))
			continue
		}
		out.Diagnostics = appendDiagnostics(out.Diagnostics, a.v.diags...)
		hosts := a.v.hosts
		if room := r.maxRecords - len(out.Items); len(hosts) > room {
			hosts, cut = hosts[:room], true
		}
		out.Items = append(out.Items, clampHosts(s, hosts)...)
	}
	if cut {
		out.Diagnostics = appendDiagnostics(out.Diagnostics, truncated("hosts", r.maxRecords))
	}
	return out
}

// RuntimeHosts lists one Runtime's hosts. Errors: unknown_runtime,
// runtime_unavailable.
func (r *Registry) RuntimeHosts(ctx context.Context, id RuntimeID) (out List[Host], err error) {
	defer func() { r.audit(ctx, AuditRecord{Operation: OpListRuntimeHosts, RuntimeID: id}, err) }()
	s, err := r.source(id)
	if err != nil {
		return List[Host]{}, err
	}
	hosts, diags, err := s.Hosts(ctx)
	if err != nil {
		return List[Host]{}, r.sanitise(err, route{runtime: id, op: OpListRuntimeHosts})
	}
	out = newList[Host](r, r.maxRecords)
	out.Diagnostics = appendDiagnostics(out.Diagnostics, diags...)
	if len(hosts) > r.maxRecords {
		hosts = hosts[:r.maxRecords]
		out.Diagnostics = appendDiagnostics(out.Diagnostics, truncated("hosts", r.maxRecords))
	}
	out.Items = append(out.Items, clampHosts(s, hosts)...)
	return out, nil
}

// Workers lists the Workers of every Runtime merged, in registration order,
// bounded by the list cap. The Runtimes are asked concurrently, each under
// the source timeout: one that fails or is late is left out with one
// runtime_unavailable diagnostic naming it. A list cut while more Workers
// exist says so in a diagnostic.
func (r *Registry) Workers(ctx context.Context) List[Worker] {
	out := newList[Worker](r, r.maxRecords)
	answers := fanOut(ctx, r, r.sources, OpListRuntimeWorkers, func(ctx context.Context, s Source) (collected, error) {
		return r.collect(ctx, s, WorkerQuery{Limit: r.maxRecords})
	})
	versions := make([]string, 0, len(r.sources))
	cut := false
	for i, a := range answers {
		s := r.sources[i]
		versions = append(versions, a.v.version)
		if a.failed() {
			versions[i] = ""
			out.Diagnostics = appendDiagnostics(out.Diagnostics, unavailableDiagnostic(s.RuntimeID(), a.late, "list its workers", leftOut))
			continue
		}
		out.Diagnostics = appendDiagnostics(out.Diagnostics, a.v.diags...)
		items := a.v.items
		if room := r.maxRecords - len(out.Items); len(items) > room {
			items, cut = items[:room:room], true
		} else if a.v.next != "" {
			cut = true
		}
		if len(out.Items) == 0 {
			out.Items = items // read-only and capacity-cut: a later append copies
		} else {
			out.Items = append(out.Items, items...)
		}
	}
	if cut {
		out.Diagnostics = appendDiagnostics(out.Diagnostics, truncated("workers", r.maxRecords))
	}
	out.Version = joinVersions(versions)
	return out
}

// joinVersions combines the versions of the Sources a list was built from,
// in order; one unknown version makes the whole unknown.
func joinVersions(vs []string) string {
	if len(vs) == 0 || slices.Contains(vs, "") {
		return ""
	}
	return strings.Join(vs, ",")
}

// HostWorkers lists the Workers on one host, bounded by the list cap. Errors:
// unknown_host, runtime_unavailable (the owning Runtime cannot list, or a
// Runtime that may own the host cannot answer).
func (r *Registry) HostWorkers(ctx context.Context, id HostID) (out List[Worker], err error) {
	rec := AuditRecord{Operation: OpListHostWorkers, HostID: id}
	defer func() { r.audit(ctx, rec, err) }()
	s, err := r.hostOwner(ctx, id)
	if err != nil {
		return List[Worker]{}, err
	}
	rec.RuntimeID = s.RuntimeID()
	c, err := r.collect(ctx, s, WorkerQuery{Limit: r.maxRecords, HostID: id})
	if err != nil {
		return List[Worker]{}, r.sanitise(err, route{runtime: s.RuntimeID(), host: id, op: OpListHostWorkers})
	}
	out = newList[Worker](r, r.maxRecords)
	out.Items = c.items
	out.Version = c.version
	out.Diagnostics = appendDiagnostics(out.Diagnostics, c.diags...)
	if c.next != "" {
		out.Diagnostics = appendDiagnostics(out.Diagnostics, truncated("workers", r.maxRecords))
	}
	return out, nil
}

// hostOwner finds the first Source, in registration order, that reports
// host id, asking all concurrently under the source timeout. When none of
// those that answered reports it and some failed or were late, the owner may
// be one of those: runtime_unavailable (naming the Runtime when only one
// failed), never unknown_host.
func (r *Registry) hostOwner(ctx context.Context, id HostID) (Source, error) {
	// A reserved Runtime is not connected and has no host: it is not asked,
	// so that it does not turn every unknown host into runtime_unavailable.
	sources := make([]Source, 0, len(r.sources))
	for _, s := range r.sources {
		if _, reserved := s.(*ReservedSource); !reserved {
			sources = append(sources, s)
		}
	}
	answers := fanOut(ctx, r, sources, OpListHostWorkers, askHosts)
	var down []RuntimeID
	for i, a := range answers {
		if a.failed() {
			down = append(down, sources[i].RuntimeID())
			continue
		}
		if slices.ContainsFunc(a.v.hosts, func(h Host) bool { return h.ID == id }) {
			return sources[i], nil
		}
	}
	if len(down) > 0 {
		e := RuntimeUnavailable("", "A runtime that may report this host cannot answer now.", nil)
		if len(down) == 1 {
			e.RuntimeID = down[0]
		}
		e.HostID = id
		return nil, e
	}
	return nil, UnknownHost(id)
}

// RuntimeWorkers returns one page of a Runtime's Workers. limit 0 means the
// list cap; cursor "" means the first page. Errors: invalid_request (limit out
// of range, cursor malformed or from another runtime), unknown_runtime,
// runtime_unavailable.
func (r *Registry) RuntimeWorkers(ctx context.Context, id RuntimeID, limit int, cursor string) (out List[Worker], err error) {
	defer func() { r.audit(ctx, AuditRecord{Operation: OpListRuntimeWorkers, RuntimeID: id}, err) }()
	if limit == 0 {
		limit = r.maxRecords
	}
	if limit < 1 || limit > r.maxRecords {
		return List[Worker]{}, InvalidRequest("limit", fmt.Sprintf("The limit must be between 1 and %d.", r.maxRecords))
	}
	s, err := r.source(id)
	if err != nil {
		return List[Worker]{}, err
	}
	var after WorkerID
	if cursor != "" {
		if after, err = decodeCursor(id, cursor); err != nil {
			return List[Worker]{}, err
		}
	}
	c, err := r.collect(ctx, s, WorkerQuery{After: after, Limit: limit})
	if err != nil {
		return List[Worker]{}, r.sanitise(err, route{runtime: id, op: OpListRuntimeWorkers})
	}
	out = newList[Worker](r, limit)
	out.Items = c.items
	out.Version = c.version
	out.Diagnostics = appendDiagnostics(out.Diagnostics, c.diags...)
	if c.next != "" {
		out.NextCursor = encodeCursor(id, c.next)
	}
	return out, nil
}

// collected is what collect gathered from one Source.
type collected struct {
	items []Worker
	diags []Diagnostic
	// next is the position to resume from ("" when nothing is left).
	next WorkerID
	// version is the pages' common Version, or "" when they differ, any is
	// empty or the visibility policy is a custom one.
	version string
}

// maxCollectPages bounds the pages collect asks one Source for in one call:
// when a hiding policy hides page after page, the call answers what it found
// with a cursor to resume from instead of walking the whole Runtime.
const maxCollectPages = 32

// collect pages through s until it has q.Limit visible Workers, the Source
// has no more, or maxCollectPages pages were read. Diagnostics are taken from
// the first page only: they describe the listing. It must make progress or
// stop: Workers at or before the position asked for (a Source that ignores
// After) are dropped, and a page that does not move the position ends the
// walk. The error is the Source's own, for the caller to sanitise.
func (r *Registry) collect(ctx context.Context, s Source, q WorkerQuery) (c collected, err error) {
	want := q.Limit
	for pages := 0; ; pages++ {
		if pages == maxCollectPages {
			c.next = q.After
			return c, nil
		}
		q.Limit = want - len(c.items)
		page, err := s.Workers(ctx, q)
		if err != nil {
			return collected{}, err
		}
		if pages == 0 {
			c.diags = page.Diagnostics
			c.version = page.Version
			if !r.versioned {
				c.version = ""
			}
		} else if page.Version != c.version {
			c.version = ""
		}
		ws, more := page.Workers, page.More
		if len(ws) > q.Limit {
			ws, more = ws[:q.Limit], true
		}
		if q.After != "" && len(ws) > 0 && ws[0].ID <= q.After {
			// The Source repeated Workers it was asked to skip.
			c.diags = appendDiagnostics(slices.Clip(c.diags), pagingIgnored(s.RuntimeID()))
			i := slices.IndexFunc(ws, func(w Worker) bool { return w.ID > q.After })
			if i < 0 {
				return c, nil
			}
			ws = ws[i:]
		}
		c.items = r.appendVisible(ctx, c.items, clampWorkers(s, ws))
		if !more || len(ws) == 0 {
			return c, nil
		}
		last := ws[len(ws)-1].ID
		if last <= q.After {
			return c, nil
		}
		q.After = last
		if len(c.items) >= want {
			c.next = q.After
			return c, nil
		}
	}
}

// appendVisible appends the visible Workers of ws to items, asking the policy
// once per Worker. When items is empty and every Worker is visible it returns
// ws itself: the Source's page is passed on without a copy (pages are
// read-only, see WorkerPage), capacity-cut so that a later append copies.
func (r *Registry) appendVisible(ctx context.Context, items, ws []Worker) []Worker {
	hidden := slices.IndexFunc(ws, func(w Worker) bool { return !r.visibility.WorkerVisible(ctx, w) })
	if hidden < 0 {
		if len(items) == 0 {
			if ws == nil {
				return []Worker{}
			}
			return ws[:len(ws):len(ws)]
		}
		return append(items, ws...)
	}
	if items == nil {
		items = make([]Worker, 0, len(ws))
	}
	items = append(items, ws[:hidden]...)
	for _, w := range ws[hidden+1:] {
		if r.visibility.WorkerVisible(ctx, w) {
			items = append(items, w)
		}
	}
	return items
}

// Worker returns one Worker by its authority key. Errors: unknown_runtime,
// unknown_worker, worker_not_visible, runtime_unavailable.
func (r *Registry) Worker(ctx context.Context, ref WorkerRef) (Worker, error) {
	w, _, err := r.VersionedWorker(ctx, ref)
	return w, err
}

// VersionedWorker is Worker plus the version of the Source's content the
// Worker was read from (see VersionedLookup), "" when the Source gives none.
// Unlike a list's, a lookup's version holds under any VisibilityPolicy: the
// policy only hides a Worker (an error, never reused), it never changes one.
func (r *Registry) VersionedWorker(ctx context.Context, ref WorkerRef) (w Worker, version string, err error) {
	defer func() {
		r.audit(ctx, AuditRecord{Operation: OpGetWorker, RuntimeID: ref.RuntimeID, WorkerID: ref.WorkerID}, err)
	}()
	_, w, version, err = r.resolveVersioned(ctx, ref, OpGetWorker)
	return w, version, err
}

// resolve routes ref to its Source and checks that the Worker exists and is
// visible. Operations are routed only after this, so an unknown or hidden
// Worker never reaches an operation.
func (r *Registry) resolve(ctx context.Context, ref WorkerRef, op Operation) (Source, Worker, error) {
	s, w, _, err := r.resolveVersioned(ctx, ref, op)
	return s, w, err
}

// resolveVersioned is resolve plus the Source's version of the Worker.
func (r *Registry) resolveVersioned(ctx context.Context, ref WorkerRef, op Operation) (Source, Worker, string, error) {
	s, err := r.source(ref.RuntimeID)
	if err != nil {
		return nil, Worker{}, "", err
	}
	var (
		w       Worker
		version string
	)
	if vl, ok := s.(VersionedLookup); ok {
		w, version, err = vl.VersionedWorker(ctx, ref.WorkerID)
	} else {
		w, err = s.Worker(ctx, ref.WorkerID)
	}
	if err != nil {
		return nil, Worker{}, "", r.sanitise(err, route{runtime: ref.RuntimeID, worker: ref.WorkerID, op: op})
	}
	// The Worker is the one routed to, whatever ids the Source put in it.
	w = clampWorker(s, w)
	w.ID = ref.WorkerID
	if !r.visibility.WorkerVisible(ctx, w) {
		return nil, Worker{}, "", WorkerNotVisible(ref)
	}
	return s, w, version, nil
}

// routeOp finds the Source of an operation on Worker ref. The Worker is
// looked up first, so that a hidden Worker never reaches an operation and an
// unknown one answers 404 rather than 501, unless the policy is the default
// one (it hides nothing) and the Source implements the operation: then the
// operation itself answers unknown_worker, and a remote Runtime is asked
// once rather than twice.
func (r *Registry) routeOp(ctx context.Context, ref WorkerRef, op Operation, implements func(Source) bool) (Source, error) {
	if r.versioned {
		s, err := r.source(ref.RuntimeID)
		if err != nil {
			return nil, err
		}
		if implements(s) {
			return s, nil
		}
	}
	s, _, err := r.resolve(ctx, ref, op)
	return s, err
}

// CreateWorker asks Runtime id to create a Worker. Errors: unknown_runtime,
// operation_unsupported, runtime_unavailable, invalid_request,
// runtime_at_capacity, idempotency_key_reused.
func (r *Registry) CreateWorker(ctx context.Context, id RuntimeID, req CreateWorkerRequest) (w Worker, err error) {
	rec := AuditRecord{Operation: OpCreateWorker, RuntimeID: id}
	defer func() { r.audit(ctx, rec, err) }()
	s, err := r.source(id)
	if err != nil {
		return Worker{}, err
	}
	c, ok := s.(WorkerCreator)
	if !ok {
		return Worker{}, OperationUnsupported(id, OpCreateWorker)
	}
	w, err = c.CreateWorker(ctx, req)
	if err != nil {
		return Worker{}, r.sanitise(err, route{runtime: id, op: OpCreateWorker})
	}
	rec.WorkerID = w.ID
	return clampWorker(s, w), nil
}

// SendInput routes one input to the Worker ref. Errors: unknown_runtime,
// unknown_worker, worker_not_visible, operation_unsupported,
// runtime_unavailable, invalid_request, worker_not_running, worker_busy.
func (r *Registry) SendInput(ctx context.Context, ref WorkerRef, in WorkerInput) (ack InputAck, err error) {
	defer func() {
		r.audit(ctx, AuditRecord{Operation: OpSendInput, RuntimeID: ref.RuntimeID, WorkerID: ref.WorkerID}, err)
	}()
	s, err := r.routeOp(ctx, ref, OpSendInput, func(s Source) bool { _, ok := s.(InputSender); return ok })
	if err != nil {
		return InputAck{}, err
	}
	in2, ok := s.(InputSender)
	if !ok {
		return InputAck{}, OperationUnsupported(ref.RuntimeID, OpSendInput)
	}
	ack, err = in2.SendInput(ctx, ref.WorkerID, in)
	if err != nil {
		return InputAck{}, r.sanitise(err, route{runtime: ref.RuntimeID, worker: ref.WorkerID, op: OpSendInput})
	}
	ack.Ref = ref
	return ack, nil
}

// StopWorker routes a stop to the Worker ref. Errors: unknown_runtime,
// unknown_worker, worker_not_visible, operation_unsupported,
// runtime_unavailable, invalid_request.
func (r *Registry) StopWorker(ctx context.Context, ref WorkerRef, mode StopMode) (ack StopAck, err error) {
	defer func() {
		r.audit(ctx, AuditRecord{Operation: OpStopWorker, RuntimeID: ref.RuntimeID, WorkerID: ref.WorkerID}, err)
	}()
	s, err := r.routeOp(ctx, ref, OpStopWorker, func(s Source) bool { _, ok := s.(WorkerStopper); return ok })
	if err != nil {
		return StopAck{}, err
	}
	st, ok := s.(WorkerStopper)
	if !ok {
		return StopAck{}, OperationUnsupported(ref.RuntimeID, OpStopWorker)
	}
	ack, err = st.StopWorker(ctx, ref.WorkerID, mode)
	if err != nil {
		return StopAck{}, r.sanitise(err, route{runtime: ref.RuntimeID, worker: ref.WorkerID, op: OpStopWorker})
	}
	ack.Ref = ref
	return ack, nil
}

// Profiles lists the profiles a create on Runtime id may name. Errors:
// unknown_runtime, operation_unsupported, runtime_unavailable.
func (r *Registry) Profiles(ctx context.Context, id RuntimeID) (out List[Profile], err error) {
	defer func() { r.audit(ctx, AuditRecord{Operation: OpListProfiles, RuntimeID: id}, err) }()
	s, err := r.source(id)
	if err != nil {
		return List[Profile]{}, err
	}
	pl, ok := s.(ProfileLister)
	if !ok {
		return List[Profile]{}, OperationUnsupported(id, OpListProfiles)
	}
	profiles, err := pl.Profiles(ctx)
	if err != nil {
		return List[Profile]{}, r.sanitise(err, route{runtime: id, op: OpListProfiles})
	}
	out = newList[Profile](r, r.maxRecords)
	if len(profiles) > r.maxRecords {
		profiles = profiles[:r.maxRecords]
	}
	out.Items = append(out.Items, profiles...)
	return out, nil
}

// Transcript returns one page of the transcript of Worker ref. q.Limit 0
// means DefaultTranscriptLimit. Errors: invalid_request (limit or after out
// of range), unknown_runtime, unknown_worker, worker_not_visible,
// operation_unsupported, runtime_unavailable.
func (r *Registry) Transcript(ctx context.Context, ref WorkerRef, q TranscriptQuery) (page TranscriptPage, err error) {
	defer func() {
		r.audit(ctx, AuditRecord{Operation: OpReadTranscript, RuntimeID: ref.RuntimeID, WorkerID: ref.WorkerID}, err)
	}()
	if q.Limit == 0 {
		q.Limit = DefaultTranscriptLimit
	}
	if q.Limit < 1 || q.Limit > MaxTranscriptLimit {
		return TranscriptPage{}, InvalidRequest("limit", fmt.Sprintf("The limit must be between 1 and %d.", MaxTranscriptLimit))
	}
	if q.After < 0 {
		return TranscriptPage{}, InvalidRequest("after", "after must not be negative.")
	}
	s, err := r.routeOp(ctx, ref, OpReadTranscript, func(s Source) bool { _, ok := s.(TranscriptReader); return ok })
	if err != nil {
		return TranscriptPage{}, err
	}
	tr, ok := s.(TranscriptReader)
	if !ok {
		return TranscriptPage{}, OperationUnsupported(ref.RuntimeID, OpReadTranscript)
	}
	page, err = tr.Transcript(ctx, ref.WorkerID, q)
	if err != nil {
		return TranscriptPage{}, r.sanitise(err, route{runtime: ref.RuntimeID, worker: ref.WorkerID, op: OpReadTranscript})
	}
	page.Ref = ref
	if page.Items == nil {
		page.Items = []TranscriptEntry{}
	}
	return page, nil
}

// Events opens the event stream of Runtime id, or of one of its Workers when
// q.WorkerID is set. Errors: unknown_runtime, unknown_worker,
// worker_not_visible, operation_unsupported, runtime_unavailable,
// invalid_request (a malformed cursor).
func (r *Registry) Events(ctx context.Context, id RuntimeID, q EventQuery) (stream EventStream, err error) {
	rec := AuditRecord{Operation: OpStreamEvents, RuntimeID: id, WorkerID: q.WorkerID}
	defer func() { r.audit(ctx, rec, err) }()
	if q.Cursor != "" && !ValidID(q.Cursor) {
		return nil, InvalidRequest("cursor", "The cursor is not valid for this stream; start again without one.")
	}
	var s Source
	if q.WorkerID != "" {
		s, _, err = r.resolve(ctx, WorkerRef{RuntimeID: id, WorkerID: q.WorkerID}, OpStreamEvents)
	} else {
		s, err = r.source(id)
	}
	if err != nil {
		return nil, err
	}
	es, ok := s.(EventStreamer)
	if !ok {
		return nil, OperationUnsupported(id, OpStreamEvents)
	}
	stream, err = es.Events(ctx, q)
	if err != nil {
		return nil, r.sanitise(err, route{runtime: id, worker: q.WorkerID, op: OpStreamEvents})
	}
	return &routedStream{r: r, s: s, inner: stream}, nil
}

// routedStream passes a Source's events on with the routed runtime_id,
// capability flags the Source really implements, and only the Workers the
// visibility policy shows.
type routedStream struct {
	r     *Registry
	s     Source
	inner EventStream
	// hidden remembers Workers the policy hid, so that their later
	// transcript and removal events are dropped too.
	hidden map[WorkerID]bool
}

// Next returns the next event the caller may see.
func (rs *routedStream) Next(ctx context.Context) (Event, error) {
	id := rs.s.RuntimeID()
	for {
		ev, err := rs.inner.Next(ctx)
		if err != nil {
			if errors.Is(err, ErrStreamEnded) || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
				return Event{}, err
			}
			return Event{}, rs.r.sanitise(err, route{runtime: id, op: OpStreamEvents})
		}
		if ev.Kind == EventResync {
			return Event{Kind: EventResync, Reason: resyncReason(ev.Reason)}, nil
		}
		ev.Ref.RuntimeID = id
		if ev.Kind == EventWorkerUpserted {
			ev.Worker.RuntimeID = id
			ev.Ref.WorkerID = ev.Worker.ID
			ev.Worker = clampWorker(rs.s, ev.Worker)
			if !rs.r.visibility.WorkerVisible(ctx, ev.Worker) {
				if rs.hidden == nil {
					rs.hidden = map[WorkerID]bool{}
				}
				rs.hidden[ev.Ref.WorkerID] = true
				continue
			}
			delete(rs.hidden, ev.Ref.WorkerID)
		} else if rs.hidden[ev.Ref.WorkerID] {
			continue
		}
		return ev, nil
	}
}

// resyncReason keeps a Source's resync reason when it is one of ours.
func resyncReason(reason string) string {
	switch reason {
	case ResyncCursorUnknown, ResyncCursorExpired, ResyncSourceRestarted, ResyncSubscriberLagged:
		return reason
	}
	return ResyncSourceRestarted
}

// Close closes the Source's stream.
func (rs *routedStream) Close() { rs.inner.Close() }

// cursorVersion prefixes every cursor so that the format can change later
// without misreading old cursors.
const cursorVersion = "c1"

// encodeCursor makes the opaque cursor that resumes Runtime id's list after
// worker after. It is bound to the runtime so it cannot be replayed on another.
func encodeCursor(id RuntimeID, after WorkerID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + "|" + string(id) + "|" + string(after)))
}

// decodeCursor reverses encodeCursor. It answers invalid_request for anything
// it did not make for Runtime id.
func decodeCursor(id RuntimeID, cursor string) (WorkerID, error) {
	bad := InvalidRequest("cursor", "The cursor is not valid for this list; start again without one.")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", bad
	}
	version, rest, ok := strings.Cut(string(raw), "|")
	if !ok || version != cursorVersion {
		return "", bad
	}
	rid, after, ok := strings.Cut(rest, "|")
	if !ok || RuntimeID(rid) != id || !ValidID(after) {
		return "", bad
	}
	return WorkerID(after), nil
}

// appendDiagnostics appends ds to dst, keeping at most MaxDiagnostics: when
// more arrive, the last slot is replaced by a note that the list was cut.
func appendDiagnostics(dst []Diagnostic, ds ...Diagnostic) []Diagnostic {
	for _, d := range ds {
		switch {
		case len(dst) < MaxDiagnostics:
			dst = append(dst, d)
		case dst[len(dst)-1].Code != diagnosticsTruncated:
			dst[len(dst)-1] = Diagnostic{Code: diagnosticsTruncated, Severity: SeverityInfo,
				Message: fmt.Sprintf("More diagnostics were found; only the first %d are shown.", MaxDiagnostics-1)}
		}
	}
	return dst
}

// diagnosticsTruncated is the code of the note that replaces the last
// diagnostic of a cut list.
const diagnosticsTruncated = "diagnostics_truncated"

// CapDiagnostics returns ds cut to MaxDiagnostics the way every list is cut
// (the last slot says more were found), so that a Source can bound what it
// keeps and the registry's own cap then leaves it as is. ds is not modified.
func CapDiagnostics(ds []Diagnostic) []Diagnostic {
	if len(ds) <= MaxDiagnostics {
		return ds
	}
	return appendDiagnostics(make([]Diagnostic, 0, MaxDiagnostics), ds...)
}

func truncated(what string, limit int) Diagnostic {
	return Diagnostic{Code: "list_truncated", Severity: SeverityInfo,
		Message: fmt.Sprintf("Only the first %d %s are listed; use the runtime-scoped endpoints to page through all.", limit, what)}
}

func pagingIgnored(id RuntimeID) Diagnostic {
	return Diagnostic{Code: "runtime_paging_inconsistent", Severity: SeverityWarning,
		Message: fmt.Sprintf("Runtime %s repeated workers it was asked to skip; the list may be incomplete.", id)}
}
