package workerruntime_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/wrtest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func testProfiles(t *testing.T) *wr.Profiles {
	t.Helper()
	return &wr.Profiles{Default: "echo", List: []wr.Profile{
		{Name: "echo", Label: "Echo", Command: []string{"/bin/true"}, Input: wr.InputText, StopGrace: 50 * time.Millisecond},
		{Name: "other", Label: "Other", Command: []string{"/bin/true"}, Input: wr.InputJSONL, StopGrace: 50 * time.Millisecond},
	}}
}

type env struct {
	rt    *wr.Runtime
	store *wrtest.Store
	exec  *wrtest.Executor
	clock *clock
}

func newEnv(t *testing.T, mutate func(*wr.Options, *wrtest.Store, *wrtest.Executor)) *env {
	t.Helper()
	e := &env{store: wrtest.NewStore(), exec: wrtest.NewExecutor(), clock: &clock{t: t0}}
	opts := wr.Options{Store: e.store, Executor: e.exec, Profiles: testProfiles(t), WorkspaceRoot: t.TempDir(), Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)}
	if mutate != nil {
		mutate(&opts, e.store, e.exec)
	}
	rt, err := wr.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	e.rt = rt
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
		// Every fake process must have ended.
		for _, p := range e.exec.Processes() {
			select {
			case <-p.Done():
			default:
				t.Errorf("process %d still running after Close", p.PID())
			}
		}
	})
	return e
}

// waitFor polls cond; the deadline is only a hang guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *env) status(t *testing.T, id string) string {
	t.Helper()
	w, err := e.rt.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return w.Status
}

func (e *env) waitStatus(t *testing.T, id, status string) wr.Worker {
	t.Helper()
	waitFor(t, "status "+status, func() bool { return e.status(t, id) == status })
	w, _ := e.rt.Get(t.Context(), id)
	return w
}

// create makes an active worker and returns it with its fake process.
func (e *env) create(t *testing.T, req wr.CreateRequest) (wr.Worker, *wrtest.Process) {
	t.Helper()
	if req.Intent.Kind == "" {
		req.Intent.Kind = wr.IntentAssistant
	}
	w, err := e.rt.Create(t.Context(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	var p *wrtest.Process
	select {
	case p = <-e.exec.Started():
	case <-time.After(15 * time.Second):
		t.Fatal("no process started")
	}
	e.waitStatus(t, w.ID, wr.StatusRunning)
	return w, p
}

func code(t *testing.T, err error, want wr.Code, field string) {
	t.Helper()
	if wr.CodeOf(err) != want {
		t.Fatalf("error %v: code %q, want %q", err, wr.CodeOf(err), want)
	}
	var e *wr.Error
	if field != "" && (!errors.As(err, &e) || e.Field != field) {
		t.Fatalf("error %v: want field %q", err, field)
	}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		req   wr.CreateRequest
		field string
	}{
		{"unknown profile", wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}, Profile: "nope"}, "profile"},
		{"bad intent kind", wr.CreateRequest{Intent: wr.Intent{Kind: "boss"}}, "intent.kind"},
		{"missing intent kind", wr.CreateRequest{}, "intent.kind"},
		{"bad idempotency key", wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}, IdempotencyKey: "a b"}, "idempotency_key"},
		{"long purpose", wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask, Purpose: strings.Repeat("x", 5000)}}, "intent.purpose"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.rt.Create(t.Context(), tc.req)
			code(t, err, wr.CodeInvalidRequest, tc.field)
			if !errors.Is(err, wr.ErrInvalidRequest) {
				t.Fatal("errors.Is(ErrInvalidRequest) is false")
			}
		})
	}
	if n := len(e.exec.Processes()); n != 0 {
		t.Fatalf("%d processes started by invalid creates", n)
	}
}

func TestSanitizeLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain name", "plain name"},
		{"a/b\\c", "abc"},
		{"tab\there\nnew\x00", "tabherenew"},
		{"zero\u200bwidth\u202eRTL", "zerowidthRTL"},
		{"line\u2028para\u2029", "linepara"},
		{"  spaced  ", "spaced"},
		{strings.Repeat("é", 100), strings.Repeat("é", 80)},
		{"bad\xffutf8", "badutf8"},
	}
	for _, tc := range tests {
		if got := wr.SanitizeLabel(tc.in); got != tc.want {
			t.Errorf("SanitizeLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCreateLifecycleAndFields(t *testing.T) {
	e := newEnv(t, nil)
	w, p := e.create(t, wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentRole, Role: "reviewer"}, Label: "my/worker\n"})
	if w.State != wr.StateStarting || w.Status != wr.StatusStarting {
		t.Fatalf("create answered %s/%s, want starting", w.State, w.Status)
	}
	if w.Label != "myworker" || w.Profile != "echo" || w.ProfileLabel != "Echo" || !w.CreatedAt.Equal(t0) {
		t.Fatalf("worker fields: %+v", w)
	}
	if p.Spec.WorkerID != w.ID || p.Spec.Profile.Name != "echo" || p.Spec.Intent.Role != "reviewer" || p.Spec.Dir == "" {
		t.Fatalf("start spec: %+v", p.Spec)
	}
	got, _ := e.rt.Get(t.Context(), w.ID)
	if got.State != wr.StateActive {
		t.Fatalf("state %s, want active", got.State)
	}
	info, err := e.rt.Info(t.Context())
	if err != nil || info.Counts[wr.StateActive] != 1 || info.InstanceID == "" || len(info.Profiles) != 2 || !info.Profiles[0].Default {
		t.Fatalf("Info: %+v %v", info, err)
	}
	if _, err := e.rt.Get(t.Context(), "no-such"); !errors.Is(err, wr.ErrUnknownWorker) {
		t.Fatalf("Get unknown: %v", err)
	}
}

func TestExitStatuses(t *testing.T) {
	tests := []struct {
		name string
		end  func(*wrtest.Process)
		want string
	}{
		{"exit 0 on its own", func(p *wrtest.Process) { p.ExitWith(wr.ExitStatus{Code: 0}) }, wr.StatusExited},
		{"exit 3", func(p *wrtest.Process) { p.ExitWith(wr.ExitStatus{Code: 3}) }, wr.StatusFailed},
		{"signal we did not send", func(p *wrtest.Process) {
			p.ExitWith(wr.ExitStatus{Code: -1, Signaled: true, Signal: syscall.SIGSEGV})
		}, wr.StatusFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			w, p := e.create(t, wr.CreateRequest{})
			tc.end(p)
			got := e.waitStatus(t, w.ID, tc.want)
			if got.State != wr.StateStopped || got.StoppedAt.IsZero() {
				t.Fatalf("stopped record: %+v", got)
			}
			if _, err := e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: "x"}); !errors.Is(err, wr.ErrWorkerNotRunning) {
				t.Fatalf("input to a stopped worker: %v", err)
			}
		})
	}
}

func TestStartFailure(t *testing.T) {
	e := newEnv(t, func(_ *wr.Options, _ *wrtest.Store, x *wrtest.Executor) {
		x.StartErr = errors.New("exec /secret/path: no such file")
	})
	w, err := e.rt.Create(t.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, w.ID, wr.StatusFailed)
	page, err := e.rt.Transcript(t.Context(), w.ID, 0, 0)
	if err != nil || len(page.Items) != 1 || page.Items[0].Role != wr.RoleSystem || strings.Contains(page.Items[0].Content, "/secret") {
		t.Fatalf("transcript after a failed start: %+v %v", page, err)
	}
}

