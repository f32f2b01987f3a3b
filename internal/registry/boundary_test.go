package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/registry/registrytest"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// hangGuard bounds calls that must return: generous, so that a loaded
// machine never fails a test that works; it only catches a hang.
const hangGuard = 10 * time.Second

// within runs f and fails the test if it does not return within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %s", what, d)
	}
}

// unavailableFor returns the runtime_unavailable diagnostics that name id.
func unavailableFor(ds []registry.Diagnostic, id registry.RuntimeID) int {
	n := 0
	for _, d := range ds {
		if d.Code == "runtime_unavailable" && strings.Contains(d.Message, string(id)) {
			n++
		}
	}
	return n
}

// settledGoroutines waits until at most want goroutines run, and returns
// how many run then (more than want only after the hang guard).
func settledGoroutines(want int) int {
	deadline := time.Now().Add(hangGuard)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMergedListsAnswerWithoutABlockedSource(t *testing.T) {
	const timeout = 100 * time.Millisecond
	a := registrytest.New("runtime-a", "w1")
	blocked := registrytest.New("runtime-blocked", "w1")
	release := blocked.BlockForever(t)
	c := registrytest.New("runtime-c", "w1")
	r := mustRegistry(t, registry.Options{SourceTimeout: timeout}, a, blocked, c)
	ctx := t.Context()
	before := runtime.NumGoroutine()

	var runtimes registry.List[registry.RuntimeSummary]
	var hosts registry.List[registry.Host]
	var workers registry.List[registry.Worker]
	within(t, timeout+2*time.Second, "Runtimes", func() { runtimes = r.Runtimes(ctx) })
	within(t, timeout+2*time.Second, "Hosts", func() { hosts = r.Hosts(ctx) })
	within(t, timeout+2*time.Second, "Workers", func() { workers = r.Workers(ctx) })

	if got := runtimeIDsOf(runtimes.Items); !slices.Equal(got, []registry.RuntimeID{"runtime-a", "runtime-blocked", "runtime-c"}) {
		t.Errorf("runtimes %v", got)
	}
	if len(runtimes.Items) == 3 {
		late := runtimes.Items[1]
		if late.Status != registry.Unavailable || late.Label == "" || late.Kind == "" || late.HostIDs == nil ||
			late.Source.IdentityAuthority != registry.IdentityAuthorityProjection || late.Capabilities.OS == "" ||
			!hasDiagnostic(late.Diagnostics, "runtime_unavailable") || late.Capabilities.CanListWorkers {
			t.Errorf("the late runtime's summary = %+v", late)
		}
		if runtimes.Items[0].Status != registry.Available || runtimes.Items[2].Status != registry.Available {
			t.Errorf("the others: %+v", runtimes.Items)
		}
	}
	if len(hosts.Items) != 2 || hosts.Items[0].RuntimeID != "runtime-a" || hosts.Items[1].RuntimeID != "runtime-c" {
		t.Errorf("hosts %+v", hosts.Items)
	}
	if len(workers.Items) != 2 || workers.Items[0].RuntimeID != "runtime-a" || workers.Items[1].RuntimeID != "runtime-c" {
		t.Errorf("workers %+v", workers.Items)
	}
	for name, ds := range map[string][]registry.Diagnostic{"runtimes": runtimes.Diagnostics, "hosts": hosts.Diagnostics, "workers": workers.Diagnostics} {
		if n := unavailableFor(ds, "runtime-blocked"); n != 1 || len(ds) != 1 {
			t.Errorf("%s: diagnostics %+v, want one runtime_unavailable naming runtime-blocked", name, ds)
		}
		if ds[0].Severity != registry.SeverityWarning {
			t.Errorf("%s: severity %s", name, ds[0].Severity)
		}
	}
	if workers.Version != "" {
		t.Errorf("a list missing a runtime has version %q", workers.Version)
	}

	// Only the blocked Source's own calls (one per list) are left running.
	if n := settledGoroutines(before + 3); n > before+3 {
		t.Errorf("%d goroutines after the lists, want at most %d (the blocked source's three)", n, before+3)
	}
	release()
	if n := settledGoroutines(before); n > before {
		t.Errorf("%d goroutines after the blocked source returned, want at most %d", n, before)
	}
}

func runtimeIDsOf(items []registry.RuntimeSummary) []registry.RuntimeID {
	ids := make([]registry.RuntimeID, len(items))
	for i, s := range items {
		ids[i] = s.ID
	}
	return ids
}

func TestMergedListsSurviveEveryKindOfFailure(t *testing.T) {
	const secret = "/run/SECRET.sock token=SECRET"
	tests := []struct {
		name   string
		break_ func(t *testing.T, s *registrytest.Source)
	}{
		{"typed runtime_unavailable", func(_ *testing.T, s *registrytest.Source) {
			s.FailWith(registry.RuntimeUnavailable("runtime-bad", secret, errors.New(secret)))
		}},
		{"untyped error", func(_ *testing.T, s *registrytest.Source) { s.FailWith(errors.New(secret)) }},
		{"hostile error", func(_ *testing.T, s *registrytest.Source) {
			s.FailWith(registrytest.HostileError(registry.CodeNotFound))
		}},
		{"panic", func(_ *testing.T, s *registrytest.Source) {
			s.SetHook(func(context.Context, registrytest.Method) error { panic(secret) })
		}},
		{"context error", func(_ *testing.T, s *registrytest.Source) { s.FailWith(context.DeadlineExceeded) }},
		{"late", func(t *testing.T, s *registrytest.Source) { s.BlockForever(t) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := registrytest.New("runtime-bad", "w1")
			tc.break_(t, bad)
			good := registrytest.New("runtime-good", "w1")
			logs := &testproc.Buffer{}
			log := slog.New(slog.NewJSONHandler(logs, nil))
			r := mustRegistry(t, registry.Options{SourceTimeout: 50 * time.Millisecond, Logger: log}, good, bad)
			var runtimes registry.List[registry.RuntimeSummary]
			var hosts registry.List[registry.Host]
			var workers registry.List[registry.Worker]
			within(t, hangGuard, "the lists", func() {
				runtimes, hosts, workers = r.Runtimes(t.Context()), r.Hosts(t.Context()), r.Workers(t.Context())
			})
			if len(runtimes.Items) != 2 || runtimes.Items[1].Status != registry.Unavailable || len(hosts.Items) != 1 || len(workers.Items) != 1 {
				t.Errorf("runtimes %+v hosts %d workers %d", runtimes.Items, len(hosts.Items), len(workers.Items))
			}
			for _, ds := range [][]registry.Diagnostic{runtimes.Diagnostics, hosts.Diagnostics, workers.Diagnostics} {
				if unavailableFor(ds, "runtime-bad") != 1 || len(ds) != 1 {
					t.Errorf("diagnostics %+v, want one naming runtime-bad", ds)
				}
			}
			all := fmt.Sprintf("%+v %+v %+v %s", runtimes, hosts, workers, logs.String())
			if strings.Contains(all, "SECRET") || registrytest.Leaks(all) {
				t.Errorf("a list or log line leaks the failure: %s", all)
			}
		})
	}
}

func TestUnavailableSummaryUsesTheDescription(t *testing.T) {
	described := registrytest.New("runtime-described")
	described.FailWith(errors.New("down"))
	plain := registrytest.New("runtime-plain")
	plain.FailWith(errors.New("down"))
	r := mustRegistry(t, registry.Options{}, registrytest.Full{Source: described}, plain)
	list := r.Runtimes(t.Context())
	if len(list.Items) != 2 {
		t.Fatalf("runtimes %+v", list.Items)
	}
	d, p := list.Items[0], list.Items[1]
	if d.Label != "Test runtime-described" || d.Kind != "test" || d.Source.Kind != registry.SourceEmbeddedWorkerRuntime {
		t.Errorf("described: %+v", d)
	}
	if p.Label != "runtime-plain" || p.Kind != "unknown" || p.Source.Kind != registry.SourceRemoteHTTP {
		t.Errorf("plain: %+v", p)
	}
	for _, s := range list.Items {
		if s.Status != registry.Unavailable || s.Source.Status != registry.SourceActive || len(s.Diagnostics) != 1 {
			t.Errorf("unavailable summary %+v", s)
		}
	}
}

func TestHostLookupWhenARuntimeIsDown(t *testing.T) {
	down := func(id registry.RuntimeID) *registrytest.Source {
		s := registrytest.New(id, "w1")
		s.FailWith(registry.RuntimeUnavailable(id, "", nil))
		return s
	}
	hung := func(t *testing.T, id registry.RuntimeID) *registrytest.Source {
		s := registrytest.New(id, "w1")
		s.BlockForever(t)
		return s
	}
	reserved := registry.NewReservedSource("runtime-reserved", registry.SourceRemoteHTTP, "Later")
	tests := []struct {
		name        string
		sources     func(t *testing.T) []registry.Source
		host        registry.HostID
		want        *registry.Error
		wantRuntime registry.RuntimeID
	}{
		{"owner answers while another is down", func(*testing.T) []registry.Source {
			return []registry.Source{down("runtime-down"), registrytest.New("runtime-a", "w1")}
		}, "host-runtime-a", nil, ""},
		{"unknown host, one runtime down", func(*testing.T) []registry.Source {
			return []registry.Source{registrytest.New("runtime-a", "w1"), down("runtime-down")}
		}, "host-runtime-down", registry.ErrRuntimeUnavailable, "runtime-down"},
		{"unknown host, one runtime hung", func(t *testing.T) []registry.Source {
			return []registry.Source{registrytest.New("runtime-a", "w1"), hung(t, "runtime-hung")}
		}, "host-x", registry.ErrRuntimeUnavailable, "runtime-hung"},
		{"unknown host, two runtimes down", func(*testing.T) []registry.Source {
			return []registry.Source{down("runtime-d1"), down("runtime-d2")}
		}, "host-x", registry.ErrRuntimeUnavailable, ""},
		{"unknown host, all up", func(*testing.T) []registry.Source {
			return []registry.Source{registrytest.New("runtime-a", "w1")}
		}, "host-x", registry.ErrUnknownHost, ""},
		{"a reserved runtime owns no host", func(*testing.T) []registry.Source {
			return []registry.Source{registrytest.New("runtime-a", "w1"), reserved}
		}, "host-x", registry.ErrUnknownHost, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRegistry(t, registry.Options{SourceTimeout: 50 * time.Millisecond}, tc.sources(t)...)
			var list registry.List[registry.Worker]
			var err error
			within(t, hangGuard, "HostWorkers", func() { list, err = r.HostWorkers(t.Context(), tc.host) })
			if tc.want == nil {
				if err != nil || len(list.Items) != 1 {
					t.Fatalf("HostWorkers: %v, %+v", err, list.Items)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %s", err, tc.want.Code)
			}
			var e *registry.Error
			if errors.As(err, &e); e.HostID != tc.host || e.RuntimeID != tc.wantRuntime {
				t.Errorf("error ids: host %q runtime %q, want %q %q", e.HostID, e.RuntimeID, tc.host, tc.wantRuntime)
			}
		})
	}
}

// sourceCodes are the codes a Source may return, and what the registry
// answers for them.
var sourceCodes = []struct {
	code, want registry.Code
}{
	{registry.CodeUnknownWorker, registry.CodeUnknownWorker},
	{registry.CodeWorkerNotVisible, registry.CodeWorkerNotVisible},
	{registry.CodeRuntimeUnavailable, registry.CodeRuntimeUnavailable},
	{registry.CodeOperationUnsupported, registry.CodeOperationUnsupported},
	{registry.CodeInvalidRequest, registry.CodeInvalidRequest},
	{registry.CodeWorkerNotRunning, registry.CodeWorkerNotRunning},
	{registry.CodeWorkerBusy, registry.CodeWorkerBusy},
	{registry.CodeRuntimeAtCapacity, registry.CodeRuntimeAtCapacity},
	{registry.CodeIdempotencyKeyReused, registry.CodeIdempotencyKeyReused},
	{registry.CodeNotFound, registry.CodeInternal},
	{registry.CodePayloadTooLarge, registry.CodeInternal},
	{registry.CodeMethodNotAllowed, registry.CodeInternal},
	{registry.CodeUnknownRuntime, registry.CodeInternal},
	{registry.CodeUnknownHost, registry.CodeInternal},
	{registry.CodeInvalidIdentifier, registry.CodeInternal},
	{registry.CodeUnauthenticated, registry.CodeInternal},
	{registry.CodeTooManyStreams, registry.CodeInternal},
	{registry.CodeInternal, registry.CodeInternal},
	{registry.Code("made_up " + registrytest.HostileURL), registry.CodeInternal},
}

func TestHostileSourceErrorsAreSanitised(t *testing.T) {
	type call struct {
		name   string
		method registrytest.Method
		worker registry.WorkerID
		host   registry.HostID
		do     func(ctx context.Context, r *registry.Registry) error
	}
	calls := []call{
		{"Runtime", registrytest.MethodSummary, "", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.Runtime(ctx, "runtime-a")
			return err
		}},
		{"RuntimeHosts", registrytest.MethodHosts, "", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.RuntimeHosts(ctx, "runtime-a")
			return err
		}},
		{"RuntimeWorkers", registrytest.MethodWorkers, "", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.RuntimeWorkers(ctx, "runtime-a", 0, "")
			return err
		}},
		{"HostWorkers", registrytest.MethodWorkers, "", "host-runtime-a", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.HostWorkers(ctx, "host-runtime-a")
			return err
		}},
		{"Worker", registrytest.MethodWorker, "w1", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.Worker(ctx, ref("runtime-a", "w1"))
			return err
		}},
		{"CreateWorker", registrytest.MethodCreateWorker, "", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.CreateWorker(ctx, "runtime-a", registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}})
			return err
		}},
		{"SendInput", registrytest.MethodSendInput, "w1", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.SendInput(ctx, ref("runtime-a", "w1"), registry.WorkerInput{Kind: registry.InputUser, Content: "x"})
			return err
		}},
		{"StopWorker", registrytest.MethodStopWorker, "w1", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.StopWorker(ctx, ref("runtime-a", "w1"), registry.StopForce)
			return err
		}},
		{"Transcript", registrytest.MethodTranscript, "w1", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.Transcript(ctx, ref("runtime-a", "w1"), registry.TranscriptQuery{})
			return err
		}},
		{"Profiles", registrytest.MethodProfiles, "", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.Profiles(ctx, "runtime-a")
			return err
		}},
		{"Events", registrytest.MethodEvents, "", "", func(ctx context.Context, r *registry.Registry) error {
			_, err := r.Events(ctx, "runtime-a", registry.EventQuery{})
			return err
		}},
	}
	hostileErrs := map[string]func(registry.Code) error{
		"typed": registrytest.HostileError,
		"wrapped": func(c registry.Code) error {
			return fmt.Errorf("upstream %s: %w", registrytest.HostileURL, registrytest.HostileError(c))
		},
	}
	for _, c := range calls {
		for _, sc := range sourceCodes {
			for kind, mk := range hostileErrs {
				t.Run(c.name+"/"+kind+"/"+string(sc.code)[:min(len(sc.code), 20)], func(t *testing.T) {
					src := registrytest.New("runtime-a", "w1")
					src.FailWith(mk(sc.code), c.method)
					var logs bytes.Buffer
					r := mustRegistry(t, registry.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, registrytest.Full{Source: src})
					err := c.do(t.Context(), r)
					checkSanitised(t, err, sc.want, c.worker, c.host)
					if registrytest.Leaks(logs.String()) {
						t.Errorf("the log leaks: %s", logs.String())
					}
				})
			}
		}
		t.Run(c.name+"/untyped", func(t *testing.T) {
			src := registrytest.New("runtime-a", "w1")
			src.FailWith(errors.New("GET "+registrytest.HostileURL+" token="+registrytest.HostileToken), c.method)
			r := mustRegistry(t, registry.Options{}, registrytest.Full{Source: src})
			checkSanitised(t, c.do(t.Context(), r), registry.CodeInternal, c.worker, c.host)
		})
	}
}

