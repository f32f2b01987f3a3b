package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/registry/registrytest"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// watchdog bounds every wait in these tests: reaching it means a hang, not
// slowness (nothing here measures speed).
const watchdog = 30 * time.Second

func TestParseConfig(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	defaults := config{Listen: "127.0.0.1:8080", WorkspaceID: "local:default", WorkspaceRoot: cwd,
		MaxRecords: registry.DefaultMaxRecords, LogLevel: slog.LevelInfo, MaxConns: defaultMaxConns,
		SourceTimeout: registry.DefaultSourceTimeout, Runtime: runtimeConfig{MaxWorkers: 64, MaxStreams: 256}}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c *config)
		wantErr string // substring; "" for success
	}{
		{"defaults", nil, nil, func(*config) {}, ""},
		{"flags", []string{"--listen", "127.0.0.1:0", "--workspace-id", "local:x", "--workspace-root", "/w",
			"--data-dir", "/d", "--max-records", "5", "--log-level", "debug"}, nil, func(c *config) {
			c.Listen, c.WorkspaceID, c.WorkspaceRoot, c.DataDir, c.MaxRecords, c.LogLevel = "127.0.0.1:0", "local:x", "/w", "/d", 5, slog.LevelDebug
		}, ""},
		{"environment", nil, map[string]string{"RUNTIME_REGISTRY_DATA_DIR": "/env/d", "RUNTIME_REGISTRY_MAX_RECORDS": "7",
			"RUNTIME_REGISTRY_LOG_LEVEL": "warn", "RUNTIME_REGISTRY_WORKSPACE_ROOT": "/env/w"}, func(c *config) {
			c.DataDir, c.MaxRecords, c.LogLevel, c.WorkspaceRoot = "/env/d", 7, slog.LevelWarn, "/env/w"
		}, ""},
		{"a flag wins over the environment", []string{"-max-records=9", "-data-dir=/flag"},
			map[string]string{"RUNTIME_REGISTRY_MAX_RECORDS": "7", "RUNTIME_REGISTRY_DATA_DIR": "/env"}, func(c *config) {
				c.MaxRecords, c.DataDir = 9, "/flag"
			}, ""},
		{"an empty variable is unset", nil, map[string]string{"RUNTIME_REGISTRY_LISTEN": ""}, func(*config) {}, ""},
		{"max-records 0", []string{"--max-records", "0"}, nil, nil, "--max-records must be 1 to 200"},
		{"max-records 201", []string{"--max-records=201"}, nil, nil, "--max-records must be 1 to 200"},
		{"max-records over from the environment", nil, map[string]string{"RUNTIME_REGISTRY_MAX_RECORDS": "1000"}, nil, "--max-records must be 1 to 200"},
		{"max-records not a number", []string{"--max-records", "many"}, nil, nil, "invalid value"},
		{"bad variable names itself", nil, map[string]string{"RUNTIME_REGISTRY_MAX_RECORDS": "many"}, nil, "RUNTIME_REGISTRY_MAX_RECORDS"},
		{"bad log level", []string{"--log-level", "loud"}, nil, nil, "invalid value"},
		{"source timeout", []string{"--source-timeout", "500ms"}, nil, func(c *config) { c.SourceTimeout = 500 * time.Millisecond }, ""},
		{"source timeout from the environment", nil, map[string]string{"RUNTIME_REGISTRY_SOURCE_TIMEOUT": "3s"},
			func(c *config) { c.SourceTimeout = 3 * time.Second }, ""},
		{"source timeout zero", []string{"--source-timeout", "0s"}, nil, nil, "--source-timeout must be positive"},
		{"source timeout not a duration", []string{"--source-timeout", "2"}, nil, nil, "invalid value"},
		{"unknown flag", []string{"--token", "x"}, nil, nil, "flag provided but not defined"},
		{"positional argument", []string{"serve"}, nil, nil, "unexpected arguments"},
		{"help", []string{"-h"}, nil, nil, flag.ErrHelp.Error()},
		{"allowed hosts and max conns", []string{"--allowed-hosts", "a.example, b.example:8443", "--max-conns", "3"}, nil, func(c *config) {
			c.AllowedHosts, c.MaxConns = "a.example, b.example:8443", 3
		}, ""},
		{"allowed hosts from the environment", nil, map[string]string{"RUNTIME_REGISTRY_ALLOWED_HOSTS": "c.example"}, func(c *config) {
			c.AllowedHosts = "c.example"
		}, ""},
		{"allowed host with a path", []string{"--allowed-hosts", "a.example/x"}, nil, nil, "not host[:port]"},
		{"max-conns 0", []string{"--max-conns", "0"}, nil, nil, "--max-conns must be at least 1"},
		{"localhost listen needs no token", []string{"--listen", "localhost:9"}, nil, func(c *config) { c.Listen = "localhost:9" }, ""},
		{"IPv6 loopback needs no token", []string{"--listen", "[::1]:9"}, nil, func(c *config) { c.Listen = "[::1]:9" }, ""},
		{"every interface needs a token", []string{"--listen", ":8080"}, nil, nil, "not a loopback address"},
		{"a LAN address needs a token", []string{"--listen", "192.168.1.5:8080"}, nil, nil, "not a loopback address"},
		{"a host name needs a token", []string{"--listen", "myhost:8080"}, nil, nil, "not a loopback address"},
		{"index cache", []string{"--index-cache", "/c/index"}, nil, func(c *config) { c.IndexCache = "/c/index" }, ""},
		{"index cache from the environment", nil, map[string]string{"RUNTIME_REGISTRY_INDEX_CACHE": "/e/index"},
			func(c *config) { c.IndexCache = "/e/index" }, ""},
		{"index cache off", []string{"--index-cache", "off"}, nil, func(*config) {}, ""},
		{"index cache in the state dir by default", []string{"--state-dir", "/s", "--profiles", "/p"}, nil, func(c *config) {
			c.Runtime.StateDir, c.Runtime.Profiles, c.IndexCache = "/s", "/p", "/s/compat-index.cache"
		}, ""},
		{"index cache beside a state dir", []string{"--state-dir", "/s", "--profiles", "/p", "--index-cache", "/c"}, nil, func(c *config) {
			c.Runtime.StateDir, c.Runtime.Profiles, c.IndexCache = "/s", "/p", "/c"
		}, ""},
		{"index cache off despite a state dir", []string{"--state-dir", "/s", "--profiles", "/p"},
			map[string]string{"RUNTIME_REGISTRY_INDEX_CACHE": "off"}, func(c *config) {
				c.Runtime.StateDir, c.Runtime.Profiles = "/s", "/p"
			}, ""},
		{"token file missing", []string{"--access-token-file", "/nonexistent/MARKPATH"}, nil, nil, "cannot read the file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			getenv := func(k string) string { return tt.env[k] }
			got, err := parseConfig(tt.args, getenv, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "MARKPATH") {
					t.Errorf("the error names the file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v (stderr %s)", err, stderr.String())
			}
			want := defaults
			tt.want(&want)
			if got != want {
				t.Errorf("config %+v, want %+v", got, want)
			}
		})
	}
}

