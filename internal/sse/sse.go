// Package sse writes a stream of events as Server-Sent Events. It holds the
// one writer loop both HTTP servers use (the browser API and the Worker
// Runtime API); each server keeps its own event type, its own event->frame
// encoding and its own limit on open streams.
package sse

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// Stream describes one event stream to write.
type Stream[E any] struct {
	// Next blocks for the next event. An error ends the stream.
	Next func(ctx context.Context) (E, error)
	// Encode turns one event into one complete SSE frame (see Frame).
	Encode func(E) ([]byte, error)
	// Heartbeat is how often an idle stream writes a comment line, so that
	// proxies and browsers see the connection alive. It must be positive.
	Heartbeat time.Duration
	// Shutdown, once closed, ends the stream. Nil means only the client
	// leaving or Next failing ends it.
	Shutdown <-chan struct{}
	// Ended, if set, is told the error that ended Next, unless it is
	// context.Canceled (the client left): the caller decides which errors
	// are the normal end of a stream and which are worth a log line.
	Ended func(error)
	// EncodeFailed, if set, is told the event Encode failed on; the stream
	// then ends.
	EncodeFailed func(E, error)
}

type nextResult[E any] struct {
	ev  E
	err error
}

// Serve writes s to w until the client leaves (ctx ends), the server shuts
// down, Next or Encode fails, or a write fails. It lifts the server's write
// deadline for this one response, writes the headers and a `: ok` comment at
// once (so the client sees the headers before the first event), flushes
// every event, and writes a heartbeat comment when the stream is idle. A
// failed write means the client is gone, so Serve reports nothing for it;
// the caller still owns (and closes) whatever Next reads from.
func Serve[E any](ctx context.Context, w http.ResponseWriter, s Stream[E]) {
	ctx, cancel := context.WithCancel(ctx)
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
	if _, err := io.WriteString(w, ": ok\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}

	// Next blocks, so it runs in its own goroutine; the loop below also
	// watches the heartbeat, the client and the server's shutdown.
	results := make(chan nextResult[E])
	go func() {
		defer close(results)
		for {
			ev, err := s.Next(ctx)
			select {
			case results <- nextResult[E]{ev, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	heartbeat := time.NewTicker(s.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Shutdown:
			return
		case <-heartbeat.C:
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case res, ok := <-results:
			if !ok || res.err != nil {
				if res.err != nil && !errors.Is(res.err, context.Canceled) && s.Ended != nil {
					s.Ended(res.err)
				}
				return
			}
			frame, err := s.Encode(res.ev)
			if err != nil {
				if s.EncodeFailed != nil {
					s.EncodeFailed(res.ev, err)
				}
				return
			}
			if _, err := w.Write(frame); err != nil {
				return
			}
			heartbeat.Reset(s.Heartbeat)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// Frame is one SSE frame: an `id:` line when id is set, the `event:` line
// and one `data:` line. data must hold no newline (encoded JSON never does).
func Frame(id, event string, data []byte) []byte {
	frame := make([]byte, 0, len(data)+len(id)+len(event)+24)
	if id != "" {
		frame = append(frame, "id: "...)
		frame = append(frame, id...)
		frame = append(frame, '\n')
	}
	frame = append(frame, "event: "...)
	frame = append(frame, event...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, data...)
	frame = append(frame, "\n\n"...)
	return frame
}