// checkSanitised fails unless err has code want, the routed ids, and no
// hostile text anywhere in its chain.
func checkSanitised(t *testing.T, err error, want registry.Code, worker registry.WorkerID, host registry.HostID) {
	t.Helper()
	var e *registry.Error
	if !errors.As(err, &e) {
		t.Fatalf("err %v (%T) is not a *registry.Error", err, err)
	}
	if e.Code != want {
		t.Errorf("code %s, want %s", e.Code, want)
	}
	if e.RuntimeID != "runtime-a" || (e.WorkerID != "" && e.WorkerID != worker) || e.HostID != host {
		t.Errorf("ids (%q, %q, %q), want runtime-a, %q or none, %q", e.RuntimeID, e.WorkerID, e.HostID, worker, host)
	}
	if e.Field != "" && (want != registry.CodeIdempotencyKeyReused || e.Field != "Idempotency-Key") {
		t.Errorf("field %q kept from a hostile source", e.Field)
	}
	for c := error(e); c != nil; c = errors.Unwrap(c) {
		if registrytest.Leaks(c.Error()) {
			t.Errorf("the error chain leaks: %q", c.Error())
		}
	}
	if e.Detail == "" || registrytest.Leaks(e.Detail) {
		t.Errorf("detail %q", e.Detail)
	}
	if errors.Is(err, registry.ErrUnknownRuntime) && want != registry.CodeUnknownRuntime {
		t.Errorf("the chain still matches the source's code")
	}
}

