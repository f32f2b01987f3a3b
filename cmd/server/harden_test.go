package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/registry/registrytest"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// The server's own defences, each tried through the real server over real
// connections on 127.0.0.1.

// serverMainEnv makes the test binary run main() instead of the tests (see
// TestMain), so that a test can start the real process and see its exit code.
const serverMainEnv = "RUNTIME_REGISTRY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(serverMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serverProcess starts this test binary as the server process with args.
func serverProcess(t *testing.T, args ...string) (*exec.Cmd, *testproc.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), serverMainEnv+"=1")
	stderr := &testproc.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, stderr
}

// waitExit waits for cmd to end (hang guard: watchdog) and returns its code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(watchdog):
		_ = cmd.Process.Kill()
		t.Fatalf("the server process did not exit (killed: %v)", <-done)
		return -1
	}
}

func TestNonLoopbackWithoutTokenRefusesToStart(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0"} {
		cmd, stderr := serverProcess(t, "--listen", listen)
		if code := waitExit(t, cmd); code != 2 {
			t.Errorf("--listen %s: exit code %d, want 2; stderr %s", listen, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "not a loopback address") || !strings.Contains(lines[0], "--access-token-file") {
			t.Errorf("--listen %s: stderr %q, want one line naming the missing token", listen, stderr)
		}
	}
}

func TestAccessTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	short := filepath.Join(dir, "short")
	spaced := filepath.Join(dir, "spaced")
	for path, content := range map[string]string{good: "  0123456789abcdef0123\n", short: "abc", spaced: "0123456789 abcdef0123"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	getenv := func(string) string { return "" }
	cfg, err := parseConfig([]string{"--access-token-file", good, "--listen", "0.0.0.0:0"}, getenv, io.Discard)
	if err != nil || cfg.AccessToken != "0123456789abcdef0123" {
		t.Errorf("good token file: %q, %v", cfg.AccessToken, err)
	}
	for _, bad := range []string{short, spaced} {
		_, err := parseConfig([]string{"--access-token-file", bad}, getenv, io.Discard)
		if err == nil || strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), dir) {
			t.Errorf("%s: error %v, want one that quotes neither the token nor the path", filepath.Base(bad), err)
		}
	}
}

// answer is a response whose body do has read and closed.
type answer struct {
	StatusCode int
	Header     http.Header
	Cookies    []*http.Cookie
	Close      bool // the server closes the connection after it
}

// do sends one request over a fresh connection; header holds pairs, and a
// "Host" pair sets the Host header.
func do(t *testing.T, method, url string, body string, header ...string) (answer, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Add(header[i], header[i+1])
	}
	client := &http.Client{Timeout: watchdog, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{StatusCode: resp.StatusCode, Header: resp.Header, Cookies: resp.Cookies()}, data
}

func TestHostAllowList(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError,
		AllowedHosts: "backend.example, proxy.example:8443"})
	_, port, _ := net.SplitHostPort(s.addr)
	tests := []struct {
		host string
		want int
	}{
		{"localhost:" + port, 200},
		{"LOCALHOST:" + port, 200},
		{"127.0.0.1:" + port, 200},
		{"[::1]:" + port, 200},
		{s.addr, 200},
		{"backend.example", 200},
		{"backend.example:" + port, 200},
		{"proxy.example:8443", 200},
		{"proxy.example", 421},
		{"proxy.example:" + port, 421},
		{"localhost:1", 421},
		{"localhost", 421},
		{"evil.example:" + port, 421},
		{"127.0.0.2:" + port, 421},
		{"localhost.:" + port, 421},
	}
	for _, path := range []string{"/api/workers", "/healthz", "/metrics", "/nowhere"} {
		for _, tt := range tests {
			resp, body := do(t, "GET", s.url(path), "", "Host", tt.host)
			want := tt.want
			if want == 200 && path == "/nowhere" {
				want = 404
			}
			if resp.StatusCode != want {
				t.Errorf("GET %s Host %q: %d, want %d", path, tt.host, resp.StatusCode, want)
			}
			if want == 421 && problemCodeOf(t, resp.StatusCode, resp.Header, body) != "misdirected_request" {
				t.Errorf("GET %s Host %q: %s", path, tt.host, body)
			}
		}
	}
}