func TestStop(t *testing.T) {
	t.Run("graceful exits on EOF", func(t *testing.T) {
		e := newEnv(t, nil)
		w, p := e.create(t, wr.CreateRequest{})
		got, err := e.rt.Stop(t.Context(), w.ID, wr.StopGraceful)
		if err != nil || got.State == wr.StateActive {
			t.Fatalf("Stop: %+v %v", got, err)
		}
		e.waitStatus(t, w.ID, wr.StatusRequested)
		if len(p.Signals()) != 0 {
			t.Fatalf("signals %v, want none (it exited on EOF)", p.Signals())
		}
		// Sticky: a second stop of either mode changes nothing.
		for _, m := range []wr.StopMode{wr.StopGraceful, wr.StopForce} {
			again, err := e.rt.Stop(t.Context(), w.ID, m)
			if err != nil || again.Status != wr.StatusRequested {
				t.Fatalf("Stop(%s) of a stopped worker: %+v %v", m, again, err)
			}
		}
	})
	t.Run("graceful escalates to TERM then KILL", func(t *testing.T) {
		e := newEnv(t, func(_ *wr.Options, _ *wrtest.Store, x *wrtest.Executor) { x.IgnoreTerm, x.ExitOnEOF = true, false })
		w, p := e.create(t, wr.CreateRequest{})
		if _, err := e.rt.Stop(t.Context(), w.ID, wr.StopGraceful); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(t, w.ID, wr.StatusRequested)
		sigs := p.Signals()
		if len(sigs) != 2 || sigs[0] != syscall.SIGTERM || sigs[1] != syscall.SIGKILL {
			t.Fatalf("signals %v, want [TERM KILL]", sigs)
		}
		select {
		case <-p.StdinClosed():
		default:
			t.Fatal("stdin not closed by a graceful stop")
		}
	})
	t.Run("force", func(t *testing.T) {
		e := newEnv(t, func(_ *wr.Options, _ *wrtest.Store, x *wrtest.Executor) { x.ExitOnEOF = false })
		w, p := e.create(t, wr.CreateRequest{})
		got, err := e.rt.Stop(t.Context(), w.ID, wr.StopForce)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != wr.StatusCancelled {
			got = e.waitStatus(t, w.ID, wr.StatusCancelled)
		}
		if sigs := p.Signals(); len(sigs) != 1 || sigs[0] != syscall.SIGKILL {
			t.Fatalf("signals %v, want [KILL]", sigs)
		}
		again, _ := e.rt.Stop(t.Context(), w.ID, wr.StopGraceful)
		if again.Status != wr.StatusCancelled || !again.StoppedAt.Equal(got.StoppedAt) {
			t.Fatalf("sticky: %+v", again)
		}
	})
	t.Run("force during graceful", func(t *testing.T) {
		e := newEnv(t, func(o *wr.Options, _ *wrtest.Store, x *wrtest.Executor) {
			x.ExitOnEOF = false
			o.Profiles.List[0].StopGrace = time.Hour
		})
		w, _ := e.create(t, wr.CreateRequest{})
		if got, _ := e.rt.Stop(t.Context(), w.ID, wr.StopGraceful); got.Status != wr.StatusStopping {
			t.Fatalf("graceful answered %s", got.Status)
		}
		if _, err := e.rt.Stop(t.Context(), w.ID, wr.StopForce); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(t, w.ID, wr.StatusCancelled)
	})
	for _, mode := range []wr.StopMode{wr.StopGraceful, wr.StopForce} {
		t.Run(string(mode)+" while starting", func(t *testing.T) {
			gate := make(chan struct{})
			e := newEnv(t, func(_ *wr.Options, _ *wrtest.Store, x *wrtest.Executor) { x.StartGate = gate })
			w, err := e.rt.Create(t.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			got, err := e.rt.Stop(ctx, w.ID, mode)
			cancel()
			if err != nil || got.State != wr.StateStopping {
				t.Fatalf("Stop while starting: %+v %v", got, err)
			}
			if _, err := e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: "x"}); !errors.Is(err, wr.ErrWorkerNotRunning) {
				t.Fatalf("input while stopping: %v", err)
			}
			close(gate)
			want := map[wr.StopMode]string{wr.StopGraceful: wr.StatusRequested, wr.StopForce: wr.StatusCancelled}[mode]
			e.waitStatus(t, w.ID, want)
			// It never became active.
			sub, err := e.rt.Subscribe(t.Context(), wr.SubscribeRequest{WorkerID: w.ID, Cursor: "0f0f0f0f-0"})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			var statuses []string
			for len(statuses) < 3 {
				ev, err := sub.Next(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				statuses = append(statuses, ev.Worker.Status)
			}
			if strings.Join(statuses, ",") != "starting,stopping,"+want {
				t.Fatalf("transitions %v", statuses)
			}
		})
	}
	t.Run("bad mode and unknown worker", func(t *testing.T) {
		e := newEnv(t, nil)
		_, err := e.rt.Stop(t.Context(), "x", "sideways")
		code(t, err, wr.CodeInvalidRequest, "mode")
		_, err = e.rt.Stop(t.Context(), "x", wr.StopForce)
		code(t, err, wr.CodeUnknownWorker, "")
	})
}