func TestSourceInvalidRequestKeepsOnlyKnownFields(t *testing.T) {
	for _, tc := range []struct{ field, want string }{
		{"profile", "profile"},
		{"content", "content"},
		{"intent.kind", "intent.kind"},
		{registrytest.HostileURL, ""},
		{"data_dir", ""},
		{"", ""},
	} {
		t.Run(tc.field, func(t *testing.T) {
			src := registrytest.New("runtime-a")
			src.FailWith(&registry.Error{Code: registry.CodeInvalidRequest, Field: tc.field, Detail: "at " + registrytest.HostileURL},
				registrytest.MethodCreateWorker)
			r := mustRegistry(t, registry.Options{}, registrytest.Creator{Source: src})
			_, err := r.CreateWorker(t.Context(), "runtime-a", registry.CreateWorkerRequest{Profile: "nope"})
			var e *registry.Error
			if !errors.As(err, &e) || e.Code != registry.CodeInvalidRequest || e.Field != tc.want {
				t.Fatalf("err %+v, want invalid_request on %q", err, tc.want)
			}
			if registrytest.Leaks(e.Error()) {
				t.Errorf("detail leaks: %q", e.Error())
			}
		})
	}
}

func TestCollectStopsOnASourceThatIgnoresAfter(t *testing.T) {
	hideFirstThree := registry.VisibilityFunc(func(_ context.Context, w registry.Worker) bool { return w.ID > "a0002" })
	src := registrytest.New("runtime-a", workerIDs(10, "a")...)
	src.IgnoreAfter()
	r := mustRegistry(t, registry.Options{Visibility: hideFirstThree, MaxRecords: 5}, src)
	ctx := t.Context()

	var merged, host, paged registry.List[registry.Worker]
	var hostErr, pagedErr error
	within(t, hangGuard, "the lists", func() {
		merged = r.Workers(ctx)
		host, hostErr = r.HostWorkers(ctx, src.HostID())
		paged, pagedErr = r.RuntimeWorkers(ctx, "runtime-a", 5, "")
	})
	if hostErr != nil || pagedErr != nil {
		t.Fatalf("errors %v %v", hostErr, pagedErr)
	}
	for name, l := range map[string]registry.List[registry.Worker]{"merged": merged, "host": host, "paged": paged} {
		ids := make([]registry.WorkerID, len(l.Items))
		for i, w := range l.Items {
			ids[i] = w.ID
		}
		if !slices.Equal(ids, []registry.WorkerID{"a0003", "a0004"}) {
			t.Errorf("%s: %v, want the visible workers of the first page once", name, ids)
		}
		if !hasDiagnostic(l.Diagnostics, "runtime_paging_inconsistent") {
			t.Errorf("%s: no diagnostic says the runtime misbehaved: %+v", name, l.Diagnostics)
		}
	}
	// Without a policy: the cursor of the first page leads to an empty last
	// page instead of the same page again and again.
	plain := mustRegistry(t, registry.Options{}, src)
	list, err := plain.RuntimeWorkers(ctx, "runtime-a", 2, "")
	if err != nil || len(list.Items) != 2 || list.NextCursor == "" {
		t.Fatalf("first page: %v %+v", err, list)
	}
	within(t, hangGuard, "the next page", func() { list, err = plain.RuntimeWorkers(ctx, "runtime-a", 2, list.NextCursor) })
	if err != nil || len(list.Items) != 0 || list.NextCursor != "" {
		t.Errorf("a page after the repeated one: %v %+v", err, list)
	}
}