// passed, as a wanted status, is any answer of a request that passed the
// server's own checks and reached the Runtime: not 400, 401, 403, 413 or 421.
const passed = 0

func statusIs(got, want int) bool {
	if want == passed {
		return got != 400 && got != 401 && got != 403 && got != 413 && got != 421
	}
	return got == want
}

func wantText(want int) string {
	if want == passed {
		return "an answer past the checks"
	}
	return fmt.Sprint(want)
}

func TestCrossOriginWritesRejected(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError, DataDir: t.TempDir()})
	stop := "/api/runtimes/" + string(compat.RuntimeID) + "/workers/w1/stop"
	tests := []struct {
		name, method, path string
		header             []string
		want               int
	}{
		{"no browser headers (curl)", "POST", stop, nil, passed},
		{"same-origin fetch", "POST", stop, []string{"Sec-Fetch-Site", "same-origin"}, passed},
		{"typed address", "POST", stop, []string{"Sec-Fetch-Site", "none"}, passed},
		{"cross-site fetch", "POST", stop, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"same-site fetch", "POST", stop, []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"foreign Origin", "POST", stop, []string{"Origin", "http://evil.example"}, 403},
		{"own Origin", "POST", stop, []string{"Origin", "http://" + s.addr}, passed},
		{"foreign Origin on DELETE", "DELETE", "/api/runtimes", []string{"Origin", "http://evil.example"}, 403},
		{"cross-site GET reads", "GET", "/api/runtimes", []string{"Sec-Fetch-Site", "cross-site"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			hdr := tt.header
			if tt.method == "POST" {
				body = `{"mode":"force"}`
				hdr = append(hdr[:len(hdr):len(hdr)], "Content-Type", "application/json")
			}
			resp, data := do(t, tt.method, s.url(tt.path), body, hdr...)
			if !statusIs(resp.StatusCode, tt.want) {
				t.Fatalf("%d, want %s: %s", resp.StatusCode, wantText(tt.want), data)
			}
			if tt.want == 403 && problemCodeOf(t, resp.StatusCode, resp.Header, data) != "cross_origin_rejected" {
				t.Errorf("body %s", data)
			}
			for k := range resp.Header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Errorf("CORS header %s", k)
				}
			}
		})
	}
}

