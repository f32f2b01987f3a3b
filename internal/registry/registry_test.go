package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/registry/registrytest"
)

// auditLog records every audit record.
type auditLog struct {
	mu      sync.Mutex
	records []registry.AuditRecord
}

func (a *auditLog) Audit(_ context.Context, rec registry.AuditRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records = append(a.records, rec)
}

func mustRegistry(tb testing.TB, opts registry.Options, sources ...registry.Source) *registry.Registry {
	tb.Helper()
	if opts.Auditor == nil {
		opts.Auditor = &auditLog{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := registry.New(opts, sources...)
	if err != nil {
		tb.Fatalf("registry.New: %v", err)
	}
	return r
}

func ref(rid, wid string) registry.WorkerRef {
	return registry.WorkerRef{RuntimeID: registry.RuntimeID(rid), WorkerID: registry.WorkerID(wid)}
}

func TestSameWorkerIDIsReachedOnlyThroughItsOwnRuntime(t *testing.T) {
	a := registrytest.New("runtime-a", "shared-worker")
	b := registrytest.New("runtime-b", "shared-worker")
	a.Add("shared-worker", "label in A")
	b.Add("shared-worker", "label in B")
	r := mustRegistry(t, registry.Options{}, registrytest.Full{Source: a}, registrytest.Full{Source: b})

	for _, tc := range []struct{ runtime, wantLabel string }{
		{"runtime-a", "label in A"},
		{"runtime-b", "label in B"},
	} {
		w, err := r.Worker(t.Context(), ref(tc.runtime, "shared-worker"))
		if err != nil {
			t.Fatalf("Worker(%s): %v", tc.runtime, err)
		}
		if w.Label != tc.wantLabel || string(w.RuntimeID) != tc.runtime {
			t.Errorf("Worker(%s) = %q in %s, want %q", tc.runtime, w.Label, w.RuntimeID, tc.wantLabel)
		}
	}

	if _, err := r.SendInput(t.Context(), ref("runtime-b", "shared-worker"), registry.WorkerInput{Kind: registry.InputUser, Content: "hi"}); err != nil {
		t.Fatalf("SendInput: %v", err)
	}
	if len(a.Calls()) != 0 || !slices.Equal(b.Calls(), []string{"input:shared-worker:hi"}) {
		t.Errorf("input routed to a=%v b=%v, want only b", a.Calls(), b.Calls())
	}

	// A label is display only: looking a Worker up by it fails as unknown.
	if _, err := r.Worker(t.Context(), ref("runtime-a", "label in A")); !errors.Is(err, registry.ErrUnknownWorker) {
		t.Errorf("lookup by label: err = %v, want unknown_worker", err)
	}
}

func TestTypedErrors(t *testing.T) {
	broken := registrytest.New("runtime-broken")
	broken.FailWith(errors.New("open /secret/data/pods: permission denied"))
	healthy := registrytest.New("runtime-ok", "w1", "hidden")
	hidden := registry.VisibilityFunc(func(_ context.Context, w registry.Worker) bool { return w.ID != "hidden" })
	r := mustRegistry(t, registry.Options{Visibility: hidden}, healthy, broken,
		registry.NewReservedSource("runtime-reserved", registry.SourceRemoteHTTP, "Remote"))

	tests := []struct {
		name string
		call func() error
		want *registry.Error
		// wantIDs are the ids the error must carry.
		wantRuntime registry.RuntimeID
		wantWorker  registry.WorkerID
	}{
		{"unknown runtime", func() error { _, err := r.Runtime(t.Context(), "nope"); return err }, registry.ErrUnknownRuntime, "nope", ""},
		{"unknown worker", func() error { _, err := r.Worker(t.Context(), ref("runtime-ok", "w2")); return err }, registry.ErrUnknownWorker, "runtime-ok", "w2"},
		{"worker of unknown runtime", func() error { _, err := r.Worker(t.Context(), ref("nope", "w1")); return err }, registry.ErrUnknownRuntime, "nope", ""},
		{"hidden worker", func() error { _, err := r.Worker(t.Context(), ref("runtime-ok", "hidden")); return err }, registry.ErrWorkerNotVisible, "runtime-ok", "hidden"},
		{"input to hidden worker", func() error {
			_, err := r.SendInput(t.Context(), ref("runtime-ok", "hidden"), registry.WorkerInput{Kind: registry.InputUser, Content: "x"})
			return err
		}, registry.ErrWorkerNotVisible, "runtime-ok", "hidden"},
		{"reserved runtime", func() error { _, err := r.Worker(t.Context(), ref("runtime-reserved", "w1")); return err }, registry.ErrRuntimeUnavailable, "runtime-reserved", ""},
		{"unsupported stop", func() error {
			_, err := r.StopWorker(t.Context(), ref("runtime-ok", "w1"), registry.StopGraceful)
			return err
		}, registry.ErrOperationUnsupported, "runtime-ok", ""},
		{"unsupported create", func() error {
			_, err := r.CreateWorker(t.Context(), "runtime-ok", registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}})
			return err
		}, registry.ErrOperationUnsupported, "runtime-ok", ""},
		{"stop of unknown worker is unknown, not unsupported", func() error {
			_, err := r.StopWorker(t.Context(), ref("runtime-ok", "w9"), registry.StopForce)
			return err
		}, registry.ErrUnknownWorker, "runtime-ok", "w9"},
		{"limit too high", func() error { _, err := r.RuntimeWorkers(t.Context(), "runtime-ok", 201, ""); return err }, registry.ErrInvalidRequest, "", ""},
		{"negative limit", func() error { _, err := r.RuntimeWorkers(t.Context(), "runtime-ok", -1, ""); return err }, registry.ErrInvalidRequest, "", ""},
		{"garbage cursor", func() error { _, err := r.RuntimeWorkers(t.Context(), "runtime-ok", 1, "!!"); return err }, registry.ErrInvalidRequest, "", ""},
		{"unknown host while a runtime is down", func() error { _, err := r.HostWorkers(t.Context(), "host-x"); return err }, registry.ErrRuntimeUnavailable, "runtime-broken", ""},
		{"untyped source error is internal", func() error { _, err := r.Runtime(t.Context(), "runtime-broken"); return err }, registry.ErrInternal, "runtime-broken", ""},
		{"bad id", func() error { _, err := registry.ParseWorkerRef("ok", "bad id"); return err }, registry.ErrInvalidIdentifier, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want code %s", err, tc.want.Code)
			}
			var e *registry.Error
			if !errors.As(err, &e) {
				t.Fatalf("err %T is not a *registry.Error", err)
			}
			if e.RuntimeID != tc.wantRuntime || e.WorkerID != tc.wantWorker {
				t.Errorf("ids = (%q, %q), want (%q, %q)", e.RuntimeID, e.WorkerID, tc.wantRuntime, tc.wantWorker)
			}
			if strings.Contains(err.Error(), "/secret") {
				t.Errorf("error text leaks the cause: %q", err.Error())
			}
			if registry.ErrorCode(err) != tc.want.Code {
				t.Errorf("ErrorCode = %s, want %s", registry.ErrorCode(err), tc.want.Code)
			}
		})
	}
}

