package procexec

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// TestOutputKeptForASlowReader leaves a finished process's output unread
// for longer than a read may wait after the exit, with more of it still in
// the pipe than the reader's buffer holds: all of it is read all the same
// (the wait is per read, not from the exit), so a Runtime slowed by its
// store loses no line.
func TestOutputKeptForASlowReader(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAll(r, w) })
	const n = 40_000 // about 230 KB: more than the reader's buffer and any pipe hold
	var out strings.Builder
	for i := 1; i <= n; i++ {
		out.WriteString(strconv.Itoa(i) + "\n")
	}
	go func() { // the process: it writes everything, then its end closes the pipe
		_, _ = w.WriteString(out.String())
		_ = w.Close()
	}()
	p := &process{lines: make(chan wr.OutputLine)} // unbuffered: the reader waits for each send
	readDone := make(chan struct{})
	go func() { defer close(readDone); p.read(r, wr.RoleAssistant) }()
	// The process ends now, as Start's waiter records it.
	p.exitedAt.Store(time.Now().UnixNano())
	_ = r.SetReadDeadline(time.Now().Add(drainWait))
	time.Sleep(drainWait + time.Second) // the Runtime is slow to take the lines

	got := 0
	for got < n {
		select {
		case l := <-p.lines:
			got++
			if l.Content != strconv.Itoa(got) {
				t.Fatalf("line %d is %q", got, l.Content)
			}
		case <-readDone:
			t.Fatalf("the reader stopped after %d of %d lines", got, n)
		case <-time.After(time.Minute): // a hang guard only
			t.Fatalf("no line after %d", got)
		}
	}
	select {
	case <-readDone:
	case <-time.After(time.Minute):
		t.Fatal("the reader did not end at the pipe's end")
	}
}
