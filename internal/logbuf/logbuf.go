// Package logbuf is a bounded, asynchronous log writer: request handlers hand
// their encoded log lines to it and go on, and one goroutine writes them out
// in batches. A request never waits for stderr: when the buffer is full a
// line is dropped and counted instead. Lines are flushed at least every
// FlushInterval and on Close.
package logbuf

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of New.
const (
	DefaultBufferBytes   = 1 << 20
	DefaultFlushInterval = 100 * time.Millisecond
)

// Writer buffers whole writes (each one log line from a slog handler) and
// writes them to the underlying writer from its own goroutine. It is safe
// for concurrent use.
type Writer struct {
	out      io.Writer
	max      int
	interval time.Duration

	mu      sync.Mutex
	pending []byte
	closed  bool

	wake    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
	written atomic.Uint64
}

// Options configures a Writer; zero values take the defaults.
type Options struct {
	// BufferBytes bounds the lines waiting to be written.
	BufferBytes int
	// FlushInterval is the longest a line waits before it is written.
	FlushInterval time.Duration
}

// New starts a Writer in front of out.
func New(out io.Writer, opts Options) *Writer {
	if opts.BufferBytes <= 0 {
		opts.BufferBytes = DefaultBufferBytes
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	w := &Writer{out: out, max: opts.BufferBytes, interval: opts.FlushInterval,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop()
	return w
}

// Write queues p (one log line) and returns at once. A line that does not
// fit in the buffer is dropped and counted; Write never fails, so that a
// logger never turns a full buffer into a failed request.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed || len(w.pending)+len(p) > w.max {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	w.pending = append(w.pending, p...)
	// Wake the writer early when half the buffer is in use, so that a burst
	// does not have to wait for the interval (and fill the buffer).
	early := len(w.pending) > w.max/2
	w.mu.Unlock()
	if early {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped is the number of lines dropped because the buffer was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Written is the number of bytes written to the underlying writer.
func (w *Writer) Written() uint64 { return w.written.Load() }

func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var spare []byte
	for {
		select {
		case <-t.C:
		case <-w.wake:
		}
		w.mu.Lock()
		batch := w.pending
		w.pending = spare[:0]
		closed := w.closed
		w.mu.Unlock()
		if len(batch) > 0 {
			n, _ := w.out.Write(batch)
			w.written.Add(uint64(n))
		}
		spare = batch
		if closed {
			return
		}
	}
}

// Close writes what is buffered and stops the Writer; later writes are
// dropped. It waits for the final write.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
	return nil
}