func TestErrorIsMatchesOnlyItsCode(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", registry.UnknownWorker(ref("r", "w")))
	if !errors.Is(err, registry.ErrUnknownWorker) {
		t.Error("wrapped unknown_worker does not match ErrUnknownWorker")
	}
	if errors.Is(err, registry.ErrUnknownRuntime) {
		t.Error("unknown_worker matches ErrUnknownRuntime")
	}
	if got := registry.ErrorCode(errors.New("plain")); got != registry.CodeInternal {
		t.Errorf("ErrorCode(plain) = %s, want internal", got)
	}
	if got := registry.ErrorCode(nil); got != "" {
		t.Errorf("ErrorCode(nil) = %q, want empty", got)
	}
}

func TestNewRejectsDuplicateAndInvalidRuntimeIDs(t *testing.T) {
	tests := []struct {
		name    string
		opts    registry.Options
		sources []registry.Source
	}{
		{"duplicate", registry.Options{}, []registry.Source{registrytest.New("dup"), registrytest.New("dup")}},
		{"invalid id", registry.Options{}, []registry.Source{registrytest.New("has space")}},
		{"max records too high", registry.Options{MaxRecords: 201}, nil},
		{"max records negative", registry.Options{MaxRecords: -1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := registry.New(tc.opts, tc.sources...); err == nil {
				t.Fatal("New succeeded, want a start-up error")
			}
		})
	}
}

