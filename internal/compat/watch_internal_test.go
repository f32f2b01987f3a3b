//go:build linux

package compat

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// TestWatcher drives the index's own inotify watcher through what the index
// relies on: events of pods/ and of a watched pod directory arrive with the
// full path and fsnotify's Op, a removed pod directory's watch is dropped,
// a symlink is never watched as a pod, and close ends the reader and
// closes both channels.
func TestWatcher(t *testing.T) {
	pods := t.TempDir()
	w, err := newWatcher(pods, 64)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = w.close()
		}
	})
	if err := w.addPods(); err != nil {
		t.Fatal(err)
	}
	pod := filepath.Join(pods, "pod-a")
	if err := os.Mkdir(pod, 0o755); err != nil {
		t.Fatal(err)
	}
	next := func(want string, op fsnotify.Op) {
		t.Helper()
		deadline := time.After(10 * time.Second) // a hang guard only
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					t.Fatalf("events closed while waiting for %s %s", op, want)
				}
				if ev.Name == want && ev.Op.Has(op) {
					return
				}
			case err := <-w.Errors:
				t.Fatalf("watcher error: %v", err)
			case <-deadline:
				t.Fatalf("no %s event for %s", op, want)
			}
		}
	}
	next(pod, fsnotify.Create)

	w.reserve(4)
	if err := w.addPod("pod-a"); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(pod, metadataFileName)
	if err := os.WriteFile(meta, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	next(meta, fsnotify.Create)
	next(meta, fsnotify.Write)
	if err := os.Chmod(meta, 0o600); err != nil {
		t.Fatal(err)
	}
	next(meta, fsnotify.Chmod)
	renamed := filepath.Join(pod, "renamed")
	if err := os.Rename(meta, renamed); err != nil {
		t.Fatal(err)
	}
	next(meta, fsnotify.Rename)

	// A symlink to a directory is refused as a pod (IN_DONT_FOLLOW|IN_ONLYDIR).
	if err := os.Symlink(pod, filepath.Join(pods, "link")); err != nil {
		t.Fatal(err)
	}
	if err := w.addPod("link"); err == nil {
		t.Error("a symlinked pod directory was watched")
	}

	if err := os.RemoveAll(pod); err != nil {
		t.Fatal(err)
	}
	next(pod, fsnotify.Remove)
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.pods)
		w.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the removed pod's watch is still held (%d)", n)
		}
		// Drain what the removal reported, so the reader gets to IN_IGNORED.
		select {
		case <-w.Events:
		case <-time.After(10 * time.Millisecond):
		}
	}

	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	select {
	case <-w.finished:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end")
	}
	for range w.Events {
	}
	if _, ok := <-w.Errors; ok {
		t.Error("errors channel still open")
	}
}
