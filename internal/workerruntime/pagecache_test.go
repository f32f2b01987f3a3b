package workerruntime_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/sqlitestore"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/wrtest"
)

// countingStore counts the list reads that reach the real store.
type countingStore struct {
	wr.Store
	lists atomic.Int64
}

func (c *countingStore) ListWorkers(ctx context.Context, after string, limit int) ([]wr.Worker, bool, int64, error) {
	c.lists.Add(1)
	return c.Store.ListWorkers(ctx, after, limit)
}

// sqliteEnv is a Runtime over a real SQLite store on disk (its list reads
// counted) and the fake executor, on the real clock.
func sqliteEnv(t *testing.T) (*env, *countingStore) {
	t.Helper()
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "worker-runtime.db"), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	e := &env{exec: wrtest.NewExecutor()}
	e.rt, err = wr.Open(t.Context(), wr.Options{Store: cs, Executor: e.exec, Profiles: testProfiles(t),
		WorkspaceRoot: t.TempDir(), MaxWorkers: 200, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = e.rt.Close(ctx)
	})
	return e, cs
}

func find(p wr.WorkerPage, id string) (wr.Worker, bool) {
	i := slices.IndexFunc(p.Workers, func(w wr.Worker) bool { return w.ID == id })
	if i < 0 {
		return wr.Worker{}, false
	}
	return p.Workers[i], true
}

// An unchanged list is answered without the store; every kind of write
// makes the next list read the store again and show the write.
func TestListFromMemoryAndEveryWriteInvalidates(t *testing.T) {
	cases := []struct {
		name string
		// write changes something of w (active, with process p) and returns
		// a check of the next page; async writes are waited for.
		write func(t *testing.T, e *env, w wr.Worker, p *wrtest.Process) (check func(wr.WorkerPage) bool, async bool)
	}{
		{"create", func(t *testing.T, e *env, _ wr.Worker, _ *wrtest.Process) (func(wr.WorkerPage) bool, bool) {
			n, err := e.rt.Create(t.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
			if err != nil {
				t.Fatal(err)
			}
			return func(p wr.WorkerPage) bool { _, ok := find(p, n.ID); return ok }, false
		}},
		{"input", func(t *testing.T, e *env, w wr.Worker, _ *wrtest.Process) (func(wr.WorkerPage) bool, bool) {
			before, _ := e.rt.Get(t.Context(), w.ID)
			if _, err := e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: "hi"}); err != nil {
				t.Fatal(err)
			}
			return func(p wr.WorkerPage) bool { got, _ := find(p, w.ID); return got.UpdatedAt.After(before.UpdatedAt) }, false
		}},
		{"stop", func(t *testing.T, e *env, w wr.Worker, _ *wrtest.Process) (func(wr.WorkerPage) bool, bool) {
			if _, err := e.rt.Stop(t.Context(), w.ID, wr.StopForce); err != nil {
				t.Fatal(err)
			}
			return func(p wr.WorkerPage) bool {
				got, _ := find(p, w.ID)
				return got.State == wr.StateStopping || got.State == wr.StateStopped
			}, false
		}},
		{"output", func(t *testing.T, e *env, w wr.Worker, p *wrtest.Process) (func(wr.WorkerPage) bool, bool) {
			before, _ := e.rt.Get(t.Context(), w.ID)
			p.Emit(wr.RoleAssistant, "out")
			return func(p wr.WorkerPage) bool { got, _ := find(p, w.ID); return got.UpdatedAt.After(before.UpdatedAt) }, true
		}},
		{"exit", func(_ *testing.T, _ *env, w wr.Worker, p *wrtest.Process) (func(wr.WorkerPage) bool, bool) {
			p.ExitWith(wr.ExitStatus{Code: 0})
			return func(p wr.WorkerPage) bool { got, _ := find(p, w.ID); return got.Status == wr.StatusExited }, true
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, cs := sqliteEnv(t)
			w, proc := e.create(t, wr.CreateRequest{})
			p1, err := e.rt.List(t.Context(), "", 200)
			if err != nil {
				t.Fatal(err)
			}
			reads := cs.lists.Load()
			p2, err := e.rt.List(t.Context(), "", 200)
			if err != nil {
				t.Fatal(err)
			}
			if cs.lists.Load() != reads || p2.Version != p1.Version || !slices.Equal(p1.Workers, p2.Workers) {
				t.Fatalf("an unchanged list read the store (%d reads, was %d) or changed", cs.lists.Load(), reads)
			}
			check, async := tc.write(t, e, w, proc)
			var p3 wr.WorkerPage
			if async {
				waitFor(t, "the write in the list", func() bool {
					p3, err = e.rt.List(t.Context(), "", 200)
					return err == nil && check(p3)
				})
			} else {
				reads = cs.lists.Load()
				if p3, err = e.rt.List(t.Context(), "", 200); err != nil {
					t.Fatal(err)
				}
				if !check(p3) {
					t.Fatalf("the list after an acknowledged %s does not show it", tc.name)
				}
				if cs.lists.Load() != reads+1 {
					t.Fatalf("%d store reads for the list after the write, want 1", cs.lists.Load()-reads)
				}
			}
			if p3.Version == p1.Version {
				t.Fatal("the Version did not move with the write")
			}
			// Wait for the process's own writes (start, exit) to settle,
			// then the page is answered from memory again.
			waitFor(t, "a cached page", func() bool {
				a, _ := e.rt.List(t.Context(), "", 200)
				reads = cs.lists.Load()
				b, _ := e.rt.List(t.Context(), "", 200)
				return cs.lists.Load() == reads && a.Version == b.Version
			})
		})
	}
}

