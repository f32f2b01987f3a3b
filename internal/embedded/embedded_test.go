package embedded_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/embedded"
	"github.com/workspace-backend/runtime-registry/internal/embedded/embeddedtest"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// hangGuard bounds every wait of these tests; it is never the thing tested.
const hangGuard = 60 * time.Second

// next waits for the first event of stream that pred accepts and returns
// it with every event seen on the way.
func next(t *testing.T, stream registry.EventStream, pred func(registry.Event) bool) (registry.Event, []registry.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	var seen []registry.Event
	for {
		ev, err := stream.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for an event: %v (seen %d)", err, len(seen))
		}
		seen = append(seen, ev)
		if pred(ev) {
			return ev, seen
		}
	}
}

func upserted(id registry.WorkerID, state registry.WorkerState) func(registry.Event) bool {
	return func(ev registry.Event) bool {
		return ev.Kind == registry.EventWorkerUpserted && ev.Worker.ID == id && ev.Worker.State == state
	}
}

func appended(id registry.WorkerID, content string) func(registry.Event) bool {
	return func(ev registry.Event) bool {
		return ev.Kind == registry.EventTranscriptAppended && ev.Ref.WorkerID == id && ev.Entry.Content == content
	}
}

func TestIdentity(t *testing.T) {
	src, _ := embeddedtest.Open(t, embeddedtest.Options{WorkspaceID: "local:ident", MaxWorkers: 7})
	ctx := t.Context()
	if src.RuntimeID() != "embedded-worker-runtime" {
		t.Errorf("runtime id %q", src.RuntimeID())
	}
	sum, err := src.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantHost := registry.HostID(compat.Bounded("embedded-", "local:ident"))
	if sum.Label != "Embedded worker runtime" || sum.Kind != "embedded_worker_runtime" ||
		sum.Source.Kind != registry.SourceEmbeddedWorkerRuntime || sum.Source.Status != registry.SourceActive ||
		sum.Source.IdentityAuthority != registry.IdentityAuthorityProjection || sum.Status != registry.Available ||
		len(sum.HostIDs) != 1 || sum.HostIDs[0] != wantHost || sum.Diagnostics == nil {
		t.Errorf("summary %+v", sum)
	}
	c := sum.Capabilities
	if !c.CanSpawnWorker || !c.CanAcceptInput || !c.CanStopWorker || !c.CanStreamEvents || !c.CanReadBoundedTranscript ||
		c.MaxWorkers == nil || *c.MaxWorkers != 7 || c.OS != runtime.GOOS || c.HasShell || c.HasWorkspaceFS {
		t.Errorf("capabilities %+v", c)
	}
	hosts, diags, err := src.Hosts(ctx)
	if err != nil || len(hosts) != 1 || diags == nil {
		t.Fatalf("hosts %v %v %v", hosts, diags, err)
	}
	h := hosts[0]
	if h.ID != wantHost || h.Kind != "embedded-worker-host" || h.RuntimeID != embedded.RuntimeID || h.ObservedAt.IsZero() || h.Diagnostics == nil {
		t.Errorf("host %+v", h)
	}
	again, _, _ := src.Hosts(ctx)
	if !again[0].ObservedAt.Equal(h.ObservedAt) {
		t.Error("observed_at moves with the request clock")
	}
	if page, err := src.Workers(ctx, registry.WorkerQuery{Limit: 10, HostID: "another-host"}); err != nil || len(page.Workers) != 0 {
		t.Errorf("another host's workers: %v %v", page, err)
	}
	if hostID := embedded.HostIDFor("local:ident"); hostID != wantHost {
		t.Errorf("HostIDFor = %s", hostID)
	}
}