func workerIDs(n int, prefix string) []registry.WorkerID {
	ids := make([]registry.WorkerID, n)
	for i := range ids {
		ids[i] = registry.WorkerID(fmt.Sprintf("%s%04d", prefix, i))
	}
	return ids
}

func TestMergedListsAreBoundedByTheCap(t *testing.T) {
	a := registrytest.New("runtime-a", workerIDs(4, "a")...)
	b := registrytest.New("runtime-b", workerIDs(4, "b")...)
	r := mustRegistry(t, registry.Options{MaxRecords: 6, WorkspaceID: "ws"}, a, b)

	list := r.Workers(t.Context())
	if len(list.Items) != 6 || list.Limit != 6 || list.WorkspaceID != "ws" {
		t.Fatalf("got %d items limit %d ws %q, want 6 items limit 6 ws", len(list.Items), list.Limit, list.WorkspaceID)
	}
	if list.Items[0].RuntimeID != "runtime-a" || list.Items[5].RuntimeID != "runtime-b" {
		t.Errorf("merge order: first %s last %s", list.Items[0].RuntimeID, list.Items[5].RuntimeID)
	}
	if !hasDiagnostic(list.Diagnostics, "list_truncated") {
		t.Errorf("cut list has no list_truncated diagnostic: %+v", list.Diagnostics)
	}

	exact := mustRegistry(t, registry.Options{MaxRecords: 8}, a, b)
	if list := exact.Workers(t.Context()); len(list.Items) != 8 || hasDiagnostic(list.Diagnostics, "list_truncated") {
		t.Errorf("a list that fits: %d items, diagnostics %+v", len(list.Items), list.Diagnostics)
	}
}

func TestDiagnosticsAreCapped(t *testing.T) {
	for _, n := range []int{0, 15, 16, 17, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := registrytest.New("runtime-a", "w1")
			var diags []registry.Diagnostic
			for i := range n {
				diags = append(diags, registry.Diagnostic{Code: "d", Severity: registry.SeverityWarning, Message: fmt.Sprint(i)})
			}
			s.SetDiagnostics(diags...)
			r := mustRegistry(t, registry.Options{}, s)
			list := r.Workers(t.Context())
			want := min(n, registry.MaxDiagnostics)
			if len(list.Diagnostics) != want {
				t.Fatalf("%d diagnostics, want %d", len(list.Diagnostics), want)
			}
			if truncatedNote := hasDiagnostic(list.Diagnostics, "diagnostics_truncated"); truncatedNote != (n > registry.MaxDiagnostics) {
				t.Errorf("diagnostics_truncated present = %v with %d diagnostics", truncatedNote, n)
			}
		})
	}
}

func hasDiagnostic(ds []registry.Diagnostic, code string) bool {
	return slices.ContainsFunc(ds, func(d registry.Diagnostic) bool { return d.Code == code })
}

func TestRuntimeWorkersPagesThroughEverythingOnce(t *testing.T) {
	all := workerIDs(23, "w")
	s := registrytest.New("runtime-a", all...)
	hideEveryThird := registry.VisibilityFunc(func(_ context.Context, w registry.Worker) bool {
		return !strings.HasSuffix(string(w.ID), "3")
	})
	for _, tc := range []struct {
		name   string
		policy registry.VisibilityPolicy
		limit  int
	}{
		{"limit 1", nil, 1},
		{"limit 5", nil, 5},
		{"limit 23", nil, 23},
		{"limit 200", nil, 200},
		{"limit 4 with hidden workers", hideEveryThird, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRegistry(t, registry.Options{Visibility: tc.policy}, s)
			var seen []registry.WorkerID
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				list, err := r.RuntimeWorkers(t.Context(), "runtime-a", tc.limit, cursor)
				if err != nil {
					t.Fatalf("page %d: %v", pages, err)
				}
				if len(list.Items) > tc.limit {
					t.Fatalf("page of %d items over limit %d", len(list.Items), tc.limit)
				}
				for _, w := range list.Items {
					seen = append(seen, w.ID)
				}
				if list.NextCursor == "" {
					break
				}
				cursor = list.NextCursor
			}
			var want []registry.WorkerID
			for _, id := range all {
				if tc.policy == nil || !strings.HasSuffix(string(id), "3") {
					want = append(want, id)
				}
			}
			if !slices.Equal(seen, want) {
				t.Errorf("paged ids = %v, want %v", seen, want)
			}
		})
	}
}