func TestTimeoutDefaults(t *testing.T) {
	got := timeouts{ReadHeader: time.Second}.withDefaults()
	want := timeouts{ReadHeader: time.Second, Read: readTimeout, Write: writeTimeout, Idle: idleTimeout, Shutdown: shutdownTimeout}
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}

// started is a server running in the background for one test.
type started struct {
	addr string
	logs *testproc.Buffer
	stop context.CancelFunc
	done chan error
}

// startRun runs the real server (run) on a free loopback port and stops it
// when the test ends, failing if it does not stop cleanly.
func startRun(t *testing.T, cfg config) *started {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	return start(t, func(ctx context.Context, logs io.Writer, ready chan<- net.Addr) error {
		return run(ctx, cfg, logs, ready)
	})
}

// startServe runs serve over handler h.
func startServe(t *testing.T, cfg config, h http.Handler) *started {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	return start(t, func(ctx context.Context, logs io.Writer, ready chan<- net.Addr) error {
		ln, err := listen(cfg)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, ln, h, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), ready)
	})
}

func start(t *testing.T, f func(ctx context.Context, logs io.Writer, ready chan<- net.Addr) error) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{logs: &testproc.Buffer{}, stop: cancel, done: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	go func() { s.done <- f(ctx, s.logs, ready) }()
	select {
	case a := <-ready:
		s.addr = a.String()
	case err := <-s.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(watchdog):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("server stopped with %v", err)
			}
		case <-time.After(watchdog):
			t.Error("server did not stop")
		}
	})
	return s
}

