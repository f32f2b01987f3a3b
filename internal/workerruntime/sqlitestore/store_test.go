package sqlitestore_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/sqlitestore"
)

const childEnv = "SQLITESTORE_TEST_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func open(t *testing.T, path string, opts sqlitestore.Options) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func worker(id string, st wr.State, status string) wr.Worker {
	return wr.Worker{ID: id, Profile: "echo", ProfileLabel: "Echo", Label: "l", Intent: wr.Intent{Kind: wr.IntentTask, Purpose: "p"},
		State: st, Status: status, CreatedAt: t0, UpdatedAt: t0}
}

func schemaVersion(t *testing.T, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var v int64
	if err := db.QueryRow(`SELECT MAX(version_id) FROM goose_db_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrationsFromEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	s := open(t, path, sqlitestore.Options{})
	id := s.InstanceID()
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("instance id %q: %v", id, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, path); v != 2 {
		t.Fatalf("schema version %d, want 2", v)
	}
	if again := open(t, path, sqlitestore.Options{}); again.InstanceID() != id {
		t.Fatal("instance id changed across opens")
	}
}

// TestMigrationFromVersion1 opens a database made by the previous schema
// (migration 1 only) holding data, and checks it is upgraded and readable.
func TestMigrationFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sqlitestore.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO meta (key, value) VALUES ('instance_id', '11111111-2222-4333-8444-555555555555')`,
		`INSERT INTO workers (id, profile, profile_label, label, intent_kind, intent_purpose, intent_objective, intent_role, state, status, created_at, updated_at, first_seq, last_seq)
		 VALUES ('w1', 'echo', 'Echo', '', 'task', '', '', '', 'active', 'active:running', 1, 1, 1, 1)`,
		`INSERT INTO transcript (worker_id, seq, role, content, at) VALUES ('w1', 1, 'user', 'hi', 1)`,
		`INSERT INTO events (seq, kind, worker_id, payload) VALUES (1, 'transcript_appended', 'w1', '{"sequence":1,"role":"user","content":"hi","at":1}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = db.Close()
	if v := schemaVersion(t, path); v != 1 {
		t.Fatalf("fixture at version %d", v)
	}
	s := open(t, path, sqlitestore.Options{})
	if v := schemaVersion(t, path); v != 2 {
		t.Fatalf("schema version %d after open, want 2", v)
	}
	if s.InstanceID() != "11111111-2222-4333-8444-555555555555" {
		t.Fatalf("instance id %q", s.InstanceID())
	}
	pg, err := s.Transcript(t.Context(), "w1", 0, 10, 1<<20)
	if err != nil || len(pg.Items) != 1 || pg.Items[0].Content != "hi" {
		t.Fatalf("transcript after upgrade: %+v %v", pg, err)
	}
	evs, err := s.EventsAfter(t.Context(), 0, 10, "w1", 10)
	if err != nil || len(evs) != 1 || evs[0].Event.Entry.Content != "hi" {
		t.Fatalf("events after upgrade: %+v %v", evs, err)
	}
	// The next event continues the cursor.
	out, err := s.AppendTranscript(t.Context(), "w1", []wr.TranscriptEntry{{Role: wr.RoleAssistant, Content: "x", At: t0}})
	if err != nil || out[0].Sequence != 2 {
		t.Fatalf("append after upgrade: %+v %v", out, err)
	}
	if last, _ := s.LastEventSeq(t.Context()); last != 2 {
		t.Fatalf("last event seq %d, want 2", last)
	}
}

func TestWritesReadsAndHook(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "w.db"), sqlitestore.Options{})
	var mu sync.Mutex
	var hooked []int64
	s.SetCommitHook(func(evs []wr.StoredEvent) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			hooked = append(hooked, e.Seq)
		}
	})
	ctx := t.Context()
	w := worker("a", wr.StateStarting, wr.StatusStarting)
	if err := s.CreateWorker(ctx, w, wr.Idempotency{Key: "k", Fingerprint: "fp", At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWorker(ctx, w, wr.Idempotency{}); err == nil {
		t.Fatal("duplicate id accepted")
	}
	id, fp, found, err := s.LookupIdempotency(ctx, "k", t0.Add(-time.Hour))
	if err != nil || !found || id != "a" || fp != "fp" {
		t.Fatalf("idempotency: %s %s %v %v", id, fp, found, err)
	}
	if _, _, found, _ := s.LookupIdempotency(ctx, "k", t0.Add(time.Hour)); found {
		t.Fatal("an expired key was found")
	}
	w.State, w.Status, w.UpdatedAt = wr.StateActive, wr.StatusRunning, t0.Add(time.Second)
	if err := s.UpdateWorker(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateWorker(ctx, worker("nope", wr.StateActive, "")); err == nil {
		t.Fatal("update of an unknown worker")
	}
	got, err := s.GetWorker(ctx, "a")
	if err != nil || got.Status != wr.StatusRunning || !got.UpdatedAt.Equal(t0.Add(time.Second)) || got.Intent.Purpose != "p" || !got.CreatedAt.Equal(t0) {
		t.Fatalf("GetWorker: %+v %v", got, err)
	}
	if _, err := s.GetWorker(ctx, "nope"); !errors.Is(err, wr.ErrStoreNotFound) {
		t.Fatalf("unknown: %v", err)
	}

	// Many concurrent appends: sequences are unique and contiguous, and a
	// failing request sharing their transactions fails alone.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if _, err := s.AppendTranscript(ctx, "nope", []wr.TranscriptEntry{{Role: wr.RoleAssistant, Content: "x", At: t0}}); !errors.Is(err, wr.ErrStoreNotFound) {
				t.Errorf("append to an unknown worker: %v", err)
			}
		}
	}()
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if _, err := s.AppendTranscript(ctx, "a", []wr.TranscriptEntry{{Role: wr.RoleAssistant, Content: fmt.Sprint(g, "-", i), At: t0}}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	after := int64(0)
	for {
		pg, err := s.Transcript(ctx, "a", after, 64, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range pg.Items {
			seen[e.Sequence] = true
		}
		if pg.NextAfter == 0 {
			break
		}
		after = pg.NextAfter
	}
	if len(seen) != 400 || !seen[1] || !seen[400] {
		t.Fatalf("%d distinct sequences, want 1..400", len(seen))
	}
	// Page cut at maxBytes, at least one entry.
	if pg, _ := s.Transcript(ctx, "a", 0, 100, 1); len(pg.Items) != 1 || pg.NextAfter != 1 {
		t.Fatalf("byte cut: %+v", pg)
	}

	ws, more, last, err := s.ListWorkers(ctx, "", 10)
	if err != nil || len(ws) != 1 || more || last != 402 {
		t.Fatalf("ListWorkers: %d %v %d %v", len(ws), more, last, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 402 {
		t.Fatalf("hook saw %d events, want 402", len(hooked))
	}
	for i, seq := range hooked {
		if seq != int64(i+1) {
			t.Fatalf("hook event %d has seq %d: out of order", i, seq)
		}
	}
	evs, err := s.EventsAfter(ctx, 400, 402, "", 10)
	if err != nil || len(evs) != 2 || evs[0].Seq != 401 || evs[0].Event.Kind != wr.EventTranscriptAppended {
		t.Fatalf("EventsAfter: %+v %v", evs, err)
	}
	evs, _ = s.EventsAfter(ctx, 0, 2, "", 10)
	if evs[1].Event.Worker == nil || evs[1].Event.Worker.Status != wr.StatusRunning {
		t.Fatalf("worker event payload: %+v", evs[1])
	}
}

func TestRetention(t *testing.T) {
	now := t0
	path := filepath.Join(t.TempDir(), "w.db")
	s := open(t, path, sqlitestore.Options{TranscriptRetention: 100, EventRetention: 50, Now: func() time.Time { return now }})
	ctx := t.Context()
	if err := s.CreateWorker(ctx, worker("a", wr.StateActive, wr.StatusRunning), wr.Idempotency{Key: "old", Fingerprint: "f", At: t0}); err != nil {
		t.Fatal(err)
	}
	for range 25 {
		batch := make([]wr.TranscriptEntry, 10)
		for i := range batch {
			batch[i] = wr.TranscriptEntry{Role: wr.RoleAssistant, Content: "x", At: t0}
		}
		if _, err := s.AppendTranscript(ctx, "a", batch); err != nil {
			t.Fatal(err)
		}
	}
	pg, err := s.Transcript(ctx, "a", 0, 200, 1<<20)
	if err != nil || pg.FirstSequence != 151 || pg.LastSequence != 250 || len(pg.Items) != 100 || pg.Items[0].Sequence != 151 {
		t.Fatalf("transcript retention: first %d last %d items %d %v", pg.FirstSequence, pg.LastSequence, len(pg.Items), err)
	}
	first, _ := s.FirstEventSeq(ctx)
	last, _ := s.LastEventSeq(ctx)
	if last != 251 || first != 202 {
		t.Fatalf("event retention: first %d last %d, want 202 251", first, last)
	}
	// Idempotency keys older than 24 h go at the next open.
	_ = s.Close()
	now = t0.Add(25 * time.Hour)
	s2 := open(t, path, sqlitestore.Options{Now: func() time.Time { return now }})
	if _, _, found, _ := s2.LookupIdempotency(ctx, "old", time.Time{}); found {
		t.Fatal("a 25 h old idempotency key survived")
	}
}

// crashChild runs in a re-executed test binary: it writes, prints what was
// acknowledged, then waits to be killed.
func crashChild(path string) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i, st := range []struct {
		s      wr.State
		status string
	}{{wr.StateStarting, wr.StatusStarting}, {wr.StateActive, wr.StatusRunning}, {wr.StateStopping, wr.StatusStopping}, {wr.StateStopped, wr.StatusExited}} {
		id := fmt.Sprintf("w%d", i)
		if err := s.CreateWorker(ctx, worker(id, st.s, st.status), wr.Idempotency{}); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for j := range 100 {
			if _, err := s.AppendTranscript(ctx, id, []wr.TranscriptEntry{{Role: wr.RoleUser, Content: fmt.Sprint("input ", j), At: t0}}); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
		}
	}
	fmt.Println("ready")
	// Keep writing until killed: a write in flight must not corrupt.
	for i := 0; ; i++ {
		_, _ = s.AppendTranscript(ctx, "w1", []wr.TranscriptEntry{{Role: wr.RoleAssistant, Content: fmt.Sprint("more ", i), At: t0}})
	}
}

func TestCrashRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("child said %q: %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	if err := syscall.Kill(cmd.Process.Pid, 0); err == nil {
		t.Fatal("child still exists")
	}

	s := open(t, path, sqlitestore.Options{})
	ctx := t.Context()
	recovered, err := s.Recover(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(recovered) != 3 {
		t.Fatalf("recovered %d workers, want 3 (w0-w2)", len(recovered))
	}
	for i := range 4 {
		id := fmt.Sprintf("w%d", i)
		w, err := s.GetWorker(ctx, id)
		if err != nil {
			t.Fatalf("%s lost: %v", id, err)
		}
		want := wr.StatusRuntimeRestart
		if i == 3 {
			want = wr.StatusExited
		}
		if w.Status != want || (i < 3 && !w.StoppedAt.Equal(t0.Add(time.Hour))) {
			t.Fatalf("%s: %+v, want %s", id, w, want)
		}
		pg, err := s.Transcript(ctx, id, 0, 200, 1<<20)
		if err != nil || len(pg.Items) < 100 {
			t.Fatalf("%s: %d entries survived, want every acknowledged one (100): %v", id, len(pg.Items), err)
		}
		for j := range 100 {
			if pg.Items[j].Content != fmt.Sprint("input ", j) {
				t.Fatalf("%s entry %d: %q", id, j, pg.Items[j].Content)
			}
		}
	}
	last, _ := s.LastEventSeq(ctx)
	evs, err := s.EventsAfter(ctx, last-3, last, "", 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("recovery events: %+v %v", evs, err)
	}
	for _, e := range evs {
		if e.Event.Kind != wr.EventWorkerUpserted || e.Event.Worker.Status != wr.StatusRuntimeRestart {
			t.Fatalf("recovery event %+v", e)
		}
	}
}