func TestCursorIsBoundToItsRuntime(t *testing.T) {
	a := registrytest.New("runtime-a", workerIDs(3, "w")...)
	b := registrytest.New("runtime-b", workerIDs(3, "w")...)
	r := mustRegistry(t, registry.Options{}, a, b)
	list, err := r.RuntimeWorkers(t.Context(), "runtime-a", 1, "")
	if err != nil || list.NextCursor == "" {
		t.Fatalf("first page: %v, cursor %q", err, list.NextCursor)
	}
	if _, err := r.RuntimeWorkers(t.Context(), "runtime-b", 1, list.NextCursor); !errors.Is(err, registry.ErrInvalidRequest) {
		t.Errorf("cursor of runtime-a on runtime-b: err = %v, want invalid_request", err)
	}
}

func TestHidingPolicyRemovesFromListsAndLookups(t *testing.T) {
	s := registrytest.New("runtime-a", "keep", "secret")
	policy := registry.VisibilityFunc(func(_ context.Context, w registry.Worker) bool { return w.ID != "secret" })
	r := mustRegistry(t, registry.Options{Visibility: policy}, s)

	for name, list := range map[string]registry.List[registry.Worker]{
		"merged": r.Workers(t.Context()),
		"host":   must(r.HostWorkers(t.Context(), "host-runtime-a")),
		"paged":  must(r.RuntimeWorkers(t.Context(), "runtime-a", 0, "")),
	} {
		if len(list.Items) != 1 || list.Items[0].ID != "keep" {
			t.Errorf("%s list = %+v, want only keep", name, list.Items)
		}
	}
	if _, err := r.Worker(t.Context(), ref("runtime-a", "secret")); !errors.Is(err, registry.ErrWorkerNotVisible) {
		t.Errorf("lookup of hidden worker: %v, want worker_not_visible", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAuditRecordsEveryAuthorityBearingCall(t *testing.T) {
	s := registrytest.New("runtime-a", "w1")
	audit := &auditLog{}
	r := mustRegistry(t, registry.Options{Auditor: audit}, s)
	ctx := t.Context()

	_, _ = r.Runtime(ctx, "runtime-a")
	_, _ = r.RuntimeHosts(ctx, "runtime-a")
	_, _ = r.RuntimeWorkers(ctx, "runtime-a", 0, "")
	_, _ = r.HostWorkers(ctx, "host-runtime-a")
	_, _ = r.Worker(ctx, ref("runtime-a", "w1"))
	_, _ = r.Worker(ctx, ref("runtime-a", "w2"))
	_, _ = r.CreateWorker(ctx, "runtime-a", registry.CreateWorkerRequest{})
	_, _ = r.SendInput(ctx, ref("runtime-a", "w1"), registry.WorkerInput{})
	_, _ = r.StopWorker(ctx, ref("runtime-zzz", "w1"), registry.StopForce)

	want := []registry.AuditRecord{
		{Operation: registry.OpGetRuntime, RuntimeID: "runtime-a", Outcome: "ok"},
		{Operation: registry.OpListRuntimeHosts, RuntimeID: "runtime-a", Outcome: "ok"},
		{Operation: registry.OpListRuntimeWorkers, RuntimeID: "runtime-a", Outcome: "ok"},
		{Operation: registry.OpListHostWorkers, RuntimeID: "runtime-a", HostID: "host-runtime-a", Outcome: "ok"},
		{Operation: registry.OpGetWorker, RuntimeID: "runtime-a", WorkerID: "w1", Outcome: "ok"},
		{Operation: registry.OpGetWorker, RuntimeID: "runtime-a", WorkerID: "w2", Outcome: "unknown_worker"},
		{Operation: registry.OpCreateWorker, RuntimeID: "runtime-a", Outcome: "operation_unsupported"},
		{Operation: registry.OpSendInput, RuntimeID: "runtime-a", WorkerID: "w1", Outcome: "operation_unsupported"},
		{Operation: registry.OpStopWorker, RuntimeID: "runtime-zzz", WorkerID: "w1", Outcome: "unknown_runtime"},
	}
	if !slices.Equal(audit.records, want) {
		t.Errorf("audit records:\n got %+v\nwant %+v", audit.records, want)
	}
}

func TestSlogAuditorWritesOneStructuredLine(t *testing.T) {
	var buf bytes.Buffer
	a := registry.SlogAuditor{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a.Audit(t.Context(), registry.AuditRecord{Operation: registry.OpGetWorker, RuntimeID: "r1", WorkerID: "w1", Outcome: "ok"})
	got := buf.String()
	if strings.Count(got, "\n") != 1 {
		t.Fatalf("want one line, got %q", got)
	}
	for _, want := range []string{`"msg":"audit"`, `"operation":"get_worker"`, `"runtime_id":"r1"`, `"worker_id":"w1"`, `"outcome":"ok"`} {
		if !strings.Contains(got, want) {
			t.Errorf("audit line %q lacks %s", got, want)
		}
	}
}

// TestAuditPolicy: reads are audited at debug, writes at info, an internal
// outcome at warn whatever the operation; at the default (info) level only
// the writes and the internal outcomes are written.
func TestAuditPolicy(t *testing.T) {
	tests := []struct {
		op      registry.Operation
		outcome string
		want    slog.Level
	}{
		{registry.OpGetRuntime, "ok", slog.LevelDebug},
		{registry.OpListRuntimeHosts, "ok", slog.LevelDebug},
		{registry.OpListRuntimeWorkers, "ok", slog.LevelDebug},
		{registry.OpListHostWorkers, "unknown_host", slog.LevelDebug},
		{registry.OpGetWorker, "unknown_worker", slog.LevelDebug},
		{registry.OpListProfiles, "ok", slog.LevelDebug},
		{registry.OpReadTranscript, "ok", slog.LevelDebug},
		{registry.OpStreamEvents, "ok", slog.LevelDebug},
		{registry.OpCreateWorker, "ok", slog.LevelInfo},
		{registry.OpSendInput, "worker_busy", slog.LevelInfo},
		{registry.OpStopWorker, "ok", slog.LevelInfo},
		{registry.Operation("future_operation"), "ok", slog.LevelInfo},
		{registry.OpGetWorker, "internal", slog.LevelWarn},
		{registry.OpSendInput, "internal", slog.LevelWarn},
	}
	for _, tt := range tests {
		t.Run(string(tt.op)+"/"+tt.outcome, func(t *testing.T) {
			rec := registry.AuditRecord{Operation: tt.op, RuntimeID: "r1", WorkerID: "w1", Outcome: tt.outcome}
			if got := registry.AuditLevel(rec); got != tt.want {
				t.Errorf("AuditLevel = %v, want %v", got, tt.want)
			}
			var buf bytes.Buffer
			a := registry.SlogAuditor{Logger: slog.New(slog.NewJSONHandler(&buf, nil))} // default level: info
			a.Audit(t.Context(), rec)
			if written := buf.Len() > 0; written != (tt.want >= slog.LevelInfo) {
				t.Errorf("at the default level, written = %v: %q", written, buf.String())
			}
			if buf.Len() > 0 && !strings.Contains(buf.String(), `"level":"`+tt.want.String()+`"`) {
				t.Errorf("line %q is not at %v", buf.String(), tt.want)
			}
		})
	}
}

func TestRegistryKeepsNoWorkerState(t *testing.T) {
	s := registrytest.New("runtime-a", "w1")
	r := mustRegistry(t, registry.Options{}, s)
	ctx := t.Context()
	if _, err := r.Worker(ctx, ref("runtime-a", "w1")); err != nil {
		t.Fatal(err)
	}

	s.Add("w1", "renamed")
	s.Add("w2", "new")
	if w, err := r.Worker(ctx, ref("runtime-a", "w1")); err != nil || w.Label != "renamed" {
		t.Errorf("after rename: %q, %v; want renamed", w.Label, err)
	}
	if list := r.Workers(ctx); len(list.Items) != 2 {
		t.Errorf("after add: %d workers, want 2", len(list.Items))
	}

	s.Remove("w1")
	if _, err := r.Worker(ctx, ref("runtime-a", "w1")); !errors.Is(err, registry.ErrUnknownWorker) {
		t.Errorf("after remove: %v, want unknown_worker", err)
	}
}

func TestBrokenRuntimeDegradesLegacyListsWithADiagnostic(t *testing.T) {
	good := registrytest.New("runtime-good", "w1")
	bad := registrytest.New("runtime-bad")
	bad.FailWith(registry.RuntimeUnavailable("runtime-bad", "", errors.New("dial unix /run/secret.sock")))
	r := mustRegistry(t, registry.Options{}, bad, good)
	ctx := t.Context()

	runtimes := r.Runtimes(ctx)
	hosts := r.Hosts(ctx)
	workers := r.Workers(ctx)
	if len(runtimes.Items) != 2 || len(hosts.Items) != 1 || len(workers.Items) != 1 {
		t.Errorf("items: runtimes %d hosts %d workers %d, want 2, 1, 1", len(runtimes.Items), len(hosts.Items), len(workers.Items))
	}
	// The broken runtime is still listed, as unavailable, in its place.
	if len(runtimes.Items) == 2 {
		if got := runtimes.Items[0]; got.ID != "runtime-bad" || got.Status != registry.Unavailable || !hasDiagnostic(got.Diagnostics, "runtime_unavailable") {
			t.Errorf("broken runtime's summary = %+v", got)
		}
		if got := runtimes.Items[1]; got.ID != "runtime-good" || got.Status != registry.Available {
			t.Errorf("healthy runtime's summary = %+v", got)
		}
	}
	for _, ds := range [][]registry.Diagnostic{runtimes.Diagnostics, hosts.Diagnostics, workers.Diagnostics} {
		if !hasDiagnostic(ds, "runtime_unavailable") {
			t.Errorf("no runtime_unavailable diagnostic in %+v", ds)
		}
		for _, d := range ds {
			if strings.Contains(d.Message, "secret") {
				t.Errorf("diagnostic leaks the cause: %q", d.Message)
			}
		}
	}
	if _, err := r.RuntimeWorkers(ctx, "runtime-bad", 0, ""); !errors.Is(err, registry.ErrRuntimeUnavailable) {
		t.Errorf("scoped list of broken runtime: %v, want runtime_unavailable", err)
	}
}

func TestIDValidation(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"local-worker-runtime", true},
		{"A_b:c-9", true},
		{strings.Repeat("x", 120), true},
		{strings.Repeat("x", 121), false},
		{"", false},
		{"has space", false},
		{"dot.dot", false},
		{"../etc", false},
		{"slash/", false},
		{"é", false},
		{"nul\x00", false},
	}
	for _, tc := range tests {
		if got := registry.ValidID(tc.in); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.in, got, tc.want)
		}
		_, err := registry.ParseRuntimeID(tc.in)
		if (err == nil) != tc.want {
			t.Errorf("ParseRuntimeID(%q) err = %v", tc.in, err)
		}
	}
}