func TestCollectReadsABoundedNumberOfPages(t *testing.T) {
	const n = 500
	src := registrytest.New("runtime-a", workerIDs(n, "w")...)
	var pages int
	var mu sync.Mutex
	src.SetHook(func(_ context.Context, m registrytest.Method) error {
		if m == registrytest.MethodWorkers {
			mu.Lock()
			pages++
			mu.Unlock()
		}
		return nil
	})
	last := registry.WorkerID(fmt.Sprintf("w%04d", n-1))
	onlyLast := registry.VisibilityFunc(func(_ context.Context, w registry.Worker) bool { return w.ID == last })
	r := mustRegistry(t, registry.Options{Visibility: onlyLast}, src)

	// Every page of limit 1 is cut short; paging on still finds the one
	// visible Worker exactly once.
	var seen []registry.WorkerID
	cursor := ""
	for i := 0; ; i++ {
		if i > n {
			t.Fatal("paging does not end")
		}
		mu.Lock()
		pages = 0
		mu.Unlock()
		list, err := r.RuntimeWorkers(t.Context(), "runtime-a", 1, cursor)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if pages > 64 {
			t.Fatalf("one call read %d pages", pages)
		}
		mu.Unlock()
		for _, w := range list.Items {
			seen = append(seen, w.ID)
		}
		if list.NextCursor == "" {
			break
		}
		cursor = list.NextCursor
	}
	if !slices.Equal(seen, []registry.WorkerID{last}) {
		t.Errorf("paged %v, want only %s", seen, last)
	}
	// A merged list that gave up paging says it is cut.
	one := mustRegistry(t, registry.Options{Visibility: onlyLast, MaxRecords: 1}, src)
	if l := one.Workers(t.Context()); len(l.Items) != 0 || !hasDiagnostic(l.Diagnostics, "list_truncated") {
		t.Errorf("merged list %+v", l)
	}
	if l := r.Workers(t.Context()); len(l.Items) != 1 || hasDiagnostic(l.Diagnostics, "list_truncated") {
		t.Errorf("merged list with room %+v", l)
	}
}