func TestAccessToken(t *testing.T) {
	const token = "s3cret-token-0123456789"
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError, AccessToken: token})
	bearer := []string{"Authorization", "Bearer " + token}
	tests := []struct {
		name, method, path string
		header             []string
		want               int
	}{
		{"healthz is open", "GET", "/healthz", nil, 200},
		{"api without token", "GET", "/api/runtimes", nil, 401},
		{"openapi without token", "GET", "/api/openapi.json", nil, 401},
		{"metrics without token", "GET", "/metrics", nil, 401},
		{"unknown api path without token", "GET", "/api/nothing", nil, 401},
		{"write without token", "POST", "/api/runtimes/x/workers/w/stop", nil, 401},
		{"wrong bearer", "GET", "/api/runtimes", []string{"Authorization", "Bearer " + token + "x"}, 401},
		{"prefix of the token", "GET", "/api/runtimes", []string{"Authorization", "Bearer " + token[:10]}, 401},
		{"basic auth", "GET", "/api/runtimes", []string{"Authorization", "Basic " + token}, 401},
		{"bearer", "GET", "/api/runtimes", bearer, 200},
		{"lower-case scheme", "GET", "/api/runtimes", []string{"Authorization", "bearer " + token}, 200},
		{"bearer on metrics", "GET", "/metrics", bearer, 200},
		{"cookie", "GET", "/api/workers", []string{"Cookie", "rr_access=" + token}, 200},
		{"wrong cookie", "GET", "/api/workers", []string{"Cookie", "rr_access=nope"}, 401},
		{"token in the API query is no token", "GET", "/api/workers?token=" + token, nil, 401},
		{"wrong token login", "GET", "/?token=wrong", nil, 401},
		{"token login", "GET", "/?token=" + token, nil, 303},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := do(t, tt.method, s.url(tt.path), "", tt.header...)
			if !statusIs(resp.StatusCode, tt.want) {
				t.Fatalf("%d, want %s: %s", resp.StatusCode, wantText(tt.want), data)
			}
			switch tt.want {
			case 401:
				if problemCodeOf(t, resp.StatusCode, resp.Header, data) != "unauthenticated" || resp.Header.Get("WWW-Authenticate") != "Bearer" {
					t.Errorf("401 without the problem or WWW-Authenticate: %v %s", resp.Header, data)
				}
			case 303:
				if loc := resp.Header.Get("Location"); loc != "/" {
					t.Errorf("Location %q, want /", loc)
				}
				cookies := resp.Cookies
				if len(cookies) != 1 {
					t.Fatalf("cookies %v", cookies)
				}
				c := cookies[0]
				if c.Name != "rr_access" || c.Value != token || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
					t.Errorf("cookie %+v", c)
				}
				raw := resp.Header.Get("Set-Cookie")
				if !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Strict") {
					t.Errorf("Set-Cookie %q", raw)
				}
				// The cookie it set opens the API.
				if r, body := do(t, "GET", s.url("/api/runtimes"), "", "Cookie", c.String()); r.StatusCode != 200 {
					t.Errorf("with the login cookie: %d %s", r.StatusCode, body)
				}
			}
			if bytes.Contains(data, []byte(token)) {
				t.Error("the answer holds the token")
			}
		})
	}
	s.shutdown(t)
	if strings.Contains(s.logs.String(), token) {
		t.Error("the log holds the token")
	}
}

func TestHeadWorksWhereGetDoes(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError, DataDir: "../../examples/sample-workspace/data",
		WorkspaceRoot: "/srv/workspaces/sample-app"})
	rt := string(compat.RuntimeID)
	for _, path := range []string{"/healthz", "/api/openapi.json", "/metrics", "/api/runtimes", "/api/hosts", "/api/workers",
		"/api/runtimes/" + rt, "/api/runtimes/" + rt + "/hosts", "/api/runtimes/" + rt + "/workers?limit=1"} {
		get, getBody := do(t, "GET", s.url(path), "")
		head, headBody := do(t, "HEAD", s.url(path), "")
		if get.StatusCode != 200 || head.StatusCode != 200 {
			t.Errorf("%s: GET %d HEAD %d", path, get.StatusCode, head.StatusCode)
			continue
		}
		if len(headBody) != 0 {
			t.Errorf("%s: HEAD has a body", path)
		}
		for _, h := range []string{"Content-Type", "ETag", "Cache-Control", "X-Content-Type-Options"} {
			if path != "/metrics" && get.Header.Get(h) != head.Header.Get(h) {
				t.Errorf("%s: %s GET %q HEAD %q", path, h, get.Header.Get(h), head.Header.Get(h))
			}
		}
		if cl := head.Header.Get("Content-Length"); path != "/metrics" && cl != "" && cl != fmt.Sprint(len(getBody)) {
			t.Errorf("%s: HEAD Content-Length %s, GET body %d", path, cl, len(getBody))
		}
		if etag := get.Header.Get("ETag"); etag != "" {
			if r, _ := do(t, "HEAD", s.url(path), "", "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
				t.Errorf("%s: HEAD with the ETag: %d, want 304", path, r.StatusCode)
			}
		}
	}
	// HEAD of a POST-only route is a method not allowed, as GET is.
	if r, _ := do(t, "HEAD", s.url("/api/runtimes/"+rt+"/workers/w/stop"), ""); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("HEAD of a POST route: %d", r.StatusCode)
	}
}

