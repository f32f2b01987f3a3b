package compat_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// freshnessDeadline is how long a test waits for a change to show. The index
// promises well under 1 s; the deadline is generous so that a loaded CI
// machine does not fail the test, and the test returns as soon as the change
// shows.
const freshnessDeadline = 5 * time.Second

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(freshnessDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within %s", what, freshnessDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func labelOf(s *compat.Source, pod string) (string, error) {
	w, err := s.Worker(context.Background(), compat.WorkerIDFor(pod))
	return w.Label, err
}

func listedIDs(t *testing.T, s *compat.Source) []registry.WorkerID {
	t.Helper()
	var ids []registry.WorkerID
	for _, w := range list(t, s).Workers {
		ids = append(ids, w.ID)
	}
	return ids
}

// TestIndexFreshness adds, rewrites, renames over and removes pods of a
// started Source, watching and polling, and checks that each change shows.
func TestIndexFreshness(t *testing.T) {
	for _, mode := range []struct {
		name string
		cfg  func(f *fixture) compat.Config
	}{
		{"watching", func(f *fixture) compat.Config {
			return compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir}
		}},
		{"polling", func(f *fixture) compat.Config {
			return compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir,
				DisableWatch: true, PollInterval: 20 * time.Millisecond}
		}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			f := newFixture(t)
			f.pod("first", map[string]any{"worker_name": "first"})
			s := started(t, mode.cfg(f))
			if st := s.Stats(); !st.Indexed || st.Workers != 1 || st.Pods != 1 {
				t.Errorf("stats = %+v", st)
			}
			// The pod directories' watches are added right after start.
			if mode.name == "watching" {
				eventually(t, "watches in place", func() bool { return s.Stats().Watching })
			} else if s.Stats().Watching {
				t.Error("a polling index reports watching")
			}
			page0 := list(t, s)
			if page0.Version == "" {
				t.Error("an indexed page has no version")
			}

			// Added.
			f.pod("second", map[string]any{"worker_name": "second"})
			eventually(t, "added pod", func() bool { l, err := labelOf(s, "second"); return err == nil && l == "second" })
			if page := list(t, s); page.Version == page0.Version || len(page.Workers) != 2 {
				t.Errorf("after add: %d workers, version %q (was %q)", len(page.Workers), page.Version, page0.Version)
			}

			// Rewritten in place.
			f.pod("first", map[string]any{"worker_name": "first", "active": map[string]any{"session_id": "s", "segment_id": "g"}})
			eventually(t, "rewritten pod", func() bool {
				w, err := s.Worker(context.Background(), compat.WorkerIDFor("first"))
				return err == nil && w.Status == "active:segment"
			})

			// Replaced by rename (how careful writers write).
			tmp := filepath.Join(f.pods, "first", "metadata.json.tmp")
			if err := os.WriteFile(tmp, []byte(`{"worker_name":"first","workspace_root":`+quote(f.root)+`}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(f.pods, "first", "metadata.json")); err != nil {
				t.Fatal(err)
			}
			eventually(t, "renamed-over pod", func() bool {
				w, err := s.Worker(context.Background(), compat.WorkerIDFor("first"))
				return err == nil && w.Status == "metadata_only"
			})

			// Moved to another workspace.
			f.pod("second", map[string]any{"workspace_root": "/elsewhere"})
			eventually(t, "pod of another workspace", func() bool {
				_, err := labelOf(s, "second")
				return errors.Is(err, registry.ErrWorkerNotVisible)
			})

			// Removed, then made again under the same name.
			if err := os.RemoveAll(filepath.Join(f.pods, "second")); err != nil {
				t.Fatal(err)
			}
			eventually(t, "removed pod", func() bool { _, err := labelOf(s, "second"); return errors.Is(err, registry.ErrUnknownWorker) })
			f.pod("second", map[string]any{"worker_name": "again"})
			eventually(t, "re-made pod", func() bool { l, err := labelOf(s, "second"); return err == nil && l == "again" })
			// The re-made directory is watched too: a later rewrite shows.
			f.pod("second", map[string]any{"worker_name": "again and again"})
			eventually(t, "rewrite of the re-made pod", func() bool {
				l, err := labelOf(s, "second")
				return err == nil && l == "again and again"
			})
			if ids := listedIDs(t, s); len(ids) != 2 {
				t.Errorf("listed %v, want 2 workers", ids)
			}
		})
	}
}

// TestIndexStoreAppearsLater starts over a missing pods/ and checks that the
// store is picked up once it exists.
func TestIndexStoreAppearsLater(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	dataDir := filepath.Join(base, "data")
	s := started(t, compat.Config{WorkspaceID: "w", WorkspaceRoot: root, DataDir: dataDir, PollInterval: 20 * time.Millisecond})
	if _, err := labelOf(s, "p"); !errors.Is(err, registry.ErrRuntimeUnavailable) {
		t.Fatalf("missing store: %v", err)
	}
	f := &fixture{t: t, root: root, dataDir: dataDir, pods: filepath.Join(dataDir, "pods")}
	f.pod("p", map[string]any{"worker_name": "late"})
	eventually(t, "store made after start", func() bool { l, err := labelOf(s, "p"); return err == nil && l == "late" })
	sum, _ := s.Summary(context.Background())
	if sum.Status != registry.Available {
		t.Errorf("status %s, want available", sum.Status)
	}
}

// TestIndexTornWrite writes metadata.json the way a careless writer does
// (truncate, then write in pieces) and checks every answer in between: the
// previous projection or not listed with a diagnostic, never another Worker.
func TestIndexTornWrite(t *testing.T) {
	f := newFixture(t)
	f.pod("p", map[string]any{"worker_name": "before"})
	s := f.source()
	id := compat.WorkerIDFor("p")

	full := []byte(`{"worker_name":"after","workspace_root":` + quote(f.root) + `}`)
	path := filepath.Join(f.pods, "p", "metadata.json")
	check := func(stage string) {
		t.Helper()
		page := list(t, s)
		w, err := s.Worker(context.Background(), id)
		switch {
		case err == nil && (w.Label == "before" || w.Label == "after"):
			if !slices.ContainsFunc(page.Workers, func(x registry.Worker) bool { return x.ID == id }) {
				// The lookup and the list come from two snapshots; a list
				// without the worker must say why.
				if !slices.Contains(codes(page.Diagnostics), compat.DiagMetadataInvalid) {
					t.Errorf("%s: worker missing from the list without a diagnostic: %+v", stage, page)
				}
			}
		case errors.Is(err, registry.ErrUnknownWorker):
			if slices.ContainsFunc(page.Workers, func(x registry.Worker) bool { return x.ID == id && x.Label != "before" && x.Label != "after" }) {
				t.Errorf("%s: list shows a wrong worker", stage)
			}
		default:
			t.Errorf("%s: lookup = %+v, %v; want the previous or the new projection, or unknown_worker", stage, w, err)
		}
	}

	// A truncated file stays truncated: first the previous projection is
	// kept, then (after the settle time) the pod is reported invalid.
	if err := os.WriteFile(path, full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	check("truncated")
	eventually(t, "invalid diagnostic for a file that stays truncated", func() bool {
		check("truncated, settling")
		return slices.Contains(codes(list(t, s).Diagnostics), compat.DiagMetadataInvalid)
	})
	if _, err := s.Worker(context.Background(), id); !errors.Is(err, registry.ErrUnknownWorker) {
		t.Errorf("settled invalid pod: %v, want unknown_worker", err)
	}

	// Written in pieces: every answer in between is one of the allowed ones.
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(full); i += 7 {
		if _, err := fh.Write(full[i:min(i+7, len(full))]); err != nil {
			t.Fatal(err)
		}
		check("piece")
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "completed file", func() bool {
		check("completed")
		l, err := labelOf(s, "p")
		return err == nil && l == "after"
	})
}

// TestIndexKeepsProjectionWhileRewritten checks that a pod being rewritten
// keeps its previous projection rather than dropping out of the list.
func TestIndexKeepsProjectionWhileRewritten(t *testing.T) {
	f := newFixture(t)
	f.pod("p", map[string]any{"worker_name": "before"})
	s := f.source()
	path := filepath.Join(f.pods, "p", "metadata.json")
	if err := os.WriteFile(path, []byte(`{"worker_name":"bef`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The truncation is held back for a while: as long as the label is
	// "before", the pod must still be listed.
	deadline := time.Now().Add(freshnessDeadline)
	for time.Now().Before(deadline) {
		l, err := labelOf(s, "p")
		if err != nil {
			break // settled: reported invalid
		}
		if l != "before" {
			t.Fatalf("label %q while the file is truncated", l)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := labelOf(s, "p"); !errors.Is(err, registry.ErrUnknownWorker) {
		t.Fatalf("after settling: %v, want unknown_worker", err)
	}
}

// TestIndexCloseFallsBackToScanning checks the lifecycle: Start twice fails,
// Close stops the index and the Source still answers (by scanning).
func TestIndexCloseFallsBackToScanning(t *testing.T) {
	f := newFixture(t)
	f.pod("p", nil)
	s := compat.New(compat.Config{WorkspaceID: "w", WorkspaceRoot: f.root, DataDir: f.dataDir})
	if s.Stats().Indexed {
		t.Error("an unstarted source reports an index")
	}
	if page := list(t, s); page.Version != "" {
		t.Errorf("a scanned page carries version %q", page.Version)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.pod("q", nil)
	if ids := listedIDs(t, s); len(ids) != 2 {
		t.Errorf("after Close: %v", ids)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestIndexReadsOnlyWhatChanged checks that lists and lookups read nothing
// and that a change re-reads only the pod it concerns.
func TestIndexReadsOnlyWhatChanged(t *testing.T) {
	const pods = 20
	f := newFixture(t)
	for i := range pods {
		f.pod(fmt.Sprintf("p%02d", i), nil)
	}
	// Reads are timed an hour late: the files just written are not racy
	// (within a timestamp tick of the read), which would read them twice.
	s := startedWithHooks(t, compat.Config{WorkspaceID: "my-workspace", WorkspaceRoot: f.root, DataDir: f.dataDir},
		compat.TestHooks{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	eventually(t, "watches in place", func() bool { return s.Stats().Watching })
	if r := s.Stats().Reads; r != pods {
		t.Fatalf("reads after start = %d, want %d (the sweep after adding the watches re-reads nothing unchanged)", r, pods)
	}
	for range 50 {
		list(t, s)
		if _, err := labelOf(s, "p07"); err != nil {
			t.Fatal(err)
		}
	}
	if r := s.Stats().Reads; r != pods {
		t.Errorf("reads after 50 lists and lookups = %d, want %d", r, pods)
	}
	f.pod("p07", map[string]any{"worker_name": "renamed"})
	eventually(t, "rewrite", func() bool { l, err := labelOf(s, "p07"); return err == nil && l == "renamed" })
	// One read per event batch of the rewritten pod (a truncate and a write
	// may land in separate batches), never a read of the other pods.
	if extra := s.Stats().Reads - pods; extra < 1 || extra > 4 {
		t.Errorf("reads for one rewrite = %d, want 1 to 4", extra)
	}
}

// startedWithHooks is started with test hooks.
func startedWithHooks(t testing.TB, cfg compat.Config, h compat.TestHooks) *compat.Source {
	t.Helper()
	s := compat.NewWithHooks(cfg, h)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