func (s *started) url(path string) string { return "http://" + s.addr + path }

// shutdown stops the server and waits until it has stopped, so that every
// log line is written (the server's logs are asynchronous until it stops).
func (s *started) shutdown(t *testing.T) {
	t.Helper()
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server stopped with %v", err)
		}
		s.done <- nil // for the cleanup's wait
	case <-time.After(watchdog):
		t.Fatal("server did not stop")
	}
}

// reply is one answer, read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// get sends one request with a client that never reuses state across tests.
func get(t *testing.T, method, url string, body io.Reader, header ...string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{Timeout: watchdog}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}
}

// problemCode checks that resp is a problem document and returns its code.
func problemCode(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	return problemCodeOf(t, resp.StatusCode, resp.Header, body)
}

// problemCodeOf checks that an answer of status with header and body is a
// problem document and returns its code.
func problemCodeOf(t *testing.T, status int, header http.Header, body []byte) string {
	t.Helper()
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json; body %s", ct, body)
	}
	var p struct {
		Code   string `json:"code"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.Status != status {
		t.Errorf("problem status %d, response %d", p.Status, status)
	}
	return p.Code
}

// TestSlowClientIsDisconnected opens connections that send no headers, or
// trickle them a byte at a time: the server closes each once the header
// timeout has passed, rather than holding it open.
func TestSlowClientIsDisconnected(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError,
		Timeouts: timeouts{ReadHeader: 300 * time.Millisecond}})
	tests := []struct {
		name  string
		write func(c net.Conn)
	}{
		{"sends nothing", func(net.Conn) {}},
		{"sends half a request line", func(c net.Conn) { _, _ = c.Write([]byte("GET /api/work")) }},
		{"trickles headers", func(c net.Conn) {
			for _, b := range []byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
				if _, err := c.Write([]byte{b}); err != nil {
					return // closed by the server, as it should
				}
				time.Sleep(20 * time.Millisecond)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			tt.write(c)
			// The server must close the connection well before the 30 s
			// read timeout would: only the header timeout can do that.
			if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server held the connection open")
			}
		})
	}
	// The server goes on serving.
	if r := get(t, "GET", s.url("/healthz"), nil); r.status != http.StatusOK {
		t.Errorf("healthz %d", r.status)
	}
}

// TestOversizeBodyOverTCP sends 3 MiB bodies (over every limit) over real
// connections from a client that writes its whole request before it reads,
// as Python's urllib and fetch do, 20 times, with and without Content-Length
// (chunked): every one receives the 413 problem, none a reset, because the
// server reads and discards the body before it answers.
func TestOversizeBodyOverTCP(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError})
	target := "/api/runtimes/" + string(compat.RuntimeID) + "/workers/w1/input"
	body := `{"kind":"user","content":"` + strings.Repeat("x", 3<<20) + `"}`
	for i := range 20 {
		chunked := i%2 == 1
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetDeadline(time.Now().Add(watchdog)); err != nil {
			t.Fatal(err)
		}
		// A small send buffer, as over a real network: the body cannot sit in
		// the client's kernel, the server must read it for the write to end.
		if err := c.(*net.TCPConn).SetWriteBuffer(128 << 10); err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(c, 64<<10)
		_, _ = fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", target, s.addr)
		if chunked {
			_, _ = fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n")
			for i := 0; i < len(body); i += 64 << 10 {
				chunk := body[i:min(i+64<<10, len(body))]
				_, _ = fmt.Fprintf(w, "%x\r\n%s\r\n", len(chunk), chunk)
			}
			_, _ = fmt.Fprintf(w, "0\r\n\r\n")
		} else {
			_, _ = fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", len(body), body)
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("request %d (chunked %v): writing the body: %v", i, chunked, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("request %d (chunked %v): reading the response: %v", i, chunked, err)
		}
		data, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		_ = c.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || problemCode(t, resp, data) != "payload_too_large" {
			t.Errorf("request %d: status %d body %s, want a 413 payload_too_large problem", i, resp.StatusCode, data)
		}
	}
}

// handlerOver builds the real HTTP handler over sources, logging to logs.
func handlerOver(t *testing.T, logs io.Writer, sources ...registry.Source) http.Handler {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg, err := registry.New(registry.Options{WorkspaceID: "ws", Auditor: registry.SlogAuditor{Logger: log}}, sources...)
	if err != nil {
		t.Fatal(err)
	}
	h, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPanicBecomesProblem makes a Runtime panic inside a request over a real
// connection: the client gets a 500 internal problem that reveals nothing of
// the panic, and the server goes on answering, on the same connection too.
func TestPanicBecomesProblem(t *testing.T) {
	const secret = "/var/lib/SECRET-PANIC-PATH token=SECRET-PANIC-TOKEN"
	panicky := registrytest.New("panicky")
	panicky.SetHook(func(_ context.Context, m registrytest.Method) error {
		if m == registrytest.MethodSummary {
			panic(secret)
		}
		return nil
	})
	fine := registrytest.New("fine")
	logs := &testproc.Buffer{}
	s := startServe(t, config{}, handlerOver(t, logs, panicky, fine))

	client := &http.Client{Timeout: watchdog, Transport: &http.Transport{MaxConnsPerHost: 1}}
	for i := range 3 {
		resp, err := client.Get(s.url("/api/runtimes/panicky"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError || problemCode(t, resp, body) != "internal" {
			t.Fatalf("status %d body %s, want a 500 internal problem", resp.StatusCode, body)
		}
		if bytes.Contains(body, []byte("SECRET")) || bytes.Contains(body, []byte("panic")) || bytes.Contains(body, []byte("goroutine")) {
			t.Errorf("the problem reveals the panic: %s", body)
		}
		resp, err = client.Get(s.url("/api/runtimes/fine"))
		if err != nil {
			t.Fatalf("after a panic: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("after a panic the server answers %d", resp.StatusCode)
		}
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Errorf("the log holds the panic's text: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "handler panicked") {
		t.Error("the panic was not logged")
	}
}

// TestGracefulShutdownFinishesInFlight starts a request whose Runtime blocks,
// then stops the server: it stops accepting, waits for the request, which
// completes with its answer, and only then returns.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := registrytest.New("slow")
	slow.SetHook(func(_ context.Context, m registrytest.Method) error {
		if m == registrytest.MethodSummary {
			close(entered)
			<-release
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan net.Addr, 1), make(chan error, 1)
	h := handlerOver(t, io.Discard, slow)
	ln, err := listen(config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- serve(ctx, config{Listen: "127.0.0.1:0"}, ln, h, slog.New(slog.DiscardHandler), ready)
	}()
	addr := (<-ready).String()

	type result struct {
		status int
		body   []byte
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Timeout: watchdog}).Get("http://" + addr + "/api/runtimes/slow")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		inflight <- result{status: resp.StatusCode, body: body, err: err}
	}()
	select {
	case <-entered:
	case <-time.After(watchdog):
		t.Fatal("the request never reached the Runtime")
	}
	cancel() // SIGTERM, in effect

	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(watchdog)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener stayed open during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("serve returned (%v) with a request in flight", err)
	default:
	}

	close(release)
	r := <-inflight
	if r.err != nil || r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"runtime_id":"slow"`)) {
		t.Fatalf("in-flight request: %d %s %v", r.status, r.body, r.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(watchdog):
		t.Fatal("serve did not return after the in-flight request finished")
	}
}