func TestIfNoneMatchOnTwoLines(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError})
	get, _ := do(t, "GET", s.url("/api/runtimes"), "")
	etag := get.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	for _, lines := range [][]string{
		{`"other"`, etag},
		{etag, `"other"`},
		{`"a", "b"`, `W/` + etag},
	} {
		resp, body := do(t, "GET", s.url("/api/runtimes"), "", "If-None-Match", lines[0], "If-None-Match", lines[1])
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match %q: %d %s, want 304", lines, resp.StatusCode, body)
		}
	}
	if resp, _ := do(t, "GET", s.url("/api/runtimes"), "", "If-None-Match", `"a"`, "If-None-Match", `"b"`); resp.StatusCode != 200 {
		t.Errorf("no tag matches: %d, want 200", resp.StatusCode)
	}
}

func TestMalformedQueryStrings(t *testing.T) {
	// An empty store: the well-formed query must reach a runtime that answers.
	data := t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "pods"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError, DataDir: data})
	workers := "/api/runtimes/" + string(compat.RuntimeID) + "/workers"
	tests := []struct {
		query string
		want  int
	}{
		{"limit=1", 200},
		{"limit=1&cursor=", 400}, // an empty cursor is not a cursor
		{"limit=1;cursor=x", 400},
		{"%zz=1", 400},
		{"limit=%zz", 400},
		{strings.Repeat("limit=1&", 100) + "limit=1", 400},
	}
	for _, tt := range tests {
		resp, body := do(t, "GET", s.url(workers+"?"+tt.query), "")
		if resp.StatusCode != tt.want {
			t.Errorf("?%.40s: %d, want %d: %s", tt.query, resp.StatusCode, tt.want, body)
			continue
		}
		if tt.want == 400 && problemCodeOf(t, resp.StatusCode, resp.Header, body) != "invalid_request" {
			t.Errorf("?%.40s: %s", tt.query, body)
		}
	}
	// The legacy lists take no parameter: a malformed one is still a 400.
	if resp, body := do(t, "GET", s.url("/api/workers?a;b"), ""); resp.StatusCode != 400 {
		t.Errorf("/api/workers?a;b: %d %s", resp.StatusCode, body)
	}
}

