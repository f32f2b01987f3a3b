// Package runtimehttp serves one Worker Runtime over HTTP: the generated
// strict server interface of api/worker-runtime.yaml implemented over
// *workerruntime.Runtime and nothing else, errors mapped to problem+json in
// one place (problem.go), conversions in one file (convert.go), Server-Sent
// Events (events.go), and the echo server with the bearer token check and
// the contract's request validator in front (server.go).
package runtimehttp

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	gen "github.com/workspace-backend/runtime-registry/internal/gen/workerruntimeapi"
	"github.com/workspace-backend/runtime-registry/internal/httpkit"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// Handlers answers every operation of the worker-runtime contract through
// one Runtime.
type Handlers struct {
	rt        *workerruntime.Runtime
	label     string
	version   string
	spec      specResponse
	log       *slog.Logger
	streams   *streamLimiter
	shutdown  <-chan struct{}
	heartbeat time.Duration
}

var _ gen.StrictServerInterface = (*Handlers)(nil)

func (h *Handlers) problem(err error, workerID string) problemResponse {
	return problemOf(err, workerID, h.log)
}

func (h *Handlers) closing() bool {
	select {
	case <-h.shutdown:
		return true
	default:
		return false
	}
}

// GetHealth answers that the process serves requests.
func (h *Handlers) GetHealth(context.Context, gen.GetHealthRequestObject) (gen.GetHealthResponseObject, error) {
	return gen.GetHealth200JSONResponse{Status: gen.HealthStatusOk}, nil
}

// specResponse is the contract's JSON, encoded once.
type specResponse []byte

// VisitGetOpenAPISpecResponse writes the contract.
func (s specResponse) VisitGetOpenAPISpecResponse(w http.ResponseWriter) error {
	return httpkit.WriteJSONBody(w, s)
}

// GetOpenAPISpec serves the contract this process validates against.
func (h *Handlers) GetOpenAPISpec(context.Context, gen.GetOpenAPISpecRequestObject) (gen.GetOpenAPISpecResponseObject, error) {
	return h.spec, nil
}

// GetRuntime describes the Runtime.
func (h *Handlers) GetRuntime(ctx context.Context, _ gen.GetRuntimeRequestObject) (gen.GetRuntimeResponseObject, error) {
	info, err := h.rt.Info(ctx)
	if err != nil {
		return h.problem(err, ""), nil
	}
	return gen.GetRuntime200JSONResponse(infoOut(info, h.label, h.version, h.closing())), nil
}

// ListWorkers answers one page of Workers.
func (h *Handlers) ListWorkers(ctx context.Context, req gen.ListWorkersRequestObject) (gen.ListWorkersResponseObject, error) {
	limit := maxListLimit
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	page, err := h.rt.List(ctx, deref(req.Params.Cursor), limit)
	if err != nil {
		return h.problem(err, ""), nil
	}
	return gen.ListWorkers200JSONResponse(listOut(page)), nil
}

// CreateWorker creates a Worker.
func (h *Handlers) CreateWorker(ctx context.Context, req gen.CreateWorkerRequestObject) (gen.CreateWorkerResponseObject, error) {
	if req.Body == nil {
		return h.problem(workerruntime.ErrInvalidRequest, ""), nil
	}
	w, err := h.rt.Create(ctx, createIn(*req.Body, req.Params.IdempotencyKey))
	if err != nil {
		return h.problem(err, ""), nil
	}
	return gen.CreateWorker202JSONResponse(workerOut(w)), nil
}

// GetWorker answers one Worker.
func (h *Handlers) GetWorker(ctx context.Context, req gen.GetWorkerRequestObject) (gen.GetWorkerResponseObject, error) {
	w, err := h.rt.Get(ctx, req.WorkerId)
	if err != nil {
		return h.problem(err, req.WorkerId), nil
	}
	return gen.GetWorker200JSONResponse(workerOut(w)), nil
}

// SendWorkerInput queues one input.
func (h *Handlers) SendWorkerInput(ctx context.Context, req gen.SendWorkerInputRequestObject) (gen.SendWorkerInputResponseObject, error) {
	if req.Body == nil {
		return h.problem(workerruntime.ErrInvalidRequest, req.WorkerId), nil
	}
	ack, err := h.rt.SendInput(ctx, req.WorkerId, workerruntime.Input{Kind: workerruntime.InputKind(req.Body.Kind), Content: req.Body.Content})
	if err != nil {
		return h.problem(err, req.WorkerId), nil
	}
	return gen.SendWorkerInput202JSONResponse{Accepted: true, Sequence: ack.Sequence}, nil
}

// StopWorker stops a Worker (idempotent).
func (h *Handlers) StopWorker(ctx context.Context, req gen.StopWorkerRequestObject) (gen.StopWorkerResponseObject, error) {
	if req.Body == nil {
		return h.problem(workerruntime.ErrInvalidRequest, req.WorkerId), nil
	}
	w, err := h.rt.Stop(ctx, req.WorkerId, workerruntime.StopMode(req.Body.Mode))
	if err != nil {
		return h.problem(err, req.WorkerId), nil
	}
	return gen.StopWorker202JSONResponse{State: gen.WorkerState(w.State), Status: w.Status}, nil
}

// GetWorkerTranscript answers one page of a transcript.
func (h *Handlers) GetWorkerTranscript(ctx context.Context, req gen.GetWorkerTranscriptRequestObject) (gen.GetWorkerTranscriptResponseObject, error) {
	page, err := h.rt.Transcript(ctx, req.WorkerId, deref(req.Params.After), deref(req.Params.Limit))
	if err != nil {
		return h.problem(err, req.WorkerId), nil
	}
	return gen.GetWorkerTranscript200JSONResponse(transcriptOut(page)), nil
}

// StreamEvents streams every Worker's events.
func (h *Handlers) StreamEvents(ctx context.Context, req gen.StreamEventsRequestObject) (gen.StreamEventsResponseObject, error) {
	release, err := h.streams.acquire()
	if err != nil {
		return h.problem(err, ""), nil
	}
	cursor := deref(req.Params.Cursor)
	if id := deref(req.Params.LastEventID); id != "" {
		cursor = id
	}
	sub, err := h.rt.Subscribe(ctx, workerruntime.SubscribeRequest{Cursor: cursor})
	if err != nil {
		release()
		return h.problem(err, ""), nil
	}
	return eventStreamResponse{ctx: ctx, sub: sub, release: release, shutdown: h.shutdown, heartbeat: h.heartbeat, log: h.log}, nil
}
