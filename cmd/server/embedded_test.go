package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/embedded/embeddedtest"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

func TestParseRuntimeFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    runtimeConfig
		wantErr string
	}{
		{"defaults: no embedded runtime", nil, nil, runtimeConfig{MaxWorkers: 64, MaxStreams: 256}, ""},
		{"flags", []string{"--state-dir", "/s", "--profiles", "/p.yaml", "--max-workers", "3", "--max-streams", "9"}, nil,
			runtimeConfig{StateDir: "/s", Profiles: "/p.yaml", MaxWorkers: 3, MaxStreams: 9}, ""},
		{"environment", nil, map[string]string{"RUNTIME_REGISTRY_STATE_DIR": "/es", "RUNTIME_REGISTRY_PROFILES": "/ep",
			"RUNTIME_REGISTRY_MAX_WORKERS": "5", "RUNTIME_REGISTRY_MAX_STREAMS": "6"},
			runtimeConfig{StateDir: "/es", Profiles: "/ep", MaxWorkers: 5, MaxStreams: 6}, ""},
		{"state dir alone", []string{"--state-dir", "/s"}, nil, runtimeConfig{}, "--state-dir and --profiles go together"},
		{"profiles alone", nil, map[string]string{"RUNTIME_REGISTRY_PROFILES": "/p"}, runtimeConfig{}, "--state-dir and --profiles go together"},
		{"max-workers 0", []string{"--max-workers", "0"}, nil, runtimeConfig{}, "--max-workers must be 1 or more"},
		{"max-streams 0", []string{"--max-streams=0"}, nil, runtimeConfig{}, "--max-streams must be 1 or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Runtime != tt.want || got.Runtime.enabled() != (tt.want.StateDir != "") {
				t.Errorf("runtime config %+v %v, want %+v", got.Runtime, err, tt.want)
			}
		})
	}
}

// TestServerWithEmbeddedRuntime runs the real server with the embedded
// Runtime: an echo worker answers over HTTP and its event stream, the
// metrics show it, and shutting the server down ends the open stream and
// the worker's process.
func TestServerWithEmbeddedRuntime(t *testing.T) {
	dir := t.TempDir()
	profiles := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(profiles, []byte(embeddedtest.Profiles), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config{WorkspaceID: "local:run", WorkspaceRoot: dir, MaxRecords: 200,
		Runtime: runtimeConfig{StateDir: filepath.Join(dir, "state"), Profiles: profiles, MaxWorkers: 4, MaxStreams: 8}}
	cfg.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan net.Addr, 1), make(chan error, 1)
	logs := &testproc.Buffer{}
	go func() { done <- run(ctx, cfg, logs, ready) }()
	var base string
	select {
	case a := <-ready:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(watchdog):
		t.Fatal("server did not start")
	}
	client := &http.Client{Timeout: watchdog}
	post := func(path, body string) map[string]any {
		t.Helper()
		resp, err := client.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, out, err)
		}
		return out
	}

	// The stream is opened without a client timeout: it lives until the
	// server shuts down.
	streamCtx, streamCancel := context.WithCancel(context.Background())
	defer streamCancel()
	req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, base+"/api/runtimes/embedded-worker-runtime/events", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.Body.Close() }()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", stream.StatusCode)
	}
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		rd := bufio.NewScanner(stream.Body)
		rd.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for rd.Scan() {
			lines <- rd.Text()
		}
	}()
	waitLine := func(substr string) {
		t.Helper()
		deadline := time.After(watchdog)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the stream ended before %q", substr)
				}
				if strings.Contains(l, substr) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q on the stream", substr)
			}
		}
	}

	created := post("/api/runtimes/embedded-worker-runtime/workers", `{"intent":{"kind":"assistant"}}`)
	id, _ := created["worker_id"].(string)
	waitLine(`"worker_id":"` + id + `"`)
	waitLine(`"state":"active"`)
	post("/api/runtimes/embedded-worker-runtime/workers/"+id+"/input", `{"kind":"user","content":"ping"}`)
	waitLine(`"content":"echo: ping"`)

	wantMetrics := []string{
		`runtime_registry_embedded_workers{state="active"} 1`,
		"runtime_registry_embedded_processes_started_total 1",
		"runtime_registry_embedded_transcript_lines_total 2",
		"runtime_registry_event_streams_open 1",
		"runtime_registry_embedded_store_write_seconds_total",
		`runtime_registry_operations_total{operation="create_worker",outcome="ok",runtime="embedded-worker-runtime"} 1`,
	}
	// The counters move just after the event they count is streamed: poll
	// (hang guard only) until every one shows.
	var metrics []byte
	for deadline := time.Now().Add(watchdog); ; time.Sleep(10 * time.Millisecond) {
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		missing := slices.DeleteFunc(slices.Clone(wantMetrics), func(m string) bool { return bytes.Contains(metrics, []byte(m)) })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %v", missing)
		}
	}
	if bytes.Contains(metrics, []byte(id)) {
		t.Error("a worker id is a metric label")
	}

	// Shutdown: the open stream ends, the server returns, and the worker's
	// process has ended with it.
	cancel()
	deadline := time.After(watchdog)
