// Package handlers implements the generated strict server interface by calling
// the registry, maps registry errors to RFC 9457 problem responses in one place,
// and builds the echo server with the contract's request validator in front.
package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/httpkit"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Handlers answers every operation of the contract through the registry.
type Handlers struct {
	reg   *registry.Registry
	spec  specResponse
	log   *slog.Logger
	cache *bodyCache
	// lookups caches the encoded single Workers, apart from the lists.
	lookups *bodyCache
	metrics *Metrics
	streams *streamLimiter
	// console is the built browser console; nil serves the embedded one.
	console fs.FS
}

var _ gen.StrictServerInterface = (*Handlers)(nil)

// New returns the handlers for reg with the logger, metrics, body cache and
// event-stream bound of opts (see ServerOptions; NewServer calls it).
// specJSON is the contract served, as is, at /api/openapi.json; it fails
// only if specJSON is not a JSON object.
func New(reg *registry.Registry, specJSON []byte, opts ServerOptions) (*Handlers, error) {
	if !json.Valid(specJSON) || !bytes.HasPrefix(bytes.TrimSpace(specJSON), []byte("{")) {
		return nil, errors.New("handlers: the embedded spec is not a JSON object")
	}
	log, m := opts.logger(), opts.metrics()
	return &Handlers{reg: reg, spec: specResponse(specJSON), log: log, metrics: m, cache: opts.bodyCache(),
		lookups: opts.bodyCache(),
		streams: newStreamLimiter(opts.MaxStreams, opts.Shutdown, m), console: opts.Console}, nil
}

func (h *Handlers) problem(err error) problemResponse { return problemOf(err, h.log) }

// GetHealth answers that the process serves requests.
func (h *Handlers) GetHealth(context.Context, gen.GetHealthRequestObject) (gen.GetHealthResponseObject, error) {
	return gen.GetHealth200JSONResponse{Status: gen.HealthStatusOk}, nil
}

// GetMetrics serves the metrics in the Prometheus text format.
func (h *Handlers) GetMetrics(context.Context, gen.GetMetricsRequestObject) (gen.GetMetricsResponseObject, error) {
	return metricsResponse{m: h.metrics, log: h.log}, nil
}

// GetOpenAPISpec serves the contract this server validates against.
func (h *Handlers) GetOpenAPISpec(context.Context, gen.GetOpenAPISpecRequestObject) (gen.GetOpenAPISpecResponseObject, error) {
	return h.spec, nil
}

// specResponse is the contract's JSON, encoded once at start-up and written as
// is: the document is large and never changes while the process runs.
type specResponse []byte

// VisitGetOpenAPISpecResponse writes the contract.
func (s specResponse) VisitGetOpenAPISpecResponse(w http.ResponseWriter) error {
	return httpkit.WriteJSONBody(w, s)
}

// ListRuntimes lists every registered Runtime.
func (h *Handlers) ListRuntimes(ctx context.Context, req gen.ListRuntimesRequestObject) (gen.ListRuntimesResponseObject, error) {
	list := h.reg.Runtimes(ctx)
	return h.respond("", req.Params.IfNoneMatch, func() any { return runtimeListOut(list) })
}

// ListHosts lists the hosts of every Runtime.
func (h *Handlers) ListHosts(ctx context.Context, req gen.ListHostsRequestObject) (gen.ListHostsResponseObject, error) {
	list := h.reg.Hosts(ctx)
	return h.respond("", req.Params.IfNoneMatch, func() any { return hostListOut(list) })
}

// ListWorkers lists the Workers of every Runtime, merged.
func (h *Handlers) ListWorkers(ctx context.Context, req gen.ListWorkersRequestObject) (gen.ListWorkersResponseObject, error) {
	list := h.reg.Workers(ctx)
	return h.respond(cacheKey(list.Version, "listWorkers"), req.Params.IfNoneMatch, func() any { return workerListOut(list) })
}

// ListHostWorkers lists the Workers on one host.
func (h *Handlers) ListHostWorkers(ctx context.Context, req gen.ListHostWorkersRequestObject) (gen.ListHostWorkersResponseObject, error) {
	id, err := registry.ParseHostID(req.HostId)
	if err != nil {
		return h.problem(err), nil
	}
	list, err := h.reg.HostWorkers(ctx, id)
	if err != nil {
		return h.problem(err), nil
	}
	return h.respond(cacheKey(list.Version, "listHostWorkers", string(id)), req.Params.IfNoneMatch, func() any { return workerListOut(list) })
}

// GetRuntime returns one Runtime.
func (h *Handlers) GetRuntime(ctx context.Context, req gen.GetRuntimeRequestObject) (gen.GetRuntimeResponseObject, error) {
	id, err := registry.ParseRuntimeID(req.RuntimeId)
	if err != nil {
		return h.problem(err), nil
	}
	sum, err := h.reg.Runtime(ctx, id)
	if err != nil {
		return h.problem(err), nil
	}
	return h.respond("", req.Params.IfNoneMatch, func() any { return runtimeOut(sum) })
}

// ListRuntimeHosts lists one Runtime's hosts.
func (h *Handlers) ListRuntimeHosts(ctx context.Context, req gen.ListRuntimeHostsRequestObject) (gen.ListRuntimeHostsResponseObject, error) {
	id, err := registry.ParseRuntimeID(req.RuntimeId)
	if err != nil {
		return h.problem(err), nil
	}
	list, err := h.reg.RuntimeHosts(ctx, id)
	if err != nil {
		return h.problem(err), nil
	}
	return h.respond("", req.Params.IfNoneMatch, func() any { return hostListOut(list) })
}

