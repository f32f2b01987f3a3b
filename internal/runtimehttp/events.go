package runtimehttp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

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

type nextResult struct {
	ev  workerruntime.Event
	err error
}

// VisitStreamEventsResponse writes the stream until it ends.
func (r eventStreamResponse) VisitStreamEventsResponse(w http.ResponseWriter) error {
	defer r.release()
	defer r.sub.Close()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": ok\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}

	results := make(chan nextResult)
	go func() {
		defer close(results)
		for {
			ev, err := r.sub.Next(ctx)
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

	heartbeat := time.NewTicker(r.heartbeat)
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
				if res.err != nil && !errors.Is(res.err, workerruntime.ErrClosed) && !errors.Is(res.err, workerruntime.ErrLagged) &&
					!errors.Is(res.err, context.Canceled) {
					r.log.Warn("event stream failed", slog.String("reason", string(workerruntime.CodeOf(res.err))))
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
			heartbeat.Reset(r.heartbeat)
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
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