func TestRequestBodies(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError, DataDir: t.TempDir()})
	base := "/api/runtimes/" + string(compat.RuntimeID)
	create, input, stop := base+"/workers", base+"/workers/w1/input", base+"/workers/w1/stop"
	jsonCT := []string{"Content-Type", "application/json"}
	tests := []struct {
		name, path, body string
		header           []string
		want             int
		code             string
	}{
		{"valid stop", stop, `{"mode":"graceful"}`, jsonCT, passed, ""},
		{"charset utf-8", stop, `{"mode":"graceful"}`, []string{"Content-Type", "application/json; charset=UTF-8"}, passed, ""},
		{"trailing data", stop, `{"mode":"graceful"} trailing`, jsonCT, 400, "invalid_request"},
		{"two values", stop, `{"mode":"graceful"}{"mode":"force"}`, jsonCT, 400, "invalid_request"},
		{"trailing white space", stop, "{\"mode\":\"graceful\"} \r\n\t", jsonCT, passed, ""},
		{"duplicate key", stop, `{"mode":"graceful","mode":"force"}`, jsonCT, 400, "invalid_request"},
		{"unknown field of many tiny values", stop, `{"mode":"graceful","x":[` + strings.Repeat(`{},`, 300) + `{}]}`, jsonCT, 400, "invalid_request"},
		{"unknown nested field", create, `{"intent":{"kind":"task","cmd":"rm"}}`, jsonCT, 400, "invalid_request"},
		{"too deep", create, `{"intent":{"kind":"task","objective":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`, jsonCT, 400, "invalid_request"},
		{"not UTF-8", input, "{\"kind\":\"user\",\"content\":\"\xff\xfe\"}", jsonCT, 400, "invalid_request"},
		{"two Content-Type lines", stop, `{"mode":"graceful"}`, []string{"Content-Type", "application/json", "Content-Type", "application/json"}, 400, "invalid_request"},
		{"latin-1", stop, `{"mode":"graceful"}`, []string{"Content-Type", "application/json; charset=latin1"}, 400, "invalid_request"},
		{"another parameter", stop, `{"mode":"graceful"}`, []string{"Content-Type", "application/json; boundary=x"}, 400, "invalid_request"},
		{"text/plain", stop, `{"mode":"graceful"}`, []string{"Content-Type", "text/plain"}, 400, "invalid_request"},
		{"form", stop, `mode=graceful`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, "invalid_request"},
		{"no Content-Type", stop, `{"mode":"graceful"}`, nil, 400, "invalid_request"},
		{"stop over 1 KiB", stop, `{"mode":"graceful","x":"` + strings.Repeat("x", 1<<10) + `"}`, jsonCT, 413, "payload_too_large"},
		{"create over 16 KiB", create, `{"intent":{"kind":"task","objective":"` + strings.Repeat("x", 16<<10) + `"}}`, jsonCT, 413, "payload_too_large"},
		{"input of 64 KiB", input, `{"kind":"user","content":"` + strings.Repeat("x", 64<<10) + `"}`, jsonCT, passed, ""},
		{"input of 64 KiB escaped", input, `{"kind":"user","content":"` + strings.Repeat(`\n`, 7<<10) + `"}`, jsonCT, passed, ""},
		{"input over 80 KiB", input, `{"kind":"user","content":"` + strings.Repeat("x", 80<<10) + `"}`, jsonCT, 413, "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := do(t, "POST", s.url(tt.path), tt.body, tt.header...)
			if !statusIs(resp.StatusCode, tt.want) {
				t.Fatalf("%d, want %s: %s", resp.StatusCode, wantText(tt.want), data)
			}
			if tt.code != "" && problemCodeOf(t, resp.StatusCode, resp.Header, data) != tt.code {
				t.Errorf("body %s, want code %s", data, tt.code)
			}
		})
	}
}

// rawConn is a connection that writes raw bytes and reads responses.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetDeadline(time.Now().Add(watchdog)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func (c *rawConn) response(t *testing.T) (answer, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return answer{StatusCode: resp.StatusCode, Header: resp.Header, Close: resp.Close}, data
}

// TestGetBodyIsNotBuffered announces a 3 MiB body on GETs and sends none of
// it: the answer comes at once, so the server never waited to buffer it.
func TestGetBodyIsNotBuffered(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError})
	for _, path := range []string{"/api/runtimes", "/api/runtimes/" + string(compat.RuntimeID), "/healthz", "/nowhere"} {
		c := dialRaw(t, s.addr)
		c.send(t, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n{", path, s.addr, 3<<20))
		resp, body := c.response(t)
		if resp.StatusCode >= 500 {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// TestContentLengthWithChunkedClosesTheConnection sends a request framed
// both ways (RFC 9112 section 6.1: answer, then close) with a second request
// pipelined behind it: the first is answered, the second never is.
func TestContentLengthWithChunkedClosesTheConnection(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError})
	stop := "/api/runtimes/" + string(compat.RuntimeID) + "/workers/w1/stop"
	body := `{"mode":"force"}`
	smuggled := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", s.addr)
	for _, te := range []string{"chunked", "Chunked"} {
		c := dialRaw(t, s.addr)
		c.send(t, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nTransfer-Encoding: %s\r\n\r\n%x\r\n%s\r\n0\r\n\r\n%s",
			stop, s.addr, len(body), te, len(body), body, smuggled))
		resp, data := c.response(t)
		if !resp.Close {
			t.Errorf("TE %s: first answer %d %s does not close the connection", te, resp.StatusCode, data)
		}
		if rest, err := io.ReadAll(c.r); err != nil || len(rest) != 0 {
			t.Errorf("TE %s: after the first answer: %q, %v; want the connection closed", te, rest, err)
		}
	}
}

// TestOptionsStarIsAProblem: net/http's own answer to "OPTIONS *" is turned
// off, so the guard answers it as a problem with the security headers.
func TestOptionsStarIsAProblem(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelError})
	c := dialRaw(t, s.addr)
	c.send(t, fmt.Sprintf("OPTIONS * HTTP/1.1\r\nHost: %s\r\n\r\n", s.addr))
	resp, data := c.response(t)
	if resp.StatusCode != http.StatusNotFound || problemCodeOf(t, resp.StatusCode, resp.Header, data) != "not_found" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("OPTIONS *: %d %v %s", resp.StatusCode, resp.Header, data)
	}
}