func TestWorkerLifecycle(t *testing.T) {
	src, _ := embeddedtest.Open(t, embeddedtest.Options{})
	ctx := t.Context()
	all, err := src.Events(ctx, registry.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()

	w, err := src.CreateWorker(ctx, registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentRole, Role: "reviewer\n" + strings.Repeat("r", 200)}})
	if err != nil {
		t.Fatal(err)
	}
	if w.RuntimeID != embedded.RuntimeID || w.HostID != embedded.HostIDFor("local:test") || w.Label != "Echo worker" ||
		w.Role == nil || len(*w.Role) != 80 || !strings.HasPrefix(*w.Role, "reviewerr") || w.Profile == nil || *w.Profile != "echo" ||
		w.Implementation.Kind != registry.ImplementationEmbeddedWorker || w.Implementation.DisplayHint != "Echo" ||
		w.Workspace.Visibility != "current_workspace" || w.Workspace.Identity != "runtime_workspace" ||
		w.LastSeenAt == nil || w.Diagnostics == nil || !registry.ValidID(string(w.ID)) {
		t.Errorf("created %+v", w)
	}
	if w.State != registry.WorkerStarting && w.State != registry.WorkerActive {
		t.Errorf("created in state %s", w.State)
	}
	first, _ := next(t, all, func(registry.Event) bool { return true })
	active, _ := next(t, all, upserted(w.ID, registry.WorkerActive))
	if c := active.Worker.Capabilities; !c.CanAcceptInput || !c.CanStop || !c.CanStopWorker || !c.CanGetWorker || c.CanSpawnFollowup {
		t.Errorf("active capabilities %+v", c)
	}
	if active.Worker.Status != "active:running" {
		t.Errorf("active status %s", active.Worker.Status)
	}

	ack, err := src.SendInput(ctx, w.ID, registry.WorkerInput{Kind: registry.InputUser, Content: "hello"})
	if err != nil || !ack.Accepted || ack.Sequence != 1 || ack.Ref.WorkerID != w.ID {
		t.Fatalf("input ack %+v %v", ack, err)
	}
	reply, _ := next(t, all, appended(w.ID, "echo: hello"))
	if reply.Entry.Role != registry.RoleAssistant || reply.Entry.Sequence != 2 || reply.Cursor == "" {
		t.Errorf("reply %+v", reply)
	}
	page, err := src.Transcript(ctx, w.ID, registry.TranscriptQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].Role != registry.RoleUser || page.Items[0].Content != "hello" ||
		page.Items[1].Content != "echo: hello" || page.FirstSequence != 1 || page.LastSequence != 2 || page.NextAfter != 0 {
		t.Errorf("transcript %+v", page)
	}

	// One worker's stream resumed after the first event replays what
	// followed, in order, without the first one again.
	one, err := src.Events(ctx, registry.EventQuery{Cursor: first.Cursor, WorkerID: w.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, replay := next(t, one, appended(w.ID, "echo: hello"))
	one.Close()
	if len(replay) < 3 || replay[0].Cursor == first.Cursor || replay[len(replay)-1].Cursor != reply.Cursor {
		t.Errorf("replay after %s: %+v", first.Cursor, replay)
	}

	stop, err := src.StopWorker(ctx, w.ID, registry.StopGraceful)
	if err != nil || (stop.State != registry.WorkerStopping && stop.State != registry.WorkerStopped) || stop.Mode != registry.StopGraceful {
		t.Fatalf("stop %+v %v", stop, err)
	}
	stopped, _ := next(t, all, upserted(w.ID, registry.WorkerStopped))
	if stopped.Worker.Status != "stopped:requested" {
		t.Errorf("stopped status %s", stopped.Worker.Status)
	}
	if c := stopped.Worker.Capabilities; c.CanAcceptInput || c.CanStop || c.CanStopWorker || !c.CanGetWorker || !c.CanReadBoundedTranscript {
		t.Errorf("stopped capabilities %+v", c)
	}
	// Stop is sticky: force on a gracefully stopped worker keeps its status.
	again, err := src.StopWorker(ctx, w.ID, registry.StopForce)
	if err != nil || again.State != registry.WorkerStopped || again.Status != "stopped:requested" {
		t.Errorf("second stop %+v %v", again, err)
	}
	got, err := src.Worker(ctx, w.ID)
	if err != nil || got.State != registry.WorkerStopped || got.LastSeenAt == nil || got.LastSeenAt.Before(*w.LastSeenAt) {
		t.Errorf("worker after stop %+v %v", got, err)
	}
	list, err := src.Workers(ctx, registry.WorkerQuery{Limit: 10})
	if err != nil || len(list.Workers) != 1 || list.Workers[0].ID != w.ID || list.Version == "" || list.More {
		t.Errorf("list %+v %v", list, err)
	}
}

func TestErrorsAreRegistryCodes(t *testing.T) {
	src, _ := embeddedtest.Open(t, embeddedtest.Options{MaxWorkers: 1})
	ctx := t.Context()
	idem := registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}, Profile: "quiet", WorkerName: "q", IdempotencyKey: "key-1"}
	w, err := src.CreateWorker(ctx, idem)
	if err != nil {
		t.Fatal(err)
	}
	if w.Label != "q" {
		t.Errorf("label %q", w.Label)
	}
	replayed, err := src.CreateWorker(ctx, idem)
	if err != nil || replayed.ID != w.ID {
		t.Errorf("replayed create %v %v", replayed.ID, err)
	}
	reused := idem
	reused.WorkerName = "another"

	tests := []struct {
		name      string
		call      func() error
		code      registry.Code
		field     string
		workerRef bool
	}{
		{"unknown profile", func() error {
			_, err := src.CreateWorker(ctx, registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}, Profile: "nope"})
			return err
		}, registry.CodeInvalidRequest, "profile", false},
		{"bad idempotency key", func() error {
			_, err := src.CreateWorker(ctx, registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}, IdempotencyKey: "a b"})
			return err
		}, registry.CodeInvalidRequest, "Idempotency-Key", false},
		{"idempotency key reused", func() error { _, err := src.CreateWorker(ctx, reused); return err }, registry.CodeIdempotencyKeyReused, "Idempotency-Key", false},
		{"at capacity", func() error {
			_, err := src.CreateWorker(ctx, registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}})
			return err
		}, registry.CodeRuntimeAtCapacity, "", false},
		{"unknown worker", func() error { _, err := src.Worker(ctx, "no-such-worker"); return err }, registry.CodeUnknownWorker, "", true},
		{"input to unknown worker", func() error {
			_, err := src.SendInput(ctx, "no-such-worker", registry.WorkerInput{Kind: registry.InputUser, Content: "x"})
			return err
		}, registry.CodeUnknownWorker, "", true},
		{"bad input kind", func() error {
			_, err := src.SendInput(ctx, w.ID, registry.WorkerInput{Kind: "boss", Content: "x"})
			return err
		}, registry.CodeInvalidRequest, "kind", false},
		{"transcript of unknown worker", func() error {
			_, err := src.Transcript(ctx, "no-such-worker", registry.TranscriptQuery{Limit: 1})
			return err
		}, registry.CodeUnknownWorker, "", true},
		{"stream of unknown worker", func() error {
			_, err := src.Events(ctx, registry.EventQuery{WorkerID: "no-such-worker"})
			return err
		}, registry.CodeUnknownWorker, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *registry.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a registry error", err)
			}
			if e.Code != tc.code || e.Field != tc.field || e.RuntimeID != embedded.RuntimeID {
				t.Errorf("error %+v, want code %s field %q", e, tc.code, tc.field)
			}
			if tc.workerRef && e.WorkerID != "no-such-worker" {
				t.Errorf("error names worker %q", e.WorkerID)
			}
		})
	}

	// Input to a worker that has stopped is worker_not_running.
	if _, err := src.StopWorker(ctx, w.ID, registry.StopForce); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, src, w.ID)
	_, err = src.SendInput(ctx, w.ID, registry.WorkerInput{Kind: registry.InputUser, Content: "late"})
	if registry.ErrorCode(err) != registry.CodeWorkerNotRunning {
		t.Errorf("input to a stopped worker: %v", err)
	}
}