// Concurrent creates, stops and lists over SQLite: a list never answers a
// page older than a write whose acknowledgement its caller saw before
// asking (run with -race).
func TestListNeverOlderThanAnAcknowledgedWrite(t *testing.T) {
	e, cs := sqliteEnv(t)
	go func() { // the fake processes are not watched here
		for range e.exec.Started() {
		}
	}()
	var (
		mu      sync.Mutex
		created []string
		stopped []string
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := range 60 {
			w, err := e.rt.Create(context.Background(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			mu.Lock()
			created = append(created, w.ID)
			mu.Unlock()
			if i%3 == 2 {
				mu.Lock()
				victim := created[i-1]
				mu.Unlock()
				if _, err := e.rt.Stop(context.Background(), victim, wr.StopForce); err != nil {
					t.Errorf("stop: %v", err)
					return
				}
				mu.Lock()
				stopped = append(stopped, victim)
				mu.Unlock()
			}
		}
	}()
	var wg sync.WaitGroup
	var lists atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				mu.Lock()
				wantIn, wantStopped := slices.Clone(created), slices.Clone(stopped)
				mu.Unlock()
				p, err := e.rt.List(context.Background(), "", 200)
				if err != nil {
					t.Errorf("list: %v", err)
					return
				}
				lists.Add(1)
				for _, id := range wantIn {
					if _, ok := find(p, id); !ok {
						t.Errorf("page %s misses worker %s created before the list", p.Version, id)
						return
					}
				}
				for _, id := range wantStopped {
					if w, _ := find(p, id); w.State != wr.StateStopping && w.State != wr.StateStopped {
						t.Errorf("page %s shows worker %s %s after its stop was acknowledged", p.Version, id, w.State)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d lists, %d store reads", lists.Load(), cs.lists.Load())
}

func TestListAfterCloseFails(t *testing.T) {
	e, _ := sqliteEnv(t)
	e.create(t, wr.CreateRequest{})
	if _, err := e.rt.List(t.Context(), "", 200); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := e.rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := e.rt.List(t.Context(), "", 200)
	code(t, err, wr.CodeRuntimeUnavailable, "")
}