// TestSecurityHeadersOnEveryResponse checks nosniff and the absence of any
// CORS grant on answers of every kind, including CORS preflights.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError, DataDir: t.TempDir()})
	origin := []string{"Origin", "https://evil.example"}
	preflight := append(origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	tests := []struct {
		method, path string
		body         string
		header       []string
		status       int
	}{
		{"GET", "/healthz", "", origin, 200},
		{"GET", "/api/openapi.json", "", origin, 200},
		{"GET", "/api/runtimes", "", origin, 200},
		{"GET", "/api/workers", "", origin, 200},
		{"GET", "/api/runtimes/nope", "", origin, 404},
		{"GET", "/api/runtimes/bad.id", "", origin, 400},
		{"GET", "/nowhere", "", origin, 404},
		{"DELETE", "/api/runtimes", "", nil, 405},
		{"DELETE", "/api/runtimes", "", origin, 403},
		{"POST", "/api/runtimes/" + string(compat.RuntimeID) + "/workers", `{"intent":{"kind":"task"}}`, []string{"Content-Type", "application/json"}, 501},
		{"POST", "/api/runtimes/" + string(compat.RuntimeID) + "/workers", `{"intent":{"kind":"task"}}`, append(origin, "Content-Type", "application/json"), 403},
		{"OPTIONS", "/api/runtimes", "", preflight, 405},
		{"OPTIONS", "/api/runtimes/" + string(compat.RuntimeID) + "/workers", "", preflight, 405},
		{"OPTIONS", "/nowhere", "", preflight, 404},
		{"OPTIONS", "*", "", preflight, 404},
		{"HEAD", "/api/runtimes", "", origin, 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			url := s.url(tt.path)
			if tt.path == "*" {
				url = s.url("")
			}
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequestWithContext(t.Context(), tt.method, url, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.path == "*" {
				req.URL.Opaque, req.URL.Path = "*", ""
			}
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			resp, err := (&http.Client{Timeout: watchdog}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if tt.status != 0 && resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d; body %s", resp.StatusCode, tt.status, data)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff: %v", resp.Header)
			}
			for k := range resp.Header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Errorf("CORS header %s: %v", k, resp.Header[k])
				}
			}
			if resp.StatusCode >= 400 && tt.method != "HEAD" {
				problemCode(t, resp, data)
			}
		})
	}
}