func TestReservedSourceNeverFakesAResult(t *testing.T) {
	s := registry.NewReservedSource("embedded-1", registry.SourceEmbeddedWorkerRuntime, "Embedded")
	r := mustRegistry(t, registry.Options{}, s)
	sum, err := r.Runtime(t.Context(), "embedded-1")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Source.Status != registry.SourceReserved || sum.Source.Kind != registry.SourceEmbeddedWorkerRuntime || sum.Capabilities.CanListWorkers {
		t.Errorf("reserved summary = %+v", sum)
	}
	if _, err := r.RuntimeWorkers(t.Context(), "embedded-1", 0, ""); !errors.Is(err, registry.ErrRuntimeUnavailable) {
		t.Errorf("workers of reserved runtime: %v", err)
	}
	// A reserved runtime implements no operation: the registry says so.
	if _, err := r.CreateWorker(t.Context(), "embedded-1", registry.CreateWorkerRequest{}); !errors.Is(err, registry.ErrOperationUnsupported) {
		t.Errorf("create on reserved runtime: %v", err)
	}
}

func TestListVersionIsPassedThrough(t *testing.T) {
	a := registrytest.New("runtime-a", "w1", "w2")
	a.SetVersion("7")
	b := registrytest.New("runtime-b", "w1")
	b.SetVersion("9")
	plain := registrytest.New("runtime-c", "w1")
	ctx := t.Context()

	r := mustRegistry(t, registry.Options{}, a, b)
	if l, _ := r.RuntimeWorkers(ctx, "runtime-a", 1, ""); l.Version != "7" {
		t.Errorf("RuntimeWorkers version %q, want 7", l.Version)
	}
	if l := r.Workers(ctx); l.Version != "7,9" {
		t.Errorf("merged version %q, want 7,9", l.Version)
	}
	if l, _ := r.HostWorkers(ctx, "host-runtime-b"); l.Version != "9" {
		t.Errorf("HostWorkers version %q, want 9", l.Version)
	}
	// The registry stores nothing: a change of the source shows at once.
	a.SetVersion("8")
	if l, _ := r.RuntimeWorkers(ctx, "runtime-a", 1, ""); l.Version != "8" {
		t.Errorf("after a change: version %q, want 8", l.Version)
	}

	// One unversioned source makes the merged list unversioned.
	if l := mustRegistry(t, registry.Options{}, a, plain).Workers(ctx); l.Version != "" {
		t.Errorf("merged with an unversioned source: %q", l.Version)
	}
	// A custom visibility policy may depend on the caller: no version.
	custom := registry.VisibilityFunc(func(context.Context, registry.Worker) bool { return true })
	if l, _ := mustRegistry(t, registry.Options{Visibility: custom}, a).RuntimeWorkers(ctx, "runtime-a", 1, ""); l.Version != "" {
		t.Errorf("custom policy: version %q", l.Version)
	}
}

