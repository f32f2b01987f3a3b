package compat_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

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
	if shared := os.Getenv("COMPAT_BENCH_STORES"); shared != "" {
		// A directory of stores kept between runs (cmd/loadbench's
		// -store-dir holds the same ones): 100,000 pods take a while to
		// generate.
		dir = filepath.Join(shared, fmt.Sprintf("pods-%d", n))
	}
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

// BenchmarkIndexMemory is what a started index holds per pod: the live heap
// after Start and a collection, less the heap before it, divided by the pods
// (B/pod), and the highest heap goal the collector set during Start, the
// best in-process stand-in for the peak RSS of the first scan (goal-MiB).
// COMPAT_HEAPPROFILE=file writes a heap profile of the largest store's
// index (go tool pprof -sample_index=inuse_space).
func BenchmarkIndexMemory(b *testing.B) {
	for _, n := range benchSizes {
		dir := benchStore(b, n)
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			var perPod, goal float64
			for b.Loop() {
				runtime.GC()
				before := heapLive()
				peak := newGoalWatch()
				s := compat.New(compat.Config{WorkspaceID: "bench", WorkspaceRoot: benchRoot, DataDir: dir})
				if err := s.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				// The pod watches are added by the index goroutine right
				// after Start: wait for that sweep before measuring.
				for !s.Stats().Watching {
					time.Sleep(time.Millisecond)
				}
				goal = peak.stop()
				runtime.GC()
				perPod = float64(heapLive()-before) / float64(n)
				if path := os.Getenv("COMPAT_HEAPPROFILE"); path != "" && n == benchSizes[len(benchSizes)-1] {
					writeHeapProfile(b, path)
				}
				runtime.KeepAlive(s)
				_ = s.Close()
			}
			b.ReportMetric(perPod, "B/pod")
			b.ReportMetric(goal/(1<<20), "goal-MiB")
		})
	}
}

// heapLive is the heap's bytes in live objects as of the last collection.
func heapLive() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// goalWatch samples the collector's heap goal until stopped and keeps the
// highest.
type goalWatch struct {
	done chan struct{}
	max  chan float64
}

func newGoalWatch() *goalWatch {
	g := &goalWatch{done: make(chan struct{}), max: make(chan float64, 1)}
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
		top := 0.0
		for {
			metrics.Read(sample)
			top = max(top, float64(sample[0].Value.Uint64()))
			select {
			case <-g.done:
				g.max <- top
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return g
}

func (g *goalWatch) stop() float64 {
	close(g.done)
	return <-g.max
}

func writeHeapProfile(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
