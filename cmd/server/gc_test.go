package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
)

// TestAfterStartUp checks when the start-up collector target gives way to
// the steady one: after the index's start-up sweeps, at once for a source
// that does not index, when the run ends, and never without a setter.
func TestAfterStartUp(t *testing.T) {
	dir := t.TempDir()
	root, dataDir := filepath.Join(dir, "ws"), filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(dataDir, "pods", "alpha"), 0o755); err != nil {
		t.Fatal(err)
	}
	started := func(t *testing.T) *compat.Source {
		s := compat.New(compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: dataDir})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	tests := []struct {
		name   string
		source func(t *testing.T) *compat.Source
		cancel bool
		// wantSweeps is the least number of sweeps done when steady runs.
		wantSweeps uint64
	}{
		{"after the start-up sweeps", started, false, 2},
		{"a source that does not index", func(*testing.T) *compat.Source {
			return compat.New(compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: dataDir})
		}, false, 0},
		{"the run ends first", started, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.source(t)
			ctx, cancel := context.WithCancel(t.Context())
			if tc.cancel {
				cancel()
			} else {
				defer cancel()
			}
			calls := make(chan uint64, 2)
			done := make(chan struct{})
			go func() {
				defer close(done)
				afterStartUp(ctx, src, func() { calls <- src.Stats().Sweeps })
			}()
			select {
			case <-done:
			case <-time.After(time.Minute): // a hang guard only
				t.Fatal("afterStartUp did not return")
			}
			if len(calls) != 1 {
				t.Fatalf("steady called %d times, want once", len(calls))
			}
			if sweeps := <-calls; sweeps < tc.wantSweeps {
				t.Errorf("steady called after %d sweeps, want at least %d", sweeps, tc.wantSweeps)
			}
		})
	}
	afterStartUp(t.Context(), compat.New(compat.Config{}), nil) // no setter: returns, calls nothing
}