// plainSource is a Source with none of the optional interfaces.
type plainSource struct{ registry.Source }

// TestVersionedWorker checks that a lookup carries its Source's version, and
// none from a Source that gives none or for an error.
func TestVersionedWorker(t *testing.T) {
	plain := registrytest.New("plain", "w1")
	plain.SetLookupVersion("v6") // hidden by plainSource: never asked
	versioned := registrytest.New("versioned", "w1")
	versioned.SetLookupVersion("v7")
	reg := mustRegistry(t, registry.Options{}, plainSource{plain}, versioned)
	tests := []struct {
		name        string
		ref         registry.WorkerRef
		wantVersion string
		wantCode    registry.Code
	}{
		{"versioned source", registry.WorkerRef{RuntimeID: "versioned", WorkerID: "w1"}, "v7", ""},
		{"plain source", registry.WorkerRef{RuntimeID: "plain", WorkerID: "w1"}, "", ""},
		{"unknown worker", registry.WorkerRef{RuntimeID: "versioned", WorkerID: "w9"}, "", registry.CodeUnknownWorker},
		{"unknown runtime", registry.WorkerRef{RuntimeID: "nowhere", WorkerID: "w1"}, "", registry.CodeUnknownRuntime},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, v, err := reg.VersionedWorker(t.Context(), tc.ref)
			if registry.ErrorCode(err) != tc.wantCode {
				t.Fatalf("error %v, want code %q", err, tc.wantCode)
			}
			if v != tc.wantVersion {
				t.Errorf("version %q, want %q", v, tc.wantVersion)
			}
			if err == nil && (w.ID != tc.ref.WorkerID || w.RuntimeID != tc.ref.RuntimeID) {
				t.Errorf("worker %s/%s, want %v", w.RuntimeID, w.ID, tc.ref)
			}
		})
	}
}
