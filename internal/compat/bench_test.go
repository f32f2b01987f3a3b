package compat_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/benchstore"
	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// benchRoot is the workspace root of every generated store.
const benchRoot = "/srv/workspaces/bench"

// benchSizes are the store sizes the benchmarks run at.
var benchSizes = []int{1_000, 10_000, 100_000}

var (
	storesMu  sync.Mutex
	storesDir string
	stores    = map[int]string{}
)

// benchStore returns the data dir of a generated store of n pods, generating
// it once per run (100,000 pods take a while).
func benchStore(b *testing.B, n int) string {
	b.Helper()
	storesMu.Lock()
	defer storesMu.Unlock()
	if dir, ok := stores[n]; ok {
		return dir
	}
	if storesDir == "" {
		d, err := os.MkdirTemp("", "compat-bench-")
		if err != nil {
			b.Fatal(err)
		}
		storesDir = d
	}
	dir := filepath.Join(storesDir, fmt.Sprint(n))
	if err := benchstore.Generate(dir, n, benchRoot); err != nil {
		b.Fatal(err)
	}
	stores[n] = dir
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if storesDir != "" {
		_ = os.RemoveAll(storesDir)
	}
	os.Exit(code)
}

func benchSource(b *testing.B, n int, start bool) *compat.Source {
	b.Helper()
	s := compat.New(compat.Config{WorkspaceID: "bench", WorkspaceRoot: benchRoot, DataDir: benchStore(b, n)})
	if start {
		if err := s.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
	}
	return s
}

// BenchmarkList is one 200-worker page from the index: from the start and
// from a cursor in the middle.
func BenchmarkList(b *testing.B) {
	for _, n := range benchSizes {
		s := benchSource(b, n, true)
		mid := compat.WorkerIDFor(benchstore.PodName(n / 2))
		for _, q := range []struct {
			name  string
			after registry.WorkerID
		}{{"first", ""}, {"middle", mid}} {
			b.Run(fmt.Sprintf("pods=%d/%s", n, q.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					page, err := s.Workers(context.Background(), registry.WorkerQuery{After: q.after, Limit: 200})
					if err != nil || len(page.Workers) != 200 {
						b.Fatalf("page of %d: %v", len(page.Workers), err)
					}
				}
			})
		}
	}
}

// BenchmarkLookup is one Worker by id from the index.
func BenchmarkLookup(b *testing.B) {
	for _, n := range benchSizes {
		s := benchSource(b, n, true)
		ids := make([]registry.WorkerID, 1024)
		for i := range ids {
			ids[i] = compat.WorkerIDFor(benchstore.PodName(i * 7919 % n))
		}
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.Worker(context.Background(), ids[i%len(ids)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkUnindexed is the v0 behaviour (a scan per call) for comparison:
// one page, and one lookup, of an unstarted Source.
func BenchmarkUnindexed(b *testing.B) {
	for _, n := range benchSizes[:2] {
		s := benchSource(b, n, false)
		id := compat.WorkerIDFor(benchstore.PodName(n / 2))
		b.Run(fmt.Sprintf("pods=%d/list", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Workers(context.Background(), registry.WorkerQuery{Limit: 200}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("pods=%d/lookup", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Worker(context.Background(), id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStart is a cold start: the first scan with every watch, and Close.
func BenchmarkStart(b *testing.B) {
	for _, n := range benchSizes {
		dir := benchStore(b, n)
		for _, watch := range []bool{true, false} {
			b.Run(fmt.Sprintf("pods=%d/watch=%v", n, watch), func(b *testing.B) {
				for b.Loop() {
					s := compat.New(compat.Config{WorkspaceID: "bench", WorkspaceRoot: benchRoot, DataDir: dir, DisableWatch: !watch})
					if err := s.Start(context.Background()); err != nil {
						b.Fatal(err)
					}
					if st := s.Stats(); st.Workers != n {
						b.Fatalf("indexed %d workers, want %d", st.Workers, n)
					}
					_ = s.Close()
				}
			})
		}
	}
}