func TestListTruncatedOnlyWhenMoreExists(t *testing.T) {
	type sizes []int // workers per source, in order
	tests := []struct {
		name     string
		cap      int
		workers  sizes
		wantLen  int
		wantMore bool
	}{
		{"cap reached exactly by one source", 4, sizes{4}, 4, false},
		{"cap reached exactly, then an empty source", 4, sizes{4, 0}, 4, false},
		{"cap reached exactly by two", 4, sizes{2, 2}, 4, false},
		{"one over across two", 4, sizes{3, 2}, 4, true},
		{"one over in one", 4, sizes{5}, 4, true},
		{"cap reached, then one more behind an empty one", 4, sizes{4, 0, 1}, 4, true},
		{"under the cap", 4, sizes{1, 1}, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sources []registry.Source
			for i, n := range tc.workers {
				sources = append(sources, registrytest.New(registry.RuntimeID(fmt.Sprintf("runtime-%d", i)), workerIDs(n, "w")...))
			}
			r := mustRegistry(t, registry.Options{MaxRecords: tc.cap}, sources...)
			l := r.Workers(t.Context())
			if len(l.Items) != tc.wantLen || hasDiagnostic(l.Diagnostics, "list_truncated") != tc.wantMore {
				t.Errorf("Workers: %d items, diagnostics %+v; want %d, truncated %v", len(l.Items), l.Diagnostics, tc.wantLen, tc.wantMore)
			}
		})
	}

	// Hosts and Runtimes: one host per source.
	for _, tc := range []struct {
		name     string
		cap      int
		sources  int
		failLast bool
		wantMore bool
	}{
		{"as many as the cap", 2, 2, false, false},
		{"one more than the cap", 2, 3, false, true},
		{"fewer", 2, 1, false, false},
		{"cap reached, then a failing source", 2, 3, true, false},
	} {
		t.Run("hosts and runtimes "+tc.name, func(t *testing.T) {
			var sources []registry.Source
			for i := range tc.sources {
				s := registrytest.New(registry.RuntimeID(fmt.Sprintf("runtime-%d", i)))
				if tc.failLast && i == tc.sources-1 {
					s.FailWith(registry.RuntimeUnavailable(s.RuntimeID(), "", nil), registrytest.MethodHosts)
				}
				sources = append(sources, s)
			}
			r := mustRegistry(t, registry.Options{MaxRecords: tc.cap}, sources...)
			hosts := r.Hosts(t.Context())
			if len(hosts.Items) != min(tc.cap, tc.sources) || hasDiagnostic(hosts.Diagnostics, "list_truncated") != tc.wantMore {
				t.Errorf("Hosts: %d items, diagnostics %+v", len(hosts.Items), hosts.Diagnostics)
			}
			if !tc.failLast {
				runtimes := r.Runtimes(t.Context())
				if len(runtimes.Items) != min(tc.cap, tc.sources) || hasDiagnostic(runtimes.Diagnostics, "list_truncated") != tc.wantMore {
					t.Errorf("Runtimes: %d items, diagnostics %+v", len(runtimes.Items), runtimes.Diagnostics)
				}
			}
		})
	}

	// HostWorkers: one host.
	for _, n := range []int{3, 4} {
		r := mustRegistry(t, registry.Options{MaxRecords: 3}, registrytest.New("runtime-a", workerIDs(n, "w")...))
		l, err := r.HostWorkers(t.Context(), "host-runtime-a")
		if err != nil || len(l.Items) != 3 || hasDiagnostic(l.Diagnostics, "list_truncated") != (n > 3) {
			t.Errorf("HostWorkers with %d workers: %v %d items %+v", n, err, len(l.Items), l.Diagnostics)
		}
	}
}

