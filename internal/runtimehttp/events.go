package runtimehttp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/sse"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// DefaultMaxStreams bounds the event streams open at once.
const DefaultMaxStreams = 64

// DefaultHeartbeat is how often an idle stream writes a comment line.
const DefaultHeartbeat = 15 * time.Second

// eventStreamResponse writes a Subscription as Server-Sent Events. It is
// ours rather than the generated io.Reader response so that it can lift the
// server's write deadline, write `: ok` at once, flush every event, send
// heartbeats, and stop when the client leaves or the server shuts down.
type eventStreamResponse struct {
	ctx       context.Context
	sub       workerruntime.Subscription
	release   func()
	shutdown  <-chan struct{}
	heartbeat time.Duration
	log       *slog.Logger
}

// VisitStreamEventsResponse writes the stream until it ends.
func (r eventStreamResponse) VisitStreamEventsResponse(w http.ResponseWriter) error {
	defer r.release()
	defer r.sub.Close()
	sse.Serve(r.ctx, w, sse.Stream[workerruntime.Event]{
		Next:      r.sub.Next,
		Encode:    sseFrame,
		Heartbeat: r.heartbeat,
		Shutdown:  r.shutdown,
		Ended: func(err error) {
			if !errors.Is(err, workerruntime.ErrClosed) && !errors.Is(err, workerruntime.ErrLagged) {
				r.log.Warn("event stream failed", slog.String("reason", string(workerruntime.CodeOf(err))))
			}
		},
		EncodeFailed: func(ev workerruntime.Event, _ error) {
			r.log.Error("event encoding failed", slog.String("kind", string(ev.Kind)))
		},
	})
	return nil
}

// streamLimiter counts open streams against a bound.
type streamLimiter struct{ slots chan struct{} }

func (l *streamLimiter) acquire() (func(), error) {
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, nil
	default:
		return nil, errTooManyStreams
	}
}
