package remote_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/remote"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testproc.MainWithBinary(m, "remote-test-", &bin)) }

// countingTransport counts the requests that reach the network.
type countingTransport struct {
	n  atomic.Int64
	rt http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

type backend struct {
	url     string
	log     *testproc.Buffer
	sources map[registry.RuntimeID]*remote.Source
	counts  map[registry.RuntimeID]*countingTransport
}

type remoteSpec struct {
	id, url, token string
	timeout        time.Duration
}

// newBackend serves the browser API over the given remote runtimes (and
// the local compatibility source without data) with fast probes.
func newBackend(t testing.TB, specs ...remoteSpec) *backend {
	t.Helper()
	b := &backend{log: &testproc.Buffer{}, sources: map[registry.RuntimeID]*remote.Source{}, counts: map[registry.RuntimeID]*countingTransport{}}
	log := slog.New(slog.NewJSONHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	local := compat.New(compat.Config{WorkspaceID: "ws", WorkspaceRoot: t.TempDir(), Logger: log})
	sources := []registry.Source{local}
	for _, sp := range specs {
		rc, err := remote.NewRuntimeConfig(sp.id, "Remote "+sp.id, sp.url, sp.token, sp.timeout)
		if err != nil {
			t.Fatal(err)
		}
		ct := &countingTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
		s := remote.New(rc, remote.Options{Logger: log, ProbeInterval: 150 * time.Millisecond, Transport: ct, HostID: compat.Bounded})
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		b.sources[rc.ID] = s
		b.counts[rc.ID] = ct
		sources = append(sources, s)
	}
	reg, err := registry.New(registry.Options{WorkspaceID: "ws", Auditor: registry.SlogAuditor{Logger: log}}, sources...)
	if err != nil {
		t.Fatal(err)
	}
	e, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

type answer struct {
	status int
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("not JSON: %s", a.body)
	}
	return m
}

func (a answer) code() string {
	var p struct{ Code string }
	_ = json.Unmarshal(a.body, &p)
	return p.Code
}

// answers collects every browser answer of a test, for the canary sweep.
var answers struct {
	mu  sync.Mutex
	all []string
}

func do(t *testing.T, method, url, body string, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	answers.mu.Lock()
	answers.all = append(answers.all, string(b))
	answers.mu.Unlock()
	return answer{resp.StatusCode, b}
}

func create(t *testing.T, b *backend, rt string, hdr ...string) string {
	t.Helper()
	a := do(t, "POST", b.url+"/api/runtimes/"+rt+"/workers", `{"intent":{"kind":"task","objective":"t"},"profile":"echo"}`, hdr...)
	if a.status != 202 {
		t.Fatalf("create on %s: %d %s", rt, a.status, a.body)
	}
	return a.json(t)["worker_id"].(string)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func workerState(t *testing.T, b *backend, rt, id string) (string, string) {
	a := do(t, "GET", b.url+"/api/runtimes/"+rt+"/workers/"+id, "")
	if a.status != 200 {
		return "", a.code()
	}
	m := a.json(t)
	return m["state"].(string), m["status"].(string)
}

// sseEvent is one event read from a browser stream.
type sseEvent struct{ id, kind, data string }

type sseClient struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

func openEvents(t *testing.T, url string, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // the stream's close (a cleanup) closes it
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		cancel()
		t.Fatalf("events: %d %s", resp.StatusCode, b)
	}
	c := &sseClient{resp: resp, events: make(chan sseEvent, 1024), cancel: cancel}
	go func() {
		defer close(c.events)
		br := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev.kind != "" {
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() { c.cancel(); _ = c.resp.Body.Close() }

// next waits for the next event that satisfies keep (hang guard only).
func (c *sseClient) next(t *testing.T, keep func(sseEvent) bool) sseEvent {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if keep(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("no event in time")
		}
	}
}

// The remote source against two real worker-runtime processes, through
// the backend: listing, create, input, transcript, events, stop.
func TestRemoteThroughBackend(t *testing.T) {
	p1 := testproc.Start(t, bin, testproc.Options{})
	p2 := testproc.Start(t, bin, testproc.Options{})
	b := newBackend(t, remoteSpec{id: "rt-1", url: p1.URL, token: p1.Token}, remoteSpec{id: "rt-2", url: p2.URL, token: p2.Token})

	a := do(t, "GET", b.url+"/api/runtimes", "")
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var list struct {
		Items []struct {
			RuntimeID    string                `json:"runtime_id"`
			Kind         string                `json:"kind"`
			Status       string                `json:"status"`
			HostIDs      []string              `json:"host_ids"`
			Source       struct{ Kind string } `json:"source"`
			Capabilities struct {
				MaxWorkers     *int `json:"max_workers"`
				CanSpawnWorker bool `json:"can_spawn_worker"`
			} `json:"capabilities"`
		} `json:"items"`
	}
	_ = json.Unmarshal(a.body, &list)
	if len(list.Items) != 3 {
		t.Fatalf("runtimes: %s", a.body)
	}
	for _, it := range list.Items[1:] {
		if it.Kind != remote.RuntimeKind || it.Source.Kind != "remote_http" || it.Status != "available" ||
			it.Capabilities.MaxWorkers == nil || *it.Capabilities.MaxWorkers != 64 || !it.Capabilities.CanSpawnWorker ||
			len(it.HostIDs) != 1 || it.HostIDs[0] != compat.Bounded("remote-", it.RuntimeID) {
			t.Fatalf("remote runtime projected wrongly: %+v", it)
		}
	}

	ev := openEvents(t, b.url+"/api/runtimes/rt-1/events", "")
	id := create(t, b, "rt-1")
	upserted := ev.next(t, func(e sseEvent) bool { return e.kind == "worker_upserted" && strings.Contains(e.data, id) })
	if !strings.Contains(upserted.data, `"runtime_id":"rt-1"`) || !strings.Contains(upserted.data, `"remote_worker"`) {
		t.Fatalf("upserted event: %+v", upserted)
	}
	waitFor(t, "active", func() bool { s, _ := workerState(t, b, "rt-1", id); return s == "active" })

	a = do(t, "POST", b.url+"/api/runtimes/rt-1/workers/"+id+"/input", `{"kind":"user","content":"hello remote"}`)
	if a.status != 202 || a.json(t)["sequence"] == nil {
		t.Fatalf("input: %d %s", a.status, a.body)
	}
	echoed := ev.next(t, func(e sseEvent) bool {
		return e.kind == "transcript_appended" && strings.Contains(e.data, "echo: hello remote")
	})
	waitFor(t, "transcript", func() bool {
		a := do(t, "GET", b.url+"/api/runtimes/rt-1/workers/"+id+"/transcript", "")
		return a.status == 200 && strings.Contains(string(a.body), "echo: hello remote")
	})

	// Resume: a stream opened with the last event's id is replayed what
	// followed it, nothing before it and nothing twice.
	a = do(t, "POST", b.url+"/api/runtimes/rt-1/workers/"+id+"/input", `{"kind":"user","content":"second"}`)
	if a.status != 202 {
		t.Fatalf("input: %d %s", a.status, a.body)
	}
	ev.next(t, func(e sseEvent) bool { return strings.Contains(e.data, "echo: second") })
	resumed := openEvents(t, b.url+"/api/runtimes/rt-1/events", echoed.id)
	first := resumed.next(t, func(sseEvent) bool { return true })
	if strings.Contains(first.data, "hello remote") || first.kind == "resync" {
		t.Fatalf("resumed stream starts with %+v", first)
	}
	got := []string{first.data}
	for !strings.Contains(got[len(got)-1], "echo: second") {
		got = append(got, resumed.next(t, func(sseEvent) bool { return true }).data)
	}
	if n := strings.Count(strings.Join(got, "\n"), `"content":"second"`); n != 1 {
		t.Fatalf("the input event was replayed %d times: %v", n, got)
	}

	// Another backend (an empty relay) resumes the same cursor through a
	// catch-up read upstream, then joins its live stream.
	b2 := newBackend(t, remoteSpec{id: "rt-1", url: p1.URL, token: p1.Token})
	caught := openEvents(t, b2.url+"/api/runtimes/rt-1/events", echoed.id)
	got = nil
	for len(got) == 0 || !strings.Contains(got[len(got)-1], "echo: second") {
		e := caught.next(t, func(sseEvent) bool { return true })
		if e.kind == "resync" || strings.Contains(e.data, "hello remote") {
			t.Fatalf("catch-up delivered %+v", e)
		}
		got = append(got, e.data)
	}
	if n := strings.Count(strings.Join(got, "\n"), `"content":"second"`); n != 1 {
		t.Fatalf("the catch-up delivered the input %d times: %v", n, got)
	}
	later := create(t, b, "rt-1")
	caught.next(t, func(e sseEvent) bool { return e.kind == "worker_upserted" && strings.Contains(e.data, later) })

	// The worker list of rt-1 has it, rt-2's does not; the merged list has it once.
	if a := do(t, "GET", b.url+"/api/runtimes/rt-2/workers/"+id, ""); a.status != 404 || a.code() != "unknown_worker" {
		t.Fatalf("rt-2 answers rt-1's worker: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", b.url+"/api/workers", ""); strings.Count(string(a.body), id) != 1 {
		t.Fatalf("merged list: %s", a.body)
	}
	if a := do(t, "GET", b.url+"/api/runtimes/rt-1/profiles", ""); a.status != 200 || !strings.Contains(string(a.body), `"echo"`) {
		t.Fatalf("profiles: %d %s", a.status, a.body)
	}
	// Domain codes pass on with the registry's own text.
	if a := do(t, "POST", b.url+"/api/runtimes/rt-1/workers", `{"intent":{"kind":"task"},"profile":"nope"}`); a.status != 400 || a.code() != "invalid_request" || !strings.Contains(string(a.body), `"field":"profile"`) {
		t.Fatalf("unknown profile: %d %s", a.status, a.body)
	}

	a = do(t, "POST", b.url+"/api/runtimes/rt-1/workers/"+id+"/stop", `{"mode":"force"}`)
	if a.status != 202 {
		t.Fatalf("stop: %d %s", a.status, a.body)
	}
	waitFor(t, "stopped", func() bool { s, _ := workerState(t, b, "rt-1", id); return s == "stopped" })
	if a := do(t, "POST", b.url+"/api/runtimes/rt-1/workers/"+id+"/input", `{"kind":"user","content":"late"}`); a.status != 409 || a.code() != "worker_not_running" {
		t.Fatalf("input to stopped: %d %s", a.status, a.body)
	}
	canarySweep(t, b, p1, p2)
}

// Idempotent create: the same key answers the same worker; a create
// without a key still makes exactly one.
func TestIdempotentCreate(t *testing.T) {
	p := testproc.Start(t, bin, testproc.Options{})
	b := newBackend(t, remoteSpec{id: "rt", url: p.URL, token: p.Token})
	one := create(t, b, "rt", "Idempotency-Key", "key-1")
	two := create(t, b, "rt", "Idempotency-Key", "key-1")
	if one != two {
		t.Fatalf("the same key made two workers: %s %s", one, two)
	}
	a := do(t, "POST", b.url+"/api/runtimes/rt/workers", `{"intent":{"kind":"role","role":"x"}}`, "Idempotency-Key", "key-1")
	if a.status != 422 || a.code() != "idempotency_key_reused" {
		t.Fatalf("reused key: %d %s", a.status, a.body)
	}
	three := create(t, b, "rt")
	if three == one {
		t.Fatal("a create without a key answered an earlier worker")
	}
}

// The same worker_id in two runtimes (one store copied into another): each
// is reached only through its own runtime_id.
func TestSameWorkerIDInTwoRuntimes(t *testing.T) {
	stateA := filepath.Join(t.TempDir(), "a")
	p := testproc.Start(t, bin, testproc.Options{StateDir: stateA})
	b0 := newBackend(t, remoteSpec{id: "a", url: p.URL, token: p.Token})
	id := create(t, b0, "a")
	p.End(t)
	stateB := filepath.Join(t.TempDir(), "b")
	copyDir(t, stateA, stateB)
	pa := testproc.Start(t, bin, testproc.Options{StateDir: stateA})
	pb := testproc.Start(t, bin, testproc.Options{StateDir: stateB})
	b := newBackend(t, remoteSpec{id: "a", url: pa.URL, token: pa.Token}, remoteSpec{id: "b", url: pb.URL, token: pb.Token})
	for _, rt := range []string{"a", "b"} {
		a := do(t, "GET", b.url+"/api/runtimes/"+rt+"/workers/"+id, "")
		if a.status != 200 || a.json(t)["runtime_id"] != rt {
			t.Fatalf("%s: %d %s", rt, a.status, a.body)
		}
	}
	// A worker made in a after the copy exists only through a.
	fresh := create(t, b, "a")
	if a := do(t, "GET", b.url+"/api/runtimes/b/workers/"+fresh, ""); a.status != 404 {
		t.Fatalf("b answers a's new worker: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", b.url+"/api/workers", ""); strings.Count(string(a.body), `"worker_id":"`+id+`"`) != 2 {
		t.Fatalf("the merged list should hold the shared id twice (once per runtime): %s", a.body)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// canarySweep finds the runtimes' tokens and addresses in no browser answer
// and no backend log line.
func canarySweep(t *testing.T, b *backend, procs ...*testproc.Proc) {
	t.Helper()
	answers.mu.Lock()
	all := strings.Join(answers.all, "\n")
	answers.mu.Unlock()
	log := b.log.String()
	for _, p := range procs {
		for _, secret := range []string{p.Token, p.Addr, p.URL, p.StateDir} {
			if strings.Contains(all, secret) {
				t.Errorf("a browser answer holds %q", secret)
			}
			if strings.Contains(log, secret) {
				t.Errorf("the backend log holds %q", secret)
			}
		}
	}
	if log == "" {
		t.Error("the backend logged nothing: the sweep proved nothing")
	}
}

func unavailableDiag(t *testing.T, b *backend, rt string) string {
	a := do(t, "GET", b.url+"/api/runtimes/"+rt, "")
	m := a.json(t)
	if m["status"] != "unavailable" {
		return ""
	}
	diags, _ := m["diagnostics"].([]any)
	if len(diags) == 0 {
		return ""
	}
	return diags[0].(map[string]any)["code"].(string)
}

// A runtime stopped with SIGSTOP: its calls answer 503 (within the timeout,
// the hang guard says) while the other runtime is served; after the probes
// fail, calls fail fast without a request; SIGCONT brings it back.
func TestFaultStoppedRuntime(t *testing.T) {
	p1 := testproc.Start(t, bin, testproc.Options{})
	p2 := testproc.Start(t, bin, testproc.Options{})
	b := newBackend(t, remoteSpec{id: "slow", url: p1.URL, token: p1.Token, timeout: 700 * time.Millisecond},
		remoteSpec{id: "fine", url: p2.URL, token: p2.Token})
	id := create(t, b, "slow")
	p1.Stop(t, 10*time.Second)
	defer func() { _ = p1.Signal(syscall.SIGCONT) }()
	start := time.Now()
	a := do(t, "GET", b.url+"/api/runtimes/slow/workers/"+id, "")
	if a.status != 503 || a.code() != "runtime_unavailable" {
		t.Fatalf("stopped runtime: %d %s", a.status, a.body)
	}
	t.Logf("answered 503 after %s (timeout 700ms)", time.Since(start))
	if a := do(t, "GET", b.url+"/api/runtimes/fine/workers", ""); a.status != 200 {
		t.Fatalf("the other runtime: %d %s", a.status, a.body)
	}
	waitFor(t, "the timeout diagnostic", func() bool { return unavailableDiag(t, b, "slow") == remote.DiagTimeout })
	if a := do(t, "GET", b.url+"/api/workers", ""); a.status != 200 || !strings.Contains(string(a.body), "runtime_unavailable") {
		t.Fatalf("merged list with a stopped runtime: %d %s", a.status, a.body)
	}
	before := b.counts["slow"].n.Load()
	began := time.Now()
	// Calls fail fast: no request leaves for them, only the probes (one
	// per 150 ms) reach the network meanwhile.
	for range 20 {
		if a := do(t, "GET", b.url+"/api/runtimes/slow/workers/"+id, ""); a.status != 503 {
			t.Fatalf("fail fast: %d", a.status)
		}
	}
	probes := int64(time.Since(began)/(150*time.Millisecond)) + 2
	if sent := b.counts["slow"].n.Load() - before; sent > probes {
		t.Errorf("%d requests left during 20 fail-fast calls; the probes account for at most %d", sent, probes)
	}
	if err := p1.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recovery", func() bool { s, _ := workerState(t, b, "slow", id); return s != "" })
	canarySweep(t, b, p1, p2)
}

// A killed runtime: calls answer 503 unreachable and fail fast after the
// probes; restarted on the same store and address, its workers are back
// (the running one stopped:runtime_restart) with their transcripts.
func TestFaultKilledAndRestarted(t *testing.T) {
	p := testproc.Start(t, bin, testproc.Options{})
	b := newBackend(t, remoteSpec{id: "rt", url: p.URL, token: p.Token, timeout: 2 * time.Second})
	id := create(t, b, "rt")
	waitFor(t, "active", func() bool { s, _ := workerState(t, b, "rt", id); return s == "active" })
	if a := do(t, "POST", b.url+"/api/runtimes/rt/workers/"+id+"/input", `{"kind":"user","content":"kept"}`); a.status != 202 {
		t.Fatalf("input: %d %s", a.status, a.body)
	}
	waitFor(t, "echo", func() bool {
		a := do(t, "GET", b.url+"/api/runtimes/rt/workers/"+id+"/transcript", "")
		return strings.Contains(string(a.body), "echo: kept")
	})
	p.Kill(t)
	waitFor(t, "unreachable", func() bool { return unavailableDiag(t, b, "rt") == remote.DiagUnreachable })
	if a := do(t, "GET", b.url+"/api/runtimes/rt/workers/"+id, ""); a.status != 503 || a.code() != "runtime_unavailable" {
		t.Fatalf("killed: %d %s", a.status, a.body)
	}
	q := testproc.Start(t, bin, testproc.Options{StateDir: p.StateDir, Token: p.Token, Listen: p.Addr})
	waitFor(t, "back", func() bool { s, _ := workerState(t, b, "rt", id); return s == "stopped" })
	_, status := workerState(t, b, "rt", id)
	if status != "stopped:runtime_restart" {
		t.Fatalf("status %s, want stopped:runtime_restart", status)
	}
	a := do(t, "GET", b.url+"/api/runtimes/rt/workers/"+id+"/transcript", "")
	if !strings.Contains(string(a.body), `"kept"`) || !strings.Contains(string(a.body), "echo: kept") {
		t.Fatalf("transcript after restart: %s", a.body)
	}
	canarySweep(t, b, p, q)
}

// A wrong token: remote_runtime_auth_failed, 503, and nothing leaked.
func TestFaultWrongToken(t *testing.T) {
	p := testproc.Start(t, bin, testproc.Options{})
	b := newBackend(t, remoteSpec{id: "rt", url: p.URL, token: "tok-wrong-canary"})
	if d := unavailableDiag(t, b, "rt"); d != remote.DiagAuthFailed {
		t.Fatalf("diagnostic %q, want %s", d, remote.DiagAuthFailed)
	}
	if a := do(t, "GET", b.url+"/api/runtimes/rt/workers", ""); a.status != 503 || strings.Contains(string(a.body), "tok-wrong-canary") {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if strings.Contains(b.log.String(), "tok-wrong-canary") {
		t.Fatal("the backend log holds the token")
	}
	canarySweep(t, b, p)
}

// A runtime answering garbage or a 5xx: remote_runtime_bad_response, and
// its words never reach the browser.
func TestFaultBadResponses(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"instance_id": 12, "leak": "/srv/secret-canary"`)
		}},
		{"5xx", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(500)
			_, _ = io.WriteString(w, `{"code":"internal","detail":"/srv/secret-canary exploded"}`)
		}},
		{"html", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<h1>/srv/secret-canary</h1>`)
		}},
		{"foreign problem code", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/runtime" {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"instance_id":"i1","label":"x","version":"1","os":"linux","arch":"amd64","status":"available","profiles":[],"limits":{"max_workers":1,"max_input_bytes":1,"max_transcript_page":1},"counts":{"starting":0,"active":0,"stopping":0}}`)
				return
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"code":"unknown_runtime","runtime_id":"local-worker-runtime","detail":"/srv/secret-canary"}`)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			b := newBackend(t, remoteSpec{id: "rt", url: srv.URL, token: "tok-x"})
			a := do(t, "GET", b.url+"/api/runtimes/rt/workers/w1", "")
			if a.status != 503 || a.code() != "runtime_unavailable" || strings.Contains(string(a.body), "secret-canary") ||
				strings.Contains(string(a.body), "local-worker-runtime") {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if tc.name != "foreign problem code" {
				if d := unavailableDiag(t, b, "rt"); d != remote.DiagBadResponse {
					t.Fatalf("diagnostic %q", d)
				}
			}
			if strings.Contains(b.log.String(), "secret-canary") || strings.Contains(b.log.String(), srv.URL) {
				t.Fatal("the backend log holds the runtime's words or address")
			}
		})
	}
}

// A runtime whose store was replaced (a new instance_id at the same
// address): a browser resuming with an old cursor gets resync
// source_restarted, then live events.
func TestInstanceChangeResyncs(t *testing.T) {
	p := testproc.Start(t, bin, testproc.Options{})
	b := newBackend(t, remoteSpec{id: "rt", url: p.URL, token: p.Token, timeout: 2 * time.Second})
	ev := openEvents(t, b.url+"/api/runtimes/rt/events", "")
	id := create(t, b, "rt")
	old := ev.next(t, func(e sseEvent) bool { return e.kind == "worker_upserted" && strings.Contains(e.data, id) })
	ev.close()
	p.End(t)
	q := testproc.Start(t, bin, testproc.Options{Token: p.Token, Listen: p.Addr})
	waitFor(t, "the new instance", func() bool {
		a := do(t, "GET", b.url+"/api/runtimes/rt/workers/"+id, "")
		return a.status == 404
	})
	resumed := openEvents(t, b.url+"/api/runtimes/rt/events", old.id)
	first := resumed.next(t, func(sseEvent) bool { return true })
	if first.kind != "resync" || !strings.Contains(first.data, "source_restarted") {
		t.Fatalf("first event %+v, want resync source_restarted", first)
	}
	fresh := create(t, b, "rt")
	resumed.next(t, func(e sseEvent) bool { return e.kind == "worker_upserted" && strings.Contains(e.data, fresh) })
	canarySweep(t, b, p, q)
}