// waitStopped waits (hang guard only) for a worker to reach stopped.
func waitStopped(t *testing.T, src *embedded.Source, id registry.WorkerID) {
	t.Helper()
	stream, err := src.Events(t.Context(), registry.EventQuery{WorkerID: id})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if w, err := src.Worker(t.Context(), id); err == nil && w.State == registry.WorkerStopped {
		return
	}
	next(t, stream, upserted(id, registry.WorkerStopped))
}

func TestWorkerBusy(t *testing.T) {
	src, _ := embeddedtest.Open(t, embeddedtest.Options{})
	ctx := t.Context()
	w, err := src.CreateWorker(ctx, registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}, Profile: "stubborn"})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := src.Events(ctx, registry.EventQuery{WorkerID: w.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if got, _ := src.Worker(ctx, w.ID); got.State != registry.WorkerActive {
		next(t, stream, upserted(w.ID, registry.WorkerActive))
	}
	// stubborn never reads stdin: the pipe fills, then the queue of 64.
	big := strings.Repeat("x", 60<<10)
	var busy error
	for i := 0; i < 200 && busy == nil; i++ {
		_, err := src.SendInput(ctx, w.ID, registry.WorkerInput{Kind: registry.InputUser, Content: big})
		if err != nil {
			busy = err
		}
	}
	var e *registry.Error
	if !errors.As(busy, &e) || e.Code != registry.CodeWorkerBusy || e.WorkerID != w.ID {
		t.Errorf("a full queue answers %v", busy)
	}
	// stubborn ignores SIGTERM: force ends it.
	if _, err := src.StopWorker(ctx, w.ID, registry.StopForce); err != nil {
		t.Fatal(err)
	}
	next(t, stream, upserted(w.ID, registry.WorkerStopped))
}

func TestStreamsEndWhenTheRuntimeCloses(t *testing.T) {
	src, _ := embeddedtest.Open(t, embeddedtest.Options{})
	ctx := t.Context()
	w, err := src.CreateWorker(ctx, registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentAssistant}})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := src.Events(ctx, registry.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if w.State != registry.WorkerStarting && w.State != registry.WorkerActive {
		t.Fatalf("created %s", w.State)
	}
	// Closing stops the live worker (CloseAndCheck proves its process
	// ended) and ends the stream: the client resumes with its cursor.
	embeddedtest.CloseAndCheck(t, src)
	c, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	for {
		_, err := stream.Next(c)
		if err == nil {
			continue // events committed before the close may still be delivered
		}
		if !errors.Is(err, registry.ErrStreamEnded) {
			t.Errorf("after close, Next answers %v", err)
		}
		break
	}
	if _, err := src.CreateWorker(ctx, registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}}); registry.ErrorCode(err) != registry.CodeRuntimeUnavailable {
		t.Errorf("create after close: %v", err)
	}
}