drain:
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				break drain
			}
		case <-deadline:
			t.Fatal("the stream outlived the server")
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(watchdog):
		t.Fatal("the server did not stop")
	}
	if pids := embeddedtest.ProcessesOf([]string{id}); len(pids) > 0 {
		t.Errorf("worker processes outlived the server: %v", pids)
	}
	if !strings.Contains(logs.String(), "embedded worker runtime closed") {
		t.Error("the embedded runtime was not closed")
	}
	for _, secret := range []string{dir, cfg.Runtime.StateDir, profiles} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log names %s", secret)
		}
	}
}

func TestEmbeddedRuntimeStartupErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("profiles:\n  - name: x\n    bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config{Listen: "127.0.0.1:0", WorkspaceID: "local:x", WorkspaceRoot: dir, MaxRecords: 200,
		Runtime: runtimeConfig{StateDir: filepath.Join(dir, "s"), Profiles: bad, MaxWorkers: 1, MaxStreams: 1}}
	err := run(t.Context(), cfg, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "embedded worker runtime") {
		t.Errorf("a bad profiles file: %v", err)
	}
}

// TestStreamOutlivesServerTimeouts: an event stream is not cut by the
// server's read or write timeouts (a background read that times out would
// cancel the request's context).
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	dir := t.TempDir()
	profiles := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(profiles, []byte(embeddedtest.Profiles), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config{WorkspaceID: "local:run", WorkspaceRoot: dir, MaxRecords: 200, LogLevel: slog.LevelError,
		Timeouts: timeouts{ReadHeader: 300 * time.Millisecond, Read: 300 * time.Millisecond, Write: 300 * time.Millisecond},
		Runtime:  runtimeConfig{StateDir: filepath.Join(dir, "state"), Profiles: profiles, MaxWorkers: 4, MaxStreams: 8}}
	s := startRun(t, cfg)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url("/api/runtimes/embedded-worker-runtime/events"), nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.Body.Close() }()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", stream.StatusCode)
	}
	rd := bufio.NewReader(stream.Body)
	if line, err := rd.ReadString('\n'); err != nil || line != ": ok\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	// Well past every timeout of the server (a wait, not a measurement).
	time.Sleep(1500 * time.Millisecond)
	resp, err := (&http.Client{Timeout: watchdog}).Post(s.url("/api/runtimes/embedded-worker-runtime/workers"), "application/json",
		strings.NewReader(`{"intent":{"kind":"task"},"profile":"quiet"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	got := make(chan string, 1)
	go func() {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			if strings.HasPrefix(line, "event: worker_upserted") {
				got <- "ok"
				return
			}
		}
	}()
	select {
	case g := <-got:
		if g != "ok" {
			t.Errorf("the stream ended before the event: %s", g)
		}
	case <-time.After(watchdog):
		t.Fatal("no event on the stream")
	}
}