// ListRuntimeWorkers returns one page of a Runtime's Workers.
func (h *Handlers) ListRuntimeWorkers(ctx context.Context, req gen.ListRuntimeWorkersRequestObject) (gen.ListRuntimeWorkersResponseObject, error) {
	id, err := registry.ParseRuntimeID(req.RuntimeId)
	if err != nil {
		return h.problem(err), nil
	}
	// The validator has checked limit against the contract (1 to 200); the
	// registry checks it against --max-records. 0 means its default.
	limit := 0
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	list, err := h.reg.RuntimeWorkers(ctx, id, limit, deref(req.Params.Cursor))
	if err != nil {
		return h.problem(err), nil
	}
	key := cacheKey(list.Version, "listRuntimeWorkers", string(id), strconv.Itoa(list.Limit), deref(req.Params.Cursor))
	return h.respond(key, req.Params.IfNoneMatch, func() any { return workerListOut(list) })
}

// GetWorker returns one Worker by runtime_id + worker_id.
func (h *Handlers) GetWorker(ctx context.Context, req gen.GetWorkerRequestObject) (gen.GetWorkerResponseObject, error) {
	ref, err := registry.ParseWorkerRef(req.RuntimeId, req.WorkerId)
	if err != nil {
		return h.problem(err), nil
	}
	w, version, err := h.reg.VersionedWorker(ctx, ref)
	if err != nil {
		return h.problem(err), nil
	}
	key := cacheKey(version, "getWorker", string(ref.RuntimeID), string(ref.WorkerID))
	return respondFrom(h.lookups, key, req.Params.IfNoneMatch, func() any { return workerOut(w) })
}

// CreateWorker routes an intent-based create to the Runtime.
func (h *Handlers) CreateWorker(ctx context.Context, req gen.CreateWorkerRequestObject) (gen.CreateWorkerResponseObject, error) {
	id, err := registry.ParseRuntimeID(req.RuntimeId)
	if err != nil {
		return h.problem(err), nil
	}
	create := createRequestIn(*req.Body)
	create.IdempotencyKey = deref(req.Params.IdempotencyKey)
	w, err := h.reg.CreateWorker(ctx, id, create)
	if err != nil {
		return h.problem(err), nil
	}
	return gen.CreateWorker202JSONResponse{RuntimeId: string(w.RuntimeID), WorkerId: string(w.ID), Worker: workerOut(w)}, nil
}

// SendWorkerInput routes one input to the Worker.
func (h *Handlers) SendWorkerInput(ctx context.Context, req gen.SendWorkerInputRequestObject) (gen.SendWorkerInputResponseObject, error) {
	ref, err := registry.ParseWorkerRef(req.RuntimeId, req.WorkerId)
	if err != nil {
		return h.problem(err), nil
	}
	ack, err := h.reg.SendInput(ctx, ref, registry.WorkerInput{Kind: registry.InputKind(req.Body.Kind), Content: req.Body.Content})
	if err != nil {
		return h.problem(err), nil
	}
	out := gen.SendWorkerInput202JSONResponse{RuntimeId: string(ack.Ref.RuntimeID), WorkerId: string(ack.Ref.WorkerID), Accepted: ack.Accepted}
	if ack.Sequence > 0 {
		out.Sequence = ptr(ack.Sequence)
	}
	return out, nil
}

// StopWorker routes a stop to the Worker.
func (h *Handlers) StopWorker(ctx context.Context, req gen.StopWorkerRequestObject) (gen.StopWorkerResponseObject, error) {
	ref, err := registry.ParseWorkerRef(req.RuntimeId, req.WorkerId)
	if err != nil {
		return h.problem(err), nil
	}
	ack, err := h.reg.StopWorker(ctx, ref, registry.StopMode(req.Body.Mode))
	if err != nil {
		return h.problem(err), nil
	}
	out := gen.StopWorker202JSONResponse{RuntimeId: string(ack.Ref.RuntimeID), WorkerId: string(ack.Ref.WorkerID),
		Mode: gen.StopMode(ack.Mode), State: gen.WorkerState(ack.State)}
	if ack.Status != "" {
		out.Status = ptr(ack.Status)
	}
	return out, nil
}

// ListRuntimeProfiles lists the profiles a create on the Runtime may name.
func (h *Handlers) ListRuntimeProfiles(ctx context.Context, req gen.ListRuntimeProfilesRequestObject) (gen.ListRuntimeProfilesResponseObject, error) {
	id, err := registry.ParseRuntimeID(req.RuntimeId)
	if err != nil {
		return h.problem(err), nil
	}
	list, err := h.reg.Profiles(ctx, id)
	if err != nil {
		return h.problem(err), nil
	}
	return h.respond("", req.Params.IfNoneMatch, func() any { return profileListOut(list) })
}

// GetWorkerTranscript returns one page of a Worker's transcript.
func (h *Handlers) GetWorkerTranscript(ctx context.Context, req gen.GetWorkerTranscriptRequestObject) (gen.GetWorkerTranscriptResponseObject, error) {
	ref, err := registry.ParseWorkerRef(req.RuntimeId, req.WorkerId)
	if err != nil {
		return h.problem(err), nil
	}
	q := registry.TranscriptQuery{}
	if req.Params.After != nil {
		q.After = *req.Params.After
	}
	if req.Params.Limit != nil {
		q.Limit = *req.Params.Limit
	}
	page, err := h.reg.Transcript(ctx, ref, q)
	if err != nil {
		return h.problem(err), nil
	}
	return h.respond("", req.Params.IfNoneMatch, func() any { return transcriptPageOut(page) })
}