func TestSendInput(t *testing.T) {
	e := newEnv(t, nil)
	w, p := e.create(t, wr.CreateRequest{})
	for i, in := range []wr.Input{{Kind: wr.InputUser, Content: "hello"}, {Kind: wr.InputSystem, Content: "note"}} {
		ack, err := e.rt.SendInput(t.Context(), w.ID, in)
		if err != nil || ack.Sequence != int64(i+1) {
			t.Fatalf("SendInput: %+v %v", ack, err)
		}
		// Committed before SendInput returned.
		page, _ := e.rt.Transcript(t.Context(), w.ID, int64(i), 1)
		if len(page.Items) != 1 || page.Items[0].Content != in.Content || string(page.Items[0].Role) != string(in.Kind) {
			t.Fatalf("transcript after input %d: %+v", i, page)
		}
	}
	waitFor(t, "inputs written", func() bool { return len(p.Inputs()) == 2 })
	tests := []struct {
		name  string
		id    string
		in    wr.Input
		code  wr.Code
		field string
	}{
		{"bad kind", w.ID, wr.Input{Kind: "assistant", Content: "x"}, wr.CodeInvalidRequest, "kind"},
		{"too long", w.ID, wr.Input{Kind: wr.InputUser, Content: strings.Repeat("x", wr.MaxInputBytes+1)}, wr.CodeInvalidRequest, "content"},
		{"unknown", "nope", wr.Input{Kind: wr.InputUser, Content: "x"}, wr.CodeUnknownWorker, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.rt.SendInput(t.Context(), tc.id, tc.in)
			code(t, err, tc.code, tc.field)
		})
	}
	if _, err := e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: strings.Repeat("x", wr.MaxInputBytes)}); err != nil {
		t.Fatalf("64 KiB exactly: %v", err)
	}
}

func TestInputQueueFull(t *testing.T) {
	e := newEnv(t, func(_ *wr.Options, _ *wrtest.Store, x *wrtest.Executor) { x.Block = true })
	w, _ := e.create(t, wr.CreateRequest{})
	// One input is taken by the (blocked) writer, 64 wait in the queue.
	var busy error
	accepted := 0
	for i := 0; i < 200 && busy == nil; i++ {
		_, err := e.rt.SendInput(t.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: "x"})
		if err != nil {
			busy = err
			break
		}
		accepted++
	}
	code(t, busy, wr.CodeWorkerBusy, "")
	if accepted < wr.InputQueueSize || accepted > wr.InputQueueSize+1 {
		t.Fatalf("accepted %d inputs before busy, want %d or %d", accepted, wr.InputQueueSize, wr.InputQueueSize+1)
	}
	page, _ := e.rt.Transcript(t.Context(), w.ID, 0, 200)
	if len(page.Items) != accepted {
		t.Fatalf("transcript holds %d inputs, want %d (a refused input is not recorded)", len(page.Items), accepted)
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, nil)
	req := wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}, IdempotencyKey: "k-1", Label: "a"}
	first, _ := e.create(t, req)
	again, err := e.rt.Create(t.Context(), req)
	if err != nil || again.ID != first.ID {
		t.Fatalf("replay: %+v %v", again, err)
	}
	req2 := req
	req2.Label = "b"
	_, err = e.rt.Create(t.Context(), req2)
	code(t, err, wr.CodeIdempotencyKeyReused, "")
	if n := len(e.exec.Processes()); n != 1 {
		t.Fatalf("%d processes, want 1", n)
	}
	// After 24 h the key is free again.
	e.clock.Add(wr.IdempotencyWindow + time.Second)
	later, _ := e.create(t, req2)
	if later.ID == first.ID {
		t.Fatal("an expired key answered the old worker")
	}
}