func TestCapabilitiesAreDerivedFromWhatIsImplemented(t *testing.T) {
	type flags struct{ spawn, input, stop, transcript, events bool }
	tests := []struct {
		name   string
		wrap   func(*registrytest.Source) registry.Source
		impl   flags
		claims bool
	}{
		{"read core only", func(s *registrytest.Source) registry.Source { return s }, flags{}, true},
		{"creator", func(s *registrytest.Source) registry.Source { return registrytest.Creator{Source: s} }, flags{spawn: true}, true},
		{"input sender", func(s *registrytest.Source) registry.Source { return registrytest.InputSender{Source: s} }, flags{input: true}, true},
		{"stopper", func(s *registrytest.Source) registry.Source { return registrytest.Stopper{Source: s} }, flags{stop: true}, true},
		{"transcript reader", func(s *registrytest.Source) registry.Source { return registrytest.TranscriptReader{Source: s} }, flags{transcript: true}, true},
		{"event streamer", func(s *registrytest.Source) registry.Source { return registrytest.EventStreamer{Source: s} }, flags{events: true}, true},
		{"profile lister", func(s *registrytest.Source) registry.Source { return registrytest.ProfileLister{Source: s} }, flags{}, true},
		{"full", func(s *registrytest.Source) registry.Source { return registrytest.Full{Source: s} }, flags{true, true, true, true, true}, true},
		{"full but claiming nothing", func(s *registrytest.Source) registry.Source { return registrytest.Full{Source: s} }, flags{true, true, true, true, true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := flags{}
			if tc.claims {
				want = tc.impl
			}
			src := registrytest.New("runtime-a")
			w := registrytest.NewWorker("runtime-a", src.HostID(), "w1")
			if !tc.claims {
				src.SetCapabilities(registry.Capabilities{CanListWorkers: true, LocalPodInspection: registry.InspectionUnavailable,
					WorkspaceScope: registry.WorkspaceScopeCurrent, OS: "linux", Arch: "amd64"})
				w.Capabilities = registry.WorkerCapabilities{CanGetWorker: true}
			}
			src.Put(w)
			r := mustRegistry(t, registry.Options{}, tc.wrap(src))
			ctx := t.Context()

			sum, err := r.Runtime(ctx, "runtime-a")
			if err != nil {
				t.Fatal(err)
			}
			hosts, err := r.RuntimeHosts(ctx, "runtime-a")
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]registry.Capabilities{
				"runtime": sum.Capabilities, "merged runtime": r.Runtimes(ctx).Items[0].Capabilities,
				"host": hosts.Items[0].Capabilities, "merged host": r.Hosts(ctx).Items[0].Capabilities,
			} {
				got := flags{c.CanSpawnWorker, c.CanAcceptInput, c.CanStopWorker, c.CanReadBoundedTranscript, c.CanStreamEvents}
				if got != want {
					t.Errorf("%s flags %+v, want %+v", name, got, want)
				}
			}
			one, err := r.Worker(ctx, ref("runtime-a", "w1"))
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]registry.WorkerCapabilities{
				"worker": one.Capabilities, "merged worker": r.Workers(ctx).Items[0].Capabilities,
			} {
				got := flags{false, c.CanAcceptInput, c.CanStopWorker, c.CanReadBoundedTranscript, c.CanStreamEvents}
				wantWorker := want
				wantWorker.spawn = false
				if got != wantWorker || c.CanStop != c.CanStopWorker || c.CanSpawnFollowup {
					t.Errorf("%s flags %+v (can_stop %v, follow-up %v), want %+v", name, got, c.CanStop, c.CanSpawnFollowup, wantWorker)
				}
			}

			// What is not implemented is operation_unsupported, and the
			// Source is never asked.
			_, errCreate := r.CreateWorker(ctx, "runtime-a", registry.CreateWorkerRequest{})
			_, errInput := r.SendInput(ctx, ref("runtime-a", "w1"), registry.WorkerInput{Kind: registry.InputUser, Content: "x"})
			_, errStop := r.StopWorker(ctx, ref("runtime-a", "w1"), registry.StopForce)
			wantCalls := 0
			for op, pair := range map[string]struct {
				err         error
				implemented bool
			}{"create": {errCreate, tc.impl.spawn}, "input": {errInput, tc.impl.input}, "stop": {errStop, tc.impl.stop}} {
				if unsupported := errors.Is(pair.err, registry.ErrOperationUnsupported); unsupported == pair.implemented {
					t.Errorf("%s: err %v, implemented %v", op, pair.err, pair.implemented)
				}
				if pair.implemented {
					wantCalls++
				}
			}
			if len(src.Calls()) != wantCalls {
				t.Errorf("the source was asked %v, want %d calls", src.Calls(), wantCalls)
			}
		})
	}
}

