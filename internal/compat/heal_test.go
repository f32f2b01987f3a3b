package compat_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// writeInPlace rewrites pod's metadata.json in place (same inode), as a
// careless writer does.
func (f *fixture) writeInPlace(pod string, data []byte) {
	f.t.Helper()
	fh, err := os.OpenFile(filepath.Join(f.pods, pod, "metadata.json"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := fh.Write(data); err != nil {
		f.t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		f.t.Fatal(err)
	}
}

// labelled is metadata.json naming worker_name label in the fixture's workspace.
func (f *fixture) labelled(label string) []byte {
	return []byte(`{"worker_name":` + quote(label) + `,"workspace_root":` + quote(f.root) + `}`)
}

func waitWatching(t *testing.T, s *compat.Source) {
	t.Helper()
	eventually(t, "watches in place", func() bool { return s.Stats().Watching })
}

// TestIndexHealsReplacedStore replaces pods/ (or the data dir behind a
// symlink) under a watching index and checks that the index sees the new
// store, watches it again (a later in-place rewrite shows) and says so.
func TestIndexHealsReplacedStore(t *testing.T) {
	tests := []struct {
		name string
		// symlinked makes the configured data dir a symlink.
		symlinked bool
		// reconcile is the sweep interval (0: the default, 30 s, so only
		// the event about pods/ itself can heal the index in time).
		reconcile time.Duration
		replace   func(t *testing.T, f *fixture, link string)
	}{
		{"mv pods pods.old && mkdir pods", false, 0, func(t *testing.T, f *fixture, _ string) {
			if err := os.Rename(f.pods, f.pods+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(f.pods, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"rm -rf pods && mkdir pods", false, 0, func(t *testing.T, f *fixture, _ string) {
			if err := os.RemoveAll(f.pods); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(f.pods, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"swapped symlinked data dir", true, 500 * time.Millisecond, func(t *testing.T, f *fixture, link string) {
			// No event reaches the index: only its sweep can tell.
			other := filepath.Join(filepath.Dir(f.dataDir), "data-2")
			if err := os.MkdirAll(filepath.Join(other, "pods"), 0o755); err != nil {
				t.Fatal(err)
			}
			tmp := link + ".tmp"
			if err := os.Symlink(other, tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, link); err != nil {
				t.Fatal(err)
			}
			f.dataDir, f.pods = other, filepath.Join(other, "pods")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.pod("old", map[string]any{"worker_name": "old"})
			dataDir := f.dataDir
			if tt.symlinked {
				dataDir = filepath.Join(filepath.Dir(f.dataDir), "data-link")
				if err := os.Symlink(f.dataDir, dataDir); err != nil {
					t.Fatal(err)
				}
			}
			s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: dataDir,
				ReconcileInterval: tt.reconcile})
			waitWatching(t, s)
			if _, err := labelOf(s, "old"); err != nil {
				t.Fatal(err)
			}

			tt.replace(t, f, dataDir)
			f.pod("new", map[string]any{"worker_name": "new"})
			eventually(t, "pod of the new store", func() bool { l, err := labelOf(s, "new"); return err == nil && l == "new" })
			eventually(t, "pod of the old store gone", func() bool {
				_, err := labelOf(s, "old")
				return errors.Is(err, registry.ErrUnknownWorker)
			})
			waitWatching(t, s)
			f.writeInPlace("new", f.labelled("rewritten"))
			eventually(t, "rewrite in the new store", func() bool { l, err := labelOf(s, "new"); return err == nil && l == "rewritten" })
			// The new pods/ is watched, not only swept: a pod added to it
			// shows with no sweep in between (a few tries, in case a sweep
			// happens to fall in between).
			for try := 0; ; try++ {
				sweeps := s.Stats().Sweeps
				pod := fmt.Sprintf("newer-%d", try)
				f.pod(pod, nil)
				eventually(t, "another pod of the new store", func() bool { _, err := labelOf(s, pod); return err == nil })
				if s.Stats().Sweeps == sweeps {
					break
				}
				if try == 5 {
					t.Fatal("a new pod showed only with a sweep, never by its event")
				}
			}
		})
	}
}

// TestIndexDirRenamedOverPod renames a directory over an (empty) pod
// directory and checks that the new directory is watched: its later
// in-place rewrite shows at once, not only at the next sweep.
func TestIndexDirRenamedOverPod(t *testing.T) {
	f := newFixture(t)
	f.podDir("p") // no metadata yet
	s := f.source()
	waitWatching(t, s)
	eventually(t, "empty pod reported", func() bool {
		return slices.Contains(codes(list(t, s).Diagnostics), compat.DiagMetadataUnreadable)
	})

	staged := filepath.Join(f.dataDir, "staged")
	if err := os.MkdirAll(staged, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staged, "metadata.json"), f.labelled("renamed in"), 0o644); err != nil {
		t.Fatal(err)
	}
	// rename(2) itself: os.Rename refuses to replace a directory.
	if err := syscall.Rename(staged, filepath.Join(f.pods, "p")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "renamed-in pod", func() bool { l, err := labelOf(s, "p"); return err == nil && l == "renamed in" })
	f.writeInPlace("p", f.labelled("rewritten"))
	eventually(t, "rewrite of the renamed-in pod", func() bool { l, err := labelOf(s, "p"); return err == nil && l == "rewritten" })
}

// TestIndexRefreshedAt checks that a watching index re-checks the store on
// its own (RefreshedAt moves with nothing changing) and that neither its
// sweeps nor the polls of a missing store publish a new version.
func TestIndexRefreshedAt(t *testing.T) {
	t.Run("watching", func(t *testing.T) {
		f := newFixture(t)
		f.pod("p", nil)
		s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir,
			ReconcileInterval: 20 * time.Millisecond})
		waitWatching(t, s)
		observed := func() time.Time {
			hosts, _, err := s.Hosts(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			return hosts[0].ObservedAt
		}
		v0, r0, o0 := list(t, s).Version, s.Stats().RefreshedAt, observed()
		for i := range 3 {
			eventually(t, "a sweep", func() bool { return s.Stats().RefreshedAt.After(r0) })
			r0 = s.Stats().RefreshedAt
			if v := list(t, s).Version; v != v0 {
				t.Fatalf("sweep %d published version %q (was %q) with nothing changed", i, v, v0)
			}
			// observed_at moves with the content, not with the sweeps (nor
			// the clock): an unchanged host list keeps its ETag.
			if o := observed(); !o.Equal(o0) {
				t.Fatalf("sweep %d moved observed_at to %v (was %v) with nothing changed", i, o, o0)
			}
		}
		f.pod("q", nil)
		eventually(t, "observed_at of a changed store", func() bool { return observed().After(o0) })
	})
	t.Run("missing store, polling", func(t *testing.T) {
		base := t.TempDir()
		s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: base, DataDir: filepath.Join(base, "data"),
			PollInterval: 20 * time.Millisecond})
		// A missing store answers no list; its host's observed_at is the
		// time of the snapshot answered from, so it shows a republish.
		observed := func() time.Time {
			hosts, _, err := s.Hosts(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			return hosts[0].ObservedAt
		}
		o0, r0 := observed(), s.Stats().RefreshedAt
		for i := range 3 {
			eventually(t, "a poll", func() bool { return s.Stats().RefreshedAt.After(r0) })
			r0 = s.Stats().RefreshedAt
			if o := observed(); !o.Equal(o0) {
				t.Fatalf("poll %d republished a store still missing (observed_at %v, was %v)", i, o, o0)
			}
		}
	})
}

// TestIndexSameKeyRewrite rewrites metadata.json in place with the same
// size while its key (inode, size, times) stays the same, as it does when
// the rewrite lands within one timestamp tick of the index's read.
func TestIndexSameKeyRewrite(t *testing.T) {
	// A fixed, sub-second file time: every key the index sees carries it.
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC).UnixNano()
	frozen := func(int64, int64) (int64, int64) { return fixed, fixed }

	t.Run("watching: an event always re-reads", func(t *testing.T) {
		f := newFixture(t)
		f.raw("p", f.labelled("seg-0001"))
		s := startedWithHooks(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir},
			compat.TestHooks{Times: frozen})
		waitWatching(t, s)
		f.writeInPlace("p", f.labelled("seg-0002"))
		eventually(t, "same-size rewrite", func() bool { l, err := labelOf(s, "p"); return err == nil && l == "seg-0002" })
	})

	t.Run("polling: a racy key is not trusted", func(t *testing.T) {
		f := newFixture(t)
		f.raw("p", f.labelled("seg-0001"))
		// Reads happen 1 ms after the file time: within a tick, so racy.
		var late atomic.Bool
		now := func() time.Time {
			if late.Load() {
				return time.Unix(0, fixed).Add(time.Hour)
			}
			return time.Unix(0, fixed).Add(time.Millisecond)
		}
		s := startedWithHooks(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir,
			DisableWatch: true, PollInterval: 10 * time.Millisecond},
			compat.TestHooks{Times: frozen, Now: now})
		f.writeInPlace("p", f.labelled("seg-0002"))
		eventually(t, "same-size rewrite", func() bool { l, err := labelOf(s, "p"); return err == nil && l == "seg-0002" })

		// Re-reading an unchanged racy file publishes nothing new.
		v := list(t, s).Version
		polls := func(n int) {
			for range n {
				r := s.Stats().RefreshedAt
				eventually(t, "a poll", func() bool { return s.Stats().RefreshedAt.After(r) })
			}
		}
		reads := s.Stats().Reads
		polls(3)
		if s.Stats().Reads == reads {
			t.Error("a racy key was trusted: no re-read")
		}
		if got := list(t, s).Version; got != v {
			t.Errorf("re-reading an unchanged file published version %q (was %q)", got, v)
		}

		// Once a read is a tick past the file time, the key is trusted.
		late.Store(true)
		polls(2)
		reads = s.Stats().Reads
		polls(3)
		if got := s.Stats().Reads; got != reads {
			t.Errorf("an unchanged, trusted file was read %d more times", got-reads)
		}
	})
}