// TestMaxConns holds the connection cap with idle keep-alive connections:
// one more is not served until one of them closes.
func TestMaxConns(t *testing.T) {
	s := startServe(t, config{MaxConns: 2}, handlerOver(t, io.Discard))
	healthz := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", s.addr)
	var held []*rawConn
	for range 2 {
		c := dialRaw(t, s.addr)
		c.send(t, healthz)
		if resp, _ := c.response(t); resp.StatusCode != 200 {
			t.Fatalf("healthz %d", resp.StatusCode)
		}
		held = append(held, c)
	}
	third := dialRaw(t, s.addr) // queued in the backlog
	third.send(t, healthz)
	if err := third.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := third.r.ReadByte(); err == nil {
		t.Fatal("a third connection was served while two were open")
	}
	_ = held[0].Close()
	if err := third.SetReadDeadline(time.Now().Add(watchdog)); err != nil {
		t.Fatal(err)
	}
	if resp, _ := third.response(t); resp.StatusCode != 200 {
		t.Errorf("after a slot freed: %d", resp.StatusCode)
	}
}

// enteredHandler signals when a request has reached it.
type enteredHandler struct {
	next    http.Handler
	entered chan struct{}
}

func (h enteredHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	h.next.ServeHTTP(w, r)
}

// TestShutdownCutsTricklingBody stops the server while a client sends its
// body at a byte per half second: the body is cut at once, and the
// shutdown ends without waiting for its timeout (longer than the watchdog).
func TestShutdownCutsTricklingBody(t *testing.T) {
	entered := make(chan struct{}, 1)
	logs := &testproc.Buffer{}
	h := enteredHandler{next: handlerOver(t, io.Discard), entered: entered}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config{Listen: "127.0.0.1:0", Timeouts: timeouts{Shutdown: 10 * watchdog, Read: 10 * watchdog}}
	ln, err := listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, ln, h, slog.New(slog.NewJSONHandler(logs, nil)), nil)
	}()
	addr := ln.Addr().String()
	c := dialRaw(t, addr)
	c.send(t, fmt.Sprintf("POST /api/runtimes/x/workers/w/stop HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", addr))
	stopTrickle := make(chan struct{})
	defer close(stopTrickle)
	go func() {
		for {
			select {
			case <-stopTrickle:
				return
			case <-time.After(500 * time.Millisecond):
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	select {
	case <-entered:
	case <-time.After(watchdog):
		t.Fatal("the request never reached the handler")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(watchdog):
		t.Fatal("the trickling body held the shutdown")
	}
	if strings.Contains(logs.String(), "shutdown timed out") {
		t.Errorf("the shutdown had to time out: %s", logs)
	}
}

// TestShutdownThatClosesConnectionsIsClean: a request that does not finish
// within the shutdown timeout is cut off, and serve still reports a clean
// stop, logged in JSON.
func TestShutdownThatClosesConnectionsIsClean(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	h := enteredHandler{entered: entered, next: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release })}
	logs := &testproc.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config{Listen: "127.0.0.1:0", Timeouts: timeouts{Shutdown: 100 * time.Millisecond}}
	ln, err := listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, h, slog.New(slog.NewJSONHandler(logs, nil)), nil) }()
	c := dialRaw(t, ln.Addr().String())
	c.send(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(watchdog):
		t.Fatal("serve did not return")
	}
	if _, err := io.ReadAll(c.r); err != nil {
		t.Errorf("the connection was not closed: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "shutdown timed out") {
		t.Errorf("no log line says the shutdown closed connections: %s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

// TestSIGTERMWithTricklingBody runs the real process: SIGTERM while a body
// trickles in ends it with exit code 0 and only JSON on stderr.
func TestSIGTERMWithTricklingBody(t *testing.T) {
	cmd, stderr := serverProcess(t, "--listen", "127.0.0.1:0", "--workspace-id", "ws")
	var addr string
	deadline := time.Now().Add(watchdog)
	for addr == "" && time.Now().Before(deadline) {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var l struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
				addr = l.Listen
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if addr == "" {
		t.Fatalf("the server did not start: %s", stderr)
	}
	// Wait until it serves (the index is built after the listener opens).
	c := dialRaw(t, addr)
	c.send(t, fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr))
	if resp, _ := c.response(t); resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	c.send(t, fmt.Sprintf("POST /api/runtimes/x/workers/w/stop HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", addr))
	stopTrickle := make(chan struct{})
	defer close(stopTrickle)
	go func() {
		for {
			select {
			case <-stopTrickle:
				return
			case <-time.After(500 * time.Millisecond):
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	time.Sleep(time.Second) // let a few bytes arrive; not a correctness bound
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("exit code %d, want 0; stderr %s", code, stderr)
	}
	out := stderr.String()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stderr line is not JSON: %s", line)
		}
	}
	if strings.Contains(out, "shutdown timed out") {
		t.Errorf("the trickling body held the shutdown to its timeout: %s", out)
	}
}

// TestShutdownEndsEventStreams opens an event stream, then stops the server:
// the stream ends at once (the handler's Shutdown channel is the one run
// passes, ctx.Done()), so the shutdown never waits for its timeout (longer
// than the watchdog).
func TestShutdownEndsEventStreams(t *testing.T) {
	src := registrytest.New("rt")
	reg, err := registry.New(registry.Options{WorkspaceID: "ws", Auditor: registry.Auditors{}}, registrytest.EventStreamer{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testproc.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	h, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log, Shutdown: ctx.Done()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{Listen: "127.0.0.1:0", Timeouts: timeouts{Shutdown: 10 * watchdog}}
	ln, err := listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, h, log, nil) }()
	addr := ln.Addr().String()
	c := dialRaw(t, addr)
	c.send(t, fmt.Sprintf("GET /api/runtimes/rt/events HTTP/1.1\r\nHost: %s\r\n\r\n", addr))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(watchdog):
		t.Fatal("an open event stream held the shutdown")
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("the stream did not end cleanly: %v", err)
	}
	if strings.Contains(logs.String(), "shutdown timed out") {
		t.Errorf("the shutdown had to time out: %s", logs)
	}
}

// TestHeadOfEventStream: HEAD of an event stream answers the stream's
// headers and ends, so that the same connection serves the next request.
func TestHeadOfEventStream(t *testing.T) {
	src := registrytest.New("rt")
	s := startServe(t, config{}, handlerOver(t, io.Discard, registrytest.EventStreamer{Source: src}))
	c := dialRaw(t, s.addr)
	for _, path := range []string{"/api/runtimes/rt/events", "/api/runtimes/rt/events?cursor=abc"} {
		c.send(t, fmt.Sprintf("HEAD %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, s.addr))
		resp, err := http.ReadResponse(c.r, &http.Request{Method: "HEAD"})
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("HEAD %s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	c.send(t, fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", s.addr))
	if resp, _ := c.response(t); resp.StatusCode != 200 {
		t.Errorf("after HEAD of a stream: %d", resp.StatusCode)
	}
}
