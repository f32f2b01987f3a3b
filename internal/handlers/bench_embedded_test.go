package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/workspace-backend/runtime-registry/internal/embedded"
	"github.com/workspace-backend/runtime-registry/internal/embedded/embeddedtest"
	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/procexec"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/sqlitestore"
)

// benchEntries is the transcript length of every generated worker.
const benchEntries = 100

// embeddedStateDir returns a state dir holding workers stopped workers with
// benchEntries transcript entries each, generated once under $TMPDIR and
// reused by later runs (a "complete" file marks a finished one).
func embeddedStateDir(b *testing.B, workers int) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "runtime-registry-bench", fmt.Sprintf("embedded-%dx%d", workers, benchEntries))
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return dir
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "worker-runtime.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	base := time.Now().UTC().Add(-time.Hour)
	ids := make(chan int)
	var wg sync.WaitGroup
	var failed error
	var mu sync.Mutex
	for range 16 { // concurrent writers: the store batches them into one transaction per burst
		wg.Go(func() {
			for i := range ids {
				if err := generateWorker(ctx, store, base, i); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		})
	}
	for i := range workers {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if err := store.Close(); err != nil || failed != nil {
		b.Fatal(err, failed)
	}
	if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d workers x %d entries in %s", workers, benchEntries, time.Since(start).Round(time.Millisecond))
	return dir
}

func generateWorker(ctx context.Context, store *sqlitestore.Store, base time.Time, i int) error {
	uid, err := uuid.NewV7()
	if err != nil {
		return err
	}
	at := base.Add(time.Duration(i) * time.Millisecond)
	w := workerruntime.Worker{
		ID: uid.String(), Profile: "echo", ProfileLabel: "Echo", Label: "bench " + strconv.Itoa(i),
		Intent: workerruntime.Intent{Kind: workerruntime.IntentTask, Objective: "bench"},
		State:  workerruntime.StateStarting, Status: workerruntime.StatusStarting, CreatedAt: at, UpdatedAt: at,
	}
	if err := store.CreateWorker(ctx, w, workerruntime.Idempotency{}); err != nil {
		return err
	}
	entries := make([]workerruntime.TranscriptEntry, benchEntries)
	for k := range entries {
		role := workerruntime.RoleAssistant
		if k%2 == 0 {
			role = workerruntime.RoleUser
		}
		entries[k] = workerruntime.TranscriptEntry{Role: role, Content: fmt.Sprintf("line %d of worker %d: some ordinary conversation text", k, i), At: at}
	}
	if _, err := store.AppendTranscript(ctx, w.ID, entries); err != nil {
		return err
	}
	w.State, w.Status, w.StoppedAt, w.UpdatedAt = workerruntime.StateStopped, workerruntime.StatusExited, at, at
	return store.UpdateWorker(ctx, w)
}

// embeddedBenchServer is the real echo server (body cache off, so every
// answer is built afresh) over an embedded Runtime on a generated store.
func embeddedBenchServer(b *testing.B, stateDir string) http.Handler {
	b.Helper()
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(stateDir, "worker-runtime.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	profiles, err := workerruntime.ParseProfiles([]byte(embeddedtest.Profiles))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := workerruntime.Open(ctx, workerruntime.Options{Store: store, Executor: procexec.New(), Profiles: profiles,
		WorkspaceRoot: b.TempDir(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	src := embedded.New(rt, embedded.Config{WorkspaceID: "bench"})
	b.Cleanup(func() { _ = src.Close(context.Background()) })
	reg, err := registry.New(registry.Options{WorkspaceID: "bench", Auditor: registry.Auditors{}}, src)
	if err != nil {
		b.Fatal(err)
	}
	e, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log, BodyCacheBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkEmbeddedPages measures a page of the worker list and a page of
// one worker's transcript through the whole server, over 10 and over
// 10,000 stopped workers with 100 transcript entries each (the same page:
// 10 workers; 100 entries of a worker in the middle). The store is
// generated once under $TMPDIR/runtime-registry-bench/.
func BenchmarkEmbeddedPages(b *testing.B) {
	for _, workers := range []int{10, 10_000} {
		h := embeddedBenchServer(b, embeddedStateDir(b, workers))
		// The middle worker, reached through the list's own cursors.
		var page gen.WorkerList
		target := embeddedRT + "/workers?limit=" + strconv.Itoa(min(200, workers/2))
		for seen := 0; ; {
			if err := json.Unmarshal(serve(b, h, target).Body.Bytes(), &page); err != nil {
				b.Fatal(err)
			}
			seen += len(page.Items)
			if seen >= workers/2 || page.NextCursor == nil {
				break
			}
			target = embeddedRT + "/workers?limit=" + strconv.Itoa(min(200, workers/2)) + "&cursor=" + *page.NextCursor
		}
		middle := page.Items[len(page.Items)-1].WorkerId
		cursor := ""
		if page.NextCursor != nil {
			cursor = "&cursor=" + *page.NextCursor
		}
		for _, bc := range []struct{ name, target string }{
			{"list", embeddedRT + "/workers?limit=10"},
			{"list-middle", embeddedRT + "/workers?limit=10" + cursor},
			{"transcript", embeddedRT + "/workers/" + middle + "/transcript?limit=100"},
			{"worker", embeddedRT + "/workers/" + middle},
		} {
			b.Run(fmt.Sprintf("workers=%d/%s", workers, bc.name), func(b *testing.B) {
				for b.Loop() {
					serve(b, h, bc.target)
				}
			})
		}
	}
}