// TestIndexHoldsTornWrite checks that a half-written metadata.json keeps the
// previous projection for a while, polling as well as watching.
func TestIndexHoldsTornWrite(t *testing.T) {
	for _, poll := range []bool{false, true} {
		name := map[bool]string{false: "watching", true: "polling"}[poll]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.raw("p", f.labelled("before"))
			s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir,
				DisableWatch: poll, PollInterval: 10 * time.Millisecond})
			if !poll {
				waitWatching(t, s)
			}
			full := f.labelled("after")
			f.writeInPlace("p", full[:len(full)/2])
			eventually(t, "the torn write held", func() bool {
				l, err := labelOf(s, "p")
				if s.Stats().Held == 0 {
					return false
				}
				// Held at (or after) the lookup: the lookup saw the
				// previous projection.
				if err != nil || l != "before" {
					t.Fatalf("held pod answered %q, %v", l, err)
				}
				return true
			})
			eventually(t, "the torn write reported once settled", func() bool {
				return slices.Contains(codes(list(t, s).Diagnostics), compat.DiagMetadataInvalid) && s.Stats().Held == 0
			})
		})
	}
}

// TestIndexRetriesFailedRead makes one read fail as open(2) does when the
// process is out of file descriptors and checks that the pod comes back once
// reads work again, with the file unchanged since the failed read.
func TestIndexRetriesFailedRead(t *testing.T) {
	for _, poll := range []bool{false, true} {
		name := map[bool]string{false: "watching", true: "polling"}[poll]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.raw("p", f.labelled("one"))
			var failing atomic.Bool
			s := startedWithHooks(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir,
				DisableWatch: poll, PollInterval: 10 * time.Millisecond},
				compat.TestHooks{FailRead: func(string) bool { return failing.Load() }})
			if !poll {
				waitWatching(t, s)
			}
			failing.Store(true)
			f.writeInPlace("p", f.labelled("two"))
			eventually(t, "the failed read reported", func() bool {
				return slices.Contains(codes(list(t, s).Diagnostics), compat.DiagMetadataUnreadable)
			})
			if _, err := labelOf(s, "p"); !errors.Is(err, registry.ErrUnknownWorker) {
				t.Fatalf("unreadable pod: %v", err)
			}
			failing.Store(false)
			eventually(t, "the pod read again", func() bool { l, err := labelOf(s, "p"); return err == nil && l == "two" })
			if d := codes(list(t, s).Diagnostics); slices.Contains(d, compat.DiagMetadataUnreadable) {
				t.Errorf("diagnostics after the retry: %v", d)
			}
		})
	}
}

// TestIndexUnchangedReadKeepsVersion checks that an event re-reading a file
// whose projection did not change publishes nothing (the ETag stays).
func TestIndexUnchangedReadKeepsVersion(t *testing.T) {
	f := newFixture(t)
	f.raw("p", f.labelled("same"))
	f.raw("q", f.labelled("q"))
	s := f.source()
	waitWatching(t, s)
	v := list(t, s).Version
	reads := s.Stats().Reads
	f.writeInPlace("p", f.labelled("same"))
	eventually(t, "the rewrite read", func() bool { return s.Stats().Reads > reads })
	// A change after it shows, so the unchanged one was applied before it.
	f.writeInPlace("q", f.labelled("q2"))
	eventually(t, "the second rewrite", func() bool { l, err := labelOf(s, "q"); return err == nil && l == "q2" })
	// Versions count the snapshots published.
	got, err1 := strconv.Atoi(list(t, s).Version)
	was, err2 := strconv.Atoi(v)
	if err1 != nil || err2 != nil || got != was+1 {
		t.Errorf("version %d after one real change, was %d", got, was)
	}
}
