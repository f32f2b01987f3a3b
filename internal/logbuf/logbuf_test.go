package logbuf_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/logbuf"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	testproc.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.Buffer.Write(p)
}

func TestLinesArriveInOrderAndCloseFlushes(t *testing.T) {
	var out testproc.Buffer
	w := logbuf.New(&out, logbuf.Options{FlushInterval: time.Hour})
	var want bytes.Buffer
	for i := range 1000 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("written %d bytes, want %d in order", len(out.String()), want.Len())
	}
	if w.Dropped() != 0 {
		t.Errorf("dropped %d lines", w.Dropped())
	}
	if _, err := w.Write([]byte("after close\n")); err != nil || w.Dropped() != 1 {
		t.Errorf("a write after Close: err %v, dropped %d, want it dropped", err, w.Dropped())
	}
}

func TestIntervalFlushes(t *testing.T) {
	var out testproc.Buffer
	w := logbuf.New(&out, logbuf.Options{FlushInterval: 5 * time.Millisecond})
	defer func() { _ = w.Close() }()
	_, _ = w.Write([]byte("hello\n"))
	deadline := time.Now().Add(10 * time.Second) // hang guard only
	for out.String() != "hello\n" {
		if time.Now().After(deadline) {
			t.Fatal("the line was never flushed by the interval")
		}
		time.Sleep(time.Millisecond)
	}
}

// A stuck output never blocks a writer: lines beyond the buffer are dropped
// and counted, and everything buffered is written once the output moves.
func TestFullBufferDropsInsteadOfBlocking(t *testing.T) {
	out := &blockingWriter{release: make(chan struct{})}
	w := logbuf.New(out, logbuf.Options{BufferBytes: 64, FlushInterval: time.Millisecond})
	line := []byte("0123456789abcdef\n") // 17 bytes
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_, _ = w.Write(line)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked on a stuck output")
	}
	if w.Dropped() == 0 {
		t.Error("nothing was dropped although the output was stuck")
	}
	close(out.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	written := uint64(len(out.String())) / uint64(len(line))
	if written+w.Dropped() != 100 {
		t.Errorf("written %d + dropped %d lines, want 100", written, w.Dropped())
	}
}
