package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/sse"
)

// DefaultMaxStreams bounds the event streams open at once.
const DefaultMaxStreams = 256

// HeartbeatInterval is how often an idle event stream writes a comment line,
// so that proxies and browsers see the connection alive.
const HeartbeatInterval = 15 * time.Second

// streamLimiter counts open event streams against a bound and ends them all
// when the server shuts down.
type streamLimiter struct {
	slots    chan struct{}
	shutdown <-chan struct{}
	metrics  *Metrics
}

func newStreamLimiter(max int, shutdown <-chan struct{}, m *Metrics) *streamLimiter {
	if max <= 0 {
		max = DefaultMaxStreams
	}
	return &streamLimiter{slots: make(chan struct{}, max), shutdown: shutdown, metrics: m}
}

// acquire takes a slot, or reports too_many_streams.
func (l *streamLimiter) acquire() (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		l.metrics.streamOpened()
		return func() { <-l.slots; l.metrics.streamClosed() }, nil
	default:
		return nil, registry.TooManyStreams()
	}
}

// openStream answers one of the two event routes.
func (h *Handlers) openStream(ctx context.Context, id registry.RuntimeID, q registry.EventQuery) (eventStreamResponse, error) {
	release, err := h.streams.acquire()
	if err != nil {
		return eventStreamResponse{}, err
	}
	stream, err := h.reg.Events(ctx, id, q)
	if err != nil {
		release()
		return eventStreamResponse{}, err
	}
	return eventStreamResponse{ctx: ctx, stream: stream, release: release, shutdown: h.streams.shutdown, log: h.log}, nil
}

// streamCursor picks the resume cursor: Last-Event-ID wins over ?cursor=,
// as the contract says (a reconnecting EventSource sends the header while
// the page's URL may still carry an older cursor).
func streamCursor(header, query *string) string {
	if header != nil && *header != "" {
		return *header
	}
	return deref(query)
}

// StreamRuntimeEvents streams the events of one Runtime.
func (h *Handlers) StreamRuntimeEvents(ctx context.Context, req gen.StreamRuntimeEventsRequestObject) (gen.StreamRuntimeEventsResponseObject, error) {
	id, err := registry.ParseRuntimeID(req.RuntimeId)
	if err != nil {
		return h.problem(err), nil
	}
	resp, err := h.openStream(ctx, id, registry.EventQuery{Cursor: streamCursor(req.Params.LastEventID, req.Params.Cursor)})
	if err != nil {
		return h.problem(err), nil
	}
	return resp, nil
}

// StreamWorkerEvents streams the events of one Worker.
func (h *Handlers) StreamWorkerEvents(ctx context.Context, req gen.StreamWorkerEventsRequestObject) (gen.StreamWorkerEventsResponseObject, error) {
	ref, err := registry.ParseWorkerRef(req.RuntimeId, req.WorkerId)
	if err != nil {
		return h.problem(err), nil
	}
	resp, err := h.openStream(ctx, ref.RuntimeID, registry.EventQuery{Cursor: streamCursor(req.Params.LastEventID, req.Params.Cursor), WorkerID: ref.WorkerID})
	if err != nil {
		return h.problem(err), nil
	}
	return resp, nil
}

// eventStreamResponse writes a registry event stream as Server-Sent Events.
// It is written by hand rather than through the generated io.Reader
// response so that it can lift the server's write deadline for this one
// response, flush every event at once, send heartbeats, and stop when the
// client leaves or the server shuts down.
type eventStreamResponse struct {
	ctx      context.Context
	stream   registry.EventStream
	release  func()
	shutdown <-chan struct{}
	log      *slog.Logger
}

// VisitStreamRuntimeEventsResponse writes the stream.
func (r eventStreamResponse) VisitStreamRuntimeEventsResponse(w http.ResponseWriter) error {
	return r.serve(w)
}

// VisitStreamWorkerEventsResponse writes the stream.
func (r eventStreamResponse) VisitStreamWorkerEventsResponse(w http.ResponseWriter) error {
	return r.serve(w)
}

func (r eventStreamResponse) serve(w http.ResponseWriter) error {
	defer r.release()
	defer r.stream.Close()
	sse.Serve(r.ctx, w, sse.Stream[registry.Event]{
		Next:      r.stream.Next,
		Encode:    sseFrame,
		Heartbeat: HeartbeatInterval,
		Shutdown:  r.shutdown,
		Ended: func(err error) {
			if !errors.Is(err, registry.ErrStreamEnded) {
				r.log.Warn("event stream failed", slog.String("reason", string(registry.ErrorCode(err))))
			}
		},
		EncodeFailed: func(ev registry.Event, _ error) {
			r.log.Error("event encoding failed", slog.String("kind", string(ev.Kind)))
		},
	})
	return nil
}

// eventData is the contract's data object of one event.
func eventData(ev registry.Event) any {
	switch ev.Kind {
	case registry.EventWorkerUpserted:
		return workerOut(ev.Worker)
	case registry.EventWorkerRemoved:
		return gen.WorkerRemovedEvent{RuntimeId: string(ev.Ref.RuntimeID), WorkerId: string(ev.Ref.WorkerID)}
	case registry.EventTranscriptAppended:
		return gen.TranscriptAppendedEvent{
			RuntimeId: string(ev.Ref.RuntimeID), WorkerId: string(ev.Ref.WorkerID),
			Sequence: ev.Entry.Sequence, Role: gen.TranscriptRole(ev.Entry.Role), Content: ev.Entry.Content, At: ev.Entry.At.UTC(),
		}
	default:
		return gen.ResyncEvent{Reason: gen.ResyncEventReason(ev.Reason)}
	}
}

// sseFrame encodes one event as an SSE frame. JSON never holds a raw
// newline, so the data fits one data: line.
func sseFrame(ev registry.Event) ([]byte, error) {
	data, err := json.Marshal(eventData(ev))
	if err != nil {
		return nil, err
	}
	kind := ev.Kind
	if kind != registry.EventWorkerUpserted && kind != registry.EventWorkerRemoved && kind != registry.EventTranscriptAppended {
		kind = registry.EventResync
	}
	return sse.Frame(ev.Cursor, string(kind), data), nil
}
