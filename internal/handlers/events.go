package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/registry"
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

type nextResult struct {
	ev  registry.Event
	err error
}

func (r eventStreamResponse) serve(w http.ResponseWriter) error {
	defer r.release()
	defer r.stream.Close()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()

	rc := http.NewResponseController(w)
	// The server's write timeout is for ordinary answers; a stream lives as
	// long as its client. Not every writer supports deadlines (a test
	// recorder, say): then there is none to lift.
	_ = rc.SetWriteDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A comment at once, so the client sees the headers before the first event.
	if _, err := io.WriteString(w, ": ok\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}

	// Next blocks, so it runs in its own goroutine; the loop below also
	// watches the heartbeat, the client and the server's shutdown.
	results := make(chan nextResult)
	go func() {
		defer close(results)
		for {
			ev, err := r.stream.Next(ctx)
			select {
			case results <- nextResult{ev, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	heartbeat := time.NewTicker(HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.shutdown:
			return nil
		case <-heartbeat.C:
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
		case res, ok := <-results:
			if !ok || res.err != nil {
				if res.err != nil && !errors.Is(res.err, registry.ErrStreamEnded) && !errors.Is(res.err, context.Canceled) {
					r.log.Warn("event stream failed", slog.String("reason", string(registry.ErrorCode(res.err))))
				}
				return nil
			}
			frame, err := sseFrame(res.ev)
			if err != nil {
				r.log.Error("event encoding failed", slog.String("kind", string(res.ev.Kind)))
				return nil
			}
			if _, err := w.Write(frame); err != nil {
				return nil
			}
			heartbeat.Reset(HeartbeatInterval)
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
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
	frame := make([]byte, 0, len(data)+len(ev.Cursor)+48)
	if ev.Cursor != "" {
		frame = append(frame, "id: "...)
		frame = append(frame, ev.Cursor...)
		frame = append(frame, '\n')
	}
	frame = append(frame, "event: "...)
	frame = append(frame, kind...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, data...)
	frame = append(frame, "\n\n"...)
	return frame, nil
}