func TestEventsAreRoutedAndSanitised(t *testing.T) {
	src := registrytest.New("runtime-a", "w1")
	r := mustRegistry(t, registry.Options{}, registrytest.Full{Source: src})
	ctx := t.Context()
	stream, err := r.Events(ctx, "runtime-a", registry.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()

	w := registrytest.NewWorker(registrytest.HostileRuntime, src.HostID(), "w2")
	src.Emit(registry.Event{Kind: registry.EventWorkerUpserted, Ref: w.Ref(), Worker: w})
	src.Emit(registry.Event{Kind: registry.EventResync, Reason: registrytest.HostileURL})
	var got []registry.Event
	within(t, hangGuard, "Next", func() {
		for range 2 {
			ev, err := stream.Next(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			got = append(got, ev)
		}
	})
	if len(got) != 2 {
		t.Fatalf("events %+v", got)
	}
	if got[0].Ref.RuntimeID != "runtime-a" || got[0].Worker.RuntimeID != "runtime-a" || got[0].Ref.WorkerID != "w2" {
		t.Errorf("upsert not routed: %+v", got[0])
	}
	if got[1].Kind != registry.EventResync || got[1].Reason != registry.ResyncSourceRestarted {
		t.Errorf("resync %+v", got[1])
	}
}

// An operation on a Source that implements it is routed without a lookup
// first when the policy is the default one (a remote Runtime is asked once,
// not twice); a custom policy, or an operation the Source lacks, looks the
// Worker up first.
func TestOperationsSkipTheLookupOnlyWhenNothingCanHide(t *testing.T) {
	tests := []struct {
		name        string
		policy      registry.VisibilityPolicy
		full        bool
		wantLookups int
	}{
		{"default policy, implemented", nil, true, 0},
		{"custom policy, implemented", registry.VisibilityFunc(func(context.Context, registry.Worker) bool { return true }), true, 3},
		{"default policy, unsupported", nil, false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := registrytest.New("runtime-a", "w1")
			var lookups int
			var mu sync.Mutex
			src.SetHook(func(_ context.Context, m registrytest.Method) error {
				if m == registrytest.MethodWorker {
					mu.Lock()
					lookups++
					mu.Unlock()
				}
				return nil
			})
			var s registry.Source = src
			if tt.full {
				s = registrytest.Full{Source: src}
			}
			r, err := registry.New(registry.Options{Visibility: tt.policy, Auditor: registry.Auditors{}}, s)
			if err != nil {
				t.Fatal(err)
			}
			ref := registry.WorkerRef{RuntimeID: "runtime-a", WorkerID: "w1"}
			_, _ = r.SendInput(t.Context(), ref, registry.WorkerInput{Kind: registry.InputUser, Content: "hi"})
			_, _ = r.StopWorker(t.Context(), ref, registry.StopGraceful)
			_, _ = r.Transcript(t.Context(), ref, registry.TranscriptQuery{})
			if lookups != tt.wantLookups {
				t.Errorf("Worker looked up %d times, want %d", lookups, tt.wantLookups)
			}
			// An unknown worker is unknown either way.
			unknown := registry.WorkerRef{RuntimeID: "runtime-a", WorkerID: "nope"}
			if _, err := r.SendInput(t.Context(), unknown, registry.WorkerInput{Kind: registry.InputUser, Content: "hi"}); !errors.Is(err, registry.ErrUnknownWorker) {
				t.Errorf("input to an unknown worker: %v, want unknown_worker", err)
			}
		})
	}
}
