package contract_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/contract"
)

func TestConsoleBuildIsReproducible(t *testing.T) {
	requireTools(t)
	t.Parallel()
	if err := repo(t).ConsoleDrift(t.Context(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// A changed, a missing and a stale extra file in the committed build are each
// reported by name.
func TestConsoleDriftCatchesDifferences(t *testing.T) {
	t.Parallel()
	dist := filepath.Join(repoRoot(t), contract.ConsoleDir, "dist")
	entries, err := os.ReadDir(dist)
	if err != nil {
		t.Fatal(err)
	}
	copyDist := func(t *testing.T) string {
		dir := t.TempDir()
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dist, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	built := copyDist(t)
	if err := contract.CompareDirs(copyDist(t), built); err != nil {
		t.Fatalf("identical builds differ: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(t *testing.T, dir string)
		wants string
	}{
		{"edited", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<!doctype html>"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "index.html differs"},
		{"missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "index.html")); err != nil {
				t.Fatal(err)
			}
		}, "lacks index.html"},
		{"stale", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "app-000000000000.js"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "app-000000000000.js is not part of the current build"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			committed := copyDist(t)
			tc.edit(t, committed)
			err := contract.CompareDirs(committed, built)
			if err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wants)
			}
		})
	}
}