func TestResyncForAnUnknownCursor(t *testing.T) {
	src, _ := embeddedtest.Open(t, embeddedtest.Options{})
	stream, err := src.Events(t.Context(), registry.EventQuery{Cursor: "not-a-cursor-of-ours"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	ev, _ := next(t, stream, func(registry.Event) bool { return true })
	if ev.Kind != registry.EventResync || ev.Reason != registry.ResyncCursorUnknown || ev.Cursor != "" {
		t.Errorf("first event %+v", ev)
	}
}

// An unchanged page is the kept projection (the same Workers, not projected
// again); every acknowledged write shows in the next page, with a new
// Version. Real SQLite on disk and real processes.
func TestWorkersFromMemory(t *testing.T) {
	type write func(t *testing.T, src *embedded.Source, w registry.Worker) func(registry.Worker) bool
	cases := []struct {
		name  string
		write write
	}{
		{"create", func(t *testing.T, src *embedded.Source, _ registry.Worker) func(registry.Worker) bool {
			n, err := src.CreateWorker(t.Context(), registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}, Profile: "quiet"})
			if err != nil {
				t.Fatal(err)
			}
			return func(w registry.Worker) bool { return w.ID == n.ID }
		}},
		{"input", func(t *testing.T, src *embedded.Source, w registry.Worker) func(registry.Worker) bool {
			before, err := src.Worker(t.Context(), w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.SendInput(t.Context(), w.ID, registry.WorkerInput{Kind: registry.InputUser, Content: "x"}); err != nil {
				t.Fatal(err)
			}
			return func(got registry.Worker) bool { return got.ID == w.ID && got.LastSeenAt.After(*before.LastSeenAt) }
		}},
		{"stop", func(t *testing.T, src *embedded.Source, w registry.Worker) func(registry.Worker) bool {
			if _, err := src.StopWorker(t.Context(), w.ID, registry.StopForce); err != nil {
				t.Fatal(err)
			}
			return func(got registry.Worker) bool {
				return got.ID == w.ID && (got.State == registry.WorkerStopping || got.State == registry.WorkerStopped)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, _ := embeddedtest.Open(t, embeddedtest.Options{})
			ctx := t.Context()
			if _, err := src.CreateWorker(ctx, registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}, Profile: "quiet"}); err != nil {
				t.Fatal(err)
			}
			q := registry.WorkerQuery{Limit: 200}
			var p1, p2 registry.WorkerPage
			deadline := time.Now().Add(hangGuard)
			for { // until the worker is active and nothing moves between two lists
				p1, _ = src.Workers(ctx, q)
				p2, _ = src.Workers(ctx, q)
				if len(p1.Workers) == 1 && p1.Workers[0].State == registry.WorkerActive && p1.Version == p2.Version {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no stable page")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if p1.Version == "" || &p1.Workers[0] != &p2.Workers[0] {
				t.Fatalf("an unchanged page was projected again (version %q)", p1.Version)
			}
			check := tc.write(t, src, p1.Workers[0])
			p3, err := src.Workers(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(p3.Workers, check) {
				t.Fatalf("the page after an acknowledged %s does not show it: %+v", tc.name, p3.Workers)
			}
			if p3.Version == p1.Version {
				t.Fatal("the Version did not move with the write")
			}
		})
	}
}