func TestCapacity(t *testing.T) {
	e := newEnv(t, func(o *wr.Options, _ *wrtest.Store, _ *wrtest.Executor) { o.MaxWorkers = 2 })
	a, _ := e.create(t, wr.CreateRequest{})
	e.create(t, wr.CreateRequest{})
	_, err := e.rt.Create(t.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
	code(t, err, wr.CodeRuntimeAtCapacity, "")
	if _, err := e.rt.Stop(t.Context(), a.ID, wr.StopGraceful); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, a.ID, wr.StatusRequested)
	waitFor(t, "a free slot", func() bool {
		_, err := e.rt.Create(t.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
		return err == nil
	})
}

func TestListPagesAndVersion(t *testing.T) {
	e := newEnv(t, nil)
	var ids []string
	for range 5 {
		w, _ := e.create(t, wr.CreateRequest{})
		ids = append(ids, w.ID)
	}
	var got []string
	after := ""
	for {
		p, err := e.rt.List(t.Context(), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range p.Workers {
			got = append(got, w.ID)
		}
		if !p.More {
			break
		}
		after = p.Workers[len(p.Workers)-1].ID
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("list order %v, want creation order %v", got, ids)
	}
	v1, _ := e.rt.List(t.Context(), "", 200)
	v2, _ := e.rt.List(t.Context(), "", 200)
	if v1.Version != v2.Version {
		t.Fatal("Version changed with no change")
	}
	if _, err := e.rt.SendInput(t.Context(), ids[0], wr.Input{Kind: wr.InputUser, Content: "x"}); err != nil {
		t.Fatal(err)
	}
	v3, _ := e.rt.List(t.Context(), "", 200)
	if v3.Version == v2.Version {
		t.Fatal("Version did not change after a transcript append")
	}
	for _, l := range []int{-1, 201} {
		_, err := e.rt.List(t.Context(), "", l)
		code(t, err, wr.CodeInvalidRequest, "limit")
	}
}

func TestTranscriptPagesAndRetention(t *testing.T) {
	e := newEnv(t, func(_ *wr.Options, s *wrtest.Store, _ *wrtest.Executor) { s.TranscriptRetention = 10 })
	w, p := e.create(t, wr.CreateRequest{})
	for i := range 25 {
		p.Emit(wr.RoleAssistant, strings.Repeat("o", i))
	}
	waitFor(t, "25 entries", func() bool {
		pg, _ := e.rt.Transcript(t.Context(), w.ID, 0, 1)
		return pg.LastSequence == 25
	})
	pg, err := e.rt.Transcript(t.Context(), w.ID, 0, 4)
	if err != nil || pg.FirstSequence != 16 || len(pg.Items) != 4 || pg.Items[0].Sequence != 16 || pg.NextAfter != 19 {
		t.Fatalf("first page: %+v %v", pg, err)
	}
	pg, _ = e.rt.Transcript(t.Context(), w.ID, 19, 200)
	if len(pg.Items) != 6 || pg.NextAfter != 0 {
		t.Fatalf("last page: %+v", pg)
	}
	_, err = e.rt.Transcript(t.Context(), w.ID, 0, 500)
	code(t, err, wr.CodeInvalidRequest, "limit")
	_, err = e.rt.Transcript(t.Context(), "nope", 0, 0)
	code(t, err, wr.CodeUnknownWorker, "")
}

func TestCloseStopsEveryWorker(t *testing.T) {
	e := newEnv(t, func(_ *wr.Options, _ *wrtest.Store, x *wrtest.Executor) { x.IgnoreTerm, x.ExitOnEOF = true, false })
	a, pa := e.create(t, wr.CreateRequest{})
	b, _ := e.create(t, wr.CreateRequest{})
	if err := e.rt.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.ID, b.ID} {
		w, err := e.store.GetWorker(t.Context(), id)
		if err != nil || w.Status != wr.StatusRuntimeShutdown {
			t.Fatalf("after Close: %+v %v", w, err)
		}
	}
	if sigs := pa.Signals(); len(sigs) != 2 {
		t.Fatalf("signals %v, want TERM then KILL", sigs)
	}
	_, err := e.rt.Create(t.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
	code(t, err, wr.CodeRuntimeUnavailable, "")
}

// TestCloseShortensALongGrace: a profile's hour-long stop_grace must not
// hold Close beyond its 10 s budget.
func TestCloseShortensALongGrace(t *testing.T) {
	e := newEnv(t, func(o *wr.Options, _ *wrtest.Store, x *wrtest.Executor) {
		x.IgnoreTerm, x.ExitOnEOF = true, false
		o.Profiles.List[0].StopGrace = time.Hour
	})
	a, pa := e.create(t, wr.CreateRequest{})
	if _, err := e.rt.Stop(t.Context(), a.ID, wr.StopGraceful); err != nil { // already stopping by request
		t.Fatal(err)
	}
	b, pb := e.create(t, wr.CreateRequest{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // hang guard
	defer cancel()
	if err := e.rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("Close did not finish")
	}
	for _, c := range []struct {
		id, want string
		p        *wrtest.Process
	}{{a.ID, wr.StatusRequested, pa}, {b.ID, wr.StatusRuntimeShutdown, pb}} {
		w, _ := e.store.GetWorker(t.Context(), c.id)
		if w.Status != c.want {
			t.Errorf("%s, want %s", w.Status, c.want)
		}
		if sigs := c.p.Signals(); len(sigs) != 2 || sigs[0] != syscall.SIGTERM || sigs[1] != syscall.SIGKILL {
			t.Errorf("signals %v, want [TERM KILL]", sigs)
		}
	}
}

func TestOpenRecoversAfterCrash(t *testing.T) {
	store := wrtest.NewStore()
	for _, w := range []wr.Worker{
		{ID: "a", State: wr.StateActive, Status: wr.StatusRunning},
		{ID: "b", State: wr.StateStopped, Status: wr.StatusExited},
		{ID: "c", State: wr.StateStarting, Status: wr.StatusStarting},
	} {
		if err := store.CreateWorker(t.Context(), w, wr.Idempotency{}); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, func(o *wr.Options, _ *wrtest.Store, _ *wrtest.Executor) { o.Store = store })
	want := map[string]string{"a": wr.StatusRuntimeRestart, "b": wr.StatusExited, "c": wr.StatusRuntimeRestart}
	for id, st := range want {
		if got := e.status(t, id); got != st {
			t.Errorf("%s: %s, want %s", id, got, st)
		}
	}
	sub, err := e.rt.Subscribe(t.Context(), wr.SubscribeRequest{Cursor: "0f0f0f0f-3"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, id := range []string{"a", "c"} {
		ev, err := sub.Next(t.Context())
		if err != nil || ev.Kind != wr.EventWorkerUpserted || ev.WorkerID != id || ev.Worker.Status != wr.StatusRuntimeRestart {
			t.Fatalf("recovery event: %+v %v", ev, err)
		}
	}
}

func TestErrorsAreTyped(t *testing.T) {
	err := error(&wr.Error{Code: wr.CodeWorkerBusy, Detail: "x", Cause: errors.New("inner")})
	if !errors.Is(err, wr.ErrWorkerBusy) || errors.Is(err, wr.ErrUnknownWorker) {
		t.Fatal("Is by code")
	}
	if wr.CodeOf(errors.New("plain")) != wr.CodeInternal {
		t.Fatal("CodeOf of a plain error")
	}
	if strings.Contains(err.Error(), "inner") {
		t.Fatal("Error() shows the cause")
	}
}