// TestLogsRevealNothing plants markers in the store (session ids, sockets,
// the data dir and workspace paths) and in requests (query names and
// values, headers such as Authorization and Cookie, bodies, invalid ids),
// drives every endpoint at debug level, and checks that no log line holds
// any of them.
func TestLogsRevealNothing(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "MARKROOTPARENT", "project")
	dataDir := filepath.Join(base, "MARKDATADIR")
	pods := map[string]string{
		"visible": fmt.Sprintf(`{"worker_name":"visible","workspace_root":%q,"active":{"session_id":"MARKSESSION","segment_id":"MARKSEGMENT"},"peers":[{"socket":"/run/MARKSOCKET.sock"}],"resolved_manifest_snapshot":{"role":"r","session_path":"/MARKSESSIONPATH"}}`, root),
		"foreign": `{"workspace_root":"/MARKOTHERROOT/ws","active":{"session_id":"MARKSESSION"}}`,
		"broken":  `{"workspace_root":"/MARKBROKEN`,
		"noroot":  `{"worker_name":"x","active":{"session_id":"MARKSESSION"}}`,
	}
	for name, doc := range pods {
		dir := filepath.Join(dataDir, "pods", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/MARKLINKTARGET", filepath.Join(dataDir, "pods", "linked")); err != nil {
		t.Fatal(err)
	}
	s := startRun(t, config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: dataDir, MaxRecords: 200, LogLevel: slog.LevelDebug})

	rt := string(compat.RuntimeID)
	w := string(compat.WorkerIDFor("visible"))
	secretHeaders := []string{"Authorization", "Bearer MARKTOKEN", "Cookie", "session=MARKCOOKIE",
		"X-Forwarded-For", "MARKFORWARDED", "User-Agent", "MARKAGENT", "Referer", "http://x/MARKREFERER"}
	requests := []struct{ method, path, body string }{
		{"GET", "/api/runtimes?token=MARKQUERYTOKEN", ""},
		{"GET", "/api/workers?data_dir=/MARKQUERYPATH", ""},
		{"GET", "/api/workers?MARKQUERYNAME=1", ""},
		{"GET", "/api/hosts", ""},
		{"GET", "/api/hosts/" + string(compat.HostIDFor("ws")) + "/workers", ""},
		{"GET", "/api/runtimes/" + rt, ""},
		{"GET", "/api/runtimes/" + rt + "/hosts", ""},
		{"GET", "/api/runtimes/" + rt + "/workers?limit=1&cursor=MARKCURSOR", ""},
		{"GET", "/api/runtimes/" + rt + "/workers?limit=1", ""},
		{"GET", "/api/runtimes/" + rt + "/workers/" + w, ""},
		{"GET", "/api/runtimes/" + rt + "/workers/" + string(compat.WorkerIDFor("foreign")), ""},
		{"GET", "/api/runtimes/" + rt + "/workers/MARKBADID.x", ""},
		{"GET", "/api/runtimes/" + rt + "/workers/..%2FMARKTRAVERSAL", ""},
		{"GET", "/MARKUNROUTED/path", ""},
		{"POST", "/api/runtimes/" + rt + "/workers", `{"intent":{"kind":"task","objective":"MARKBODY"},"worker_name":"MARKBODYNAME"}`},
		{"POST", "/api/runtimes/" + rt + "/workers/" + w + "/input", `{"kind":"user","content":"MARKBODYCONTENT"}`},
		{"POST", "/api/runtimes/" + rt + "/workers/" + w + "/input", `{"kind":"user","content":"MARKBODYUNKNOWN","callback":"http://MARKCALLBACK"}`},
		{"POST", "/api/runtimes/" + rt + "/workers/" + w + "/stop", `{"mode":"MARKBADENUM"}`},
		{"POST", "/api/runtimes/" + rt + "/workers/" + w + "/stop", `{"mode":`},
	}
	for _, r := range requests {
		var body io.Reader
		hdr := secretHeaders
		if r.body != "" {
			body = strings.NewReader(r.body)
			hdr = append(hdr[:len(hdr):len(hdr)], "Content-Type", "application/json")
		}
		if got := get(t, r.method, s.url(r.path), body, hdr...); got.status >= 500 && got.status != 501 {
			t.Errorf("%s %s: %d", r.method, r.path, got.status)
		}
	}
	s.shutdown(t)
	logs := s.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) || !strings.Contains(logs, `"msg":"audit"`) || !strings.Contains(logs, `"level":"DEBUG"`) {
		t.Fatalf("the logs lack request, audit or debug lines, so this test proves nothing:\n%s", logs)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(line, "MARK") || strings.Contains(line, base) {
			t.Errorf("log line reveals a planted value: %s", line)
		}
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}
