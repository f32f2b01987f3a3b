package runtimehttp_test

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
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/api"
	"github.com/workspace-backend/runtime-registry/internal/contract"
	"github.com/workspace-backend/runtime-registry/internal/runtimehttp"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/wrlocal"
)

const token = "tok-test"

type fixture struct {
	url      string
	shutdown chan struct{}
	chk      *contract.ResponseChecker
	log      *testproc.Buffer
}

// newFixture serves a real Runtime (SQLite store, process executor) of at
// most one live worker, with one event stream at most and quick heartbeats.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	prof := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(prof, []byte(testproc.Profiles), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testproc.Buffer{}
	rt, err := wrlocal.Open(t.Context(), wrlocal.Config{StateDir: filepath.Join(dir, "state"), ProfilesFile: prof,
		WorkspaceRoot: dir, MaxWorkers: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{shutdown: make(chan struct{}), log: logs}
	e, err := runtimehttp.NewServer(rt, runtimehttp.Options{Token: token, Label: "T", Version: "test",
		MaxStreams: 1, Heartbeat: 20 * time.Millisecond, Shutdown: f.shutdown,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	f.url = srv.URL
	doc, err := api.LoadWorkerRuntime()
	if err != nil {
		t.Fatal(err)
	}
	if f.chk, err = contract.NewResponseChecker(doc); err != nil {
		t.Fatal(err)
	}
	return f
}

type answer struct {
	status int
	body   map[string]any
}

func (f *fixture) do(t *testing.T, method, path, body string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	check, _ := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if body != "" {
		check.Header.Set("Content-Type", "application/json")
	}
	if err := f.chk.Check(t.Context(), check, resp.StatusCode, resp.Header, raw); err != nil {
		t.Errorf("%s %s: the answer breaks the contract: %v", method, path, err)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return answer{resp.StatusCode, m}
}

func (a answer) code() string { s, _ := a.body["code"].(string); return s }

func TestErrorsAreProblems(t *testing.T) {
	f := newFixture(t)
	a := f.do(t, "POST", "/v1/workers", `{"intent":{"kind":"task","objective":"x"}}`, "Idempotency-Key", "k1")
	if a.status != 202 {
		t.Fatalf("create: %d %v", a.status, a.body)
	}
	id := a.body["worker_id"].(string)
	big := strings.Repeat("x", 70<<10)
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"at capacity", "POST", "/v1/workers", `{"intent":{"kind":"task"}}`, nil, 409, "runtime_at_capacity"},
		{"same key, same body", "POST", "/v1/workers", `{"intent":{"kind":"task","objective":"x"}}`, []string{"Idempotency-Key", "k1"}, 202, ""},
		{"same key, other body", "POST", "/v1/workers", `{"intent":{"kind":"role"}}`, []string{"Idempotency-Key", "k1"}, 422, "idempotency_key_reused"},
		{"bad key", "POST", "/v1/workers", `{"intent":{"kind":"role"}}`, []string{"Idempotency-Key", "a b"}, 400, "invalid_request"},
		{"input too long", "POST", "/v1/workers/" + id + "/input", `{"kind":"user","content":"` + big + `"}`, nil, 400, "invalid_request"},
		{"body too large", "POST", "/v1/workers/" + id + "/input", `{"kind":"user","content":"` + strings.Repeat("y", 2<<20) + `"}`, nil, 413, "payload_too_large"},
		{"bad stop mode", "POST", "/v1/workers/" + id + "/stop", `{"mode":"now"}`, nil, 400, "invalid_request"},
		{"bad limit", "GET", "/v1/workers?limit=0", "", nil, 400, "invalid_request"},
		{"bad cursor", "GET", "/v1/workers?cursor=a%20b", "", nil, 400, "invalid_request"},
		{"method not allowed", "DELETE", "/v1/workers/" + id, "", nil, 405, "method_not_allowed"},
		{"unknown transcript", "GET", "/v1/workers/nope/transcript", "", nil, 404, "unknown_worker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, tc.method, tc.path, tc.body, tc.hdr...)
			if a.status != tc.status || a.code() != tc.code {
				t.Fatalf("%d %v, want %d %s", a.status, a.body, tc.status, tc.code)
			}
			if tc.name == "same key, same body" && a.body["worker_id"] != id {
				t.Fatalf("the same key answered another worker: %v", a.body)
			}
		})
	}
	// Stop is idempotent; input to a stopped worker is worker_not_running.
	for range 2 {
		if a := f.do(t, "POST", "/v1/workers/"+id+"/stop", `{"mode":"force"}`); a.status != 202 {
			t.Fatalf("stop: %d %v", a.status, a.body)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.do(t, "GET", "/v1/workers/"+id, "").body["state"] != "stopped" {
		if time.Now().After(deadline) {
			t.Fatal("never stopped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a := f.do(t, "POST", "/v1/workers/"+id+"/input", `{"kind":"user","content":"late"}`); a.status != 409 || a.code() != "worker_not_running" {
		t.Fatalf("input to a stopped worker: %d %v", a.status, a.body)
	}
	if strings.Contains(f.log.String(), big[:100]) || strings.Contains(f.log.String(), token) {
		t.Fatal("the log holds input content or the token")
	}
}

// Streams: `: ok` first, heartbeats, the limit, and the end at shutdown
// (after which the runtime reports itself degraded).
func TestEventStreams(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.url+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != ": ok\n" {
		t.Fatalf("first line %q", line)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ": heartbeat\n" {
			break
		}
	}
	if a := f.do(t, "GET", "/v1/events", ""); a.status != 503 || a.code() != "too_many_streams" {
		t.Fatalf("second stream: %d %v", a.status, a.body)
	}
	close(f.shutdown)
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, br); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not end at shutdown")
	}
	if a := f.do(t, "GET", "/v1/runtime", ""); a.body["status"] != "degraded" {
		t.Fatalf("runtime after shutdown: %v", a.body)
	}
}
