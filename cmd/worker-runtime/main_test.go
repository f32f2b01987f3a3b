package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/contract"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testproc.MainWithBinary(m, "worker-runtime-test-", &bin)) }

type answer struct {
	status int
	header http.Header
	body   []byte
}

func call(t *testing.T, method, url, token string, body string, hdr map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func checker(t *testing.T) *contract.ResponseChecker {
	t.Helper()
	root, err := testproc.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := contract.LoadSpec(t.Context(), filepath.Join(root, "api", "worker-runtime.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := contract.NewResponseChecker(doc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func code(body []byte) string {
	var p struct{ Code string }
	_ = json.Unmarshal(body, &p)
	return p.Code
}

func createWorker(t *testing.T, p *testproc.Proc, profile string) string {
	t.Helper()
	a := call(t, "POST", p.URL+"/v1/workers", p.Token, `{"intent":{"kind":"task","objective":"test"},"profile":"`+profile+`"}`, nil)
	if a.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var w struct {
		WorkerID string `json:"worker_id"`
	}
	if err := json.Unmarshal(a.body, &w); err != nil {
		t.Fatal(err)
	}
	return w.WorkerID
}

// waitState polls a worker until its state is want (hang guard only).
func waitState(t *testing.T, p *testproc.Proc, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := call(t, "GET", p.URL+"/v1/workers/"+id, p.Token, "", nil)
		var w map[string]any
		_ = json.Unmarshal(a.body, &w)
		if w["state"] == want {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s never reached %s: %s", id, want, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every route answers 401 unauthenticated without the token or with a
// wrong one (healthz needs none), and what the contract says with it;
// every answer conforms to the contract.
func TestEveryRouteWithAndWithoutToken(t *testing.T) {
	p := testproc.Start(t, bin, testproc.Options{})
	chk := checker(t)
	id := createWorker(t, p, "echo")
	waitState(t, p, id, "active")
	routes := []struct {
		name, method, path, body string
		want                     int
	}{
		{"runtime", "GET", "/v1/runtime", "", 200},
		{"openapi", "GET", "/v1/openapi.json", "", 200},
		{"list", "GET", "/v1/workers?limit=5", "", 200},
		{"create", "POST", "/v1/workers", `{"intent":{"kind":"assistant","purpose":"p"}}`, 202},
		{"get", "GET", "/v1/workers/" + id, "", 200},
		{"input", "POST", "/v1/workers/" + id + "/input", `{"kind":"user","content":"hi"}`, 202},
		{"transcript", "GET", "/v1/workers/" + id + "/transcript?after=0&limit=10", "", 200},
		{"stop", "POST", "/v1/workers/" + id + "/stop", `{"mode":"graceful"}`, 202},
		{"unknown worker", "GET", "/v1/workers/no-such-worker", "", 404},
		{"bad id", "GET", "/v1/workers/bad%20id", "", 400},
		{"unknown query", "GET", "/v1/workers?x=1", "", 400},
		{"unknown body field", "POST", "/v1/workers", `{"intent":{"kind":"task"},"command":"rm"}`, 400},
		{"unknown profile", "POST", "/v1/workers", `{"intent":{"kind":"task"},"profile":"nope"}`, 400},
		{"unknown route", "GET", "/v1/nothing", "", 404},
	}
	for _, tc := range routes {
		t.Run(tc.name, func(t *testing.T) {
			for _, tok := range []string{"", "wrong-token"} {
				a := call(t, tc.method, p.URL+tc.path, tok, tc.body, nil)
				if a.status != http.StatusUnauthorized || code(a.body) != "unauthenticated" {
					t.Errorf("token %q: %d %s, want 401 unauthenticated", tok, a.status, a.body)
				}
			}
			a := call(t, tc.method, p.URL+tc.path, p.Token, tc.body, nil)
			if a.status != tc.want {
				t.Fatalf("%d %s, want %d", a.status, a.body, tc.want)
			}
			req, _ := http.NewRequest(tc.method, p.URL+tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if err := chk.Check(t.Context(), req, a.status, a.header, a.body); err != nil {
				t.Errorf("answer breaks the contract: %v", err)
			}
		})
	}
	t.Run("healthz", func(t *testing.T) {
		a := call(t, "GET", p.URL+"/healthz", "", "", nil)
		if a.status != 200 || !bytes.Contains(a.body, []byte(`"ok"`)) {
			t.Fatalf("%d %s", a.status, a.body)
		}
	})
	t.Run("events", func(t *testing.T) {
		for _, tok := range []string{"", "wrong"} {
			if a := call(t, "GET", p.URL+"/v1/events", tok, "", nil); a.status != 401 {
				t.Fatalf("events without token: %d", a.status)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+p.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		br := bufio.NewReader(resp.Body)
		first, _ := br.ReadString('\n')
		if first != ": ok\n" {
			t.Fatalf("first line %q", first)
		}
		// An event made after the headers arrives.
		created := createWorker(t, p, "counter")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "data: ") && strings.Contains(line, created) {
				return
			}
		}
	})
	// Neither the token nor input content reaches the log.
	if p.Contains(p.Token) || p.Contains(`"hi"`) {
		t.Error("the log holds the token or input content")
	}
}

// Without a token file, a non-loopback listen address is refused with exit
// status 2 and one line.
func TestRefusesNonLoopbackWithoutToken(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(prof, []byte(testproc.Profiles), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		cmd := exec.CommandContext(t.Context(), bin, "--listen", listen, "--state-dir", filepath.Join(dir, "s"), "--profiles", prof)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("%s: %v, want exit 2", listen, err)
		}
		if lines := strings.Count(strings.TrimSpace(stderr.String()), "\n"); lines != 0 || !strings.Contains(stderr.String(), "non-loopback") {
			t.Fatalf("%s: stderr %q, want one line about the non-loopback address", listen, stderr.String())
		}
	}
	// Missing required flags are exit 2 as well.
	cmd := exec.CommandContext(t.Context(), bin, "--profiles", prof)
	if err := cmd.Run(); err == nil {
		t.Fatal("started without --state-dir")
	} else if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("without --state-dir: %v, want exit 2", err)
	}
}

// SIGTERM stops the workers (stopped:runtime_shutdown) and the process
// exits 0; started again on the same store it has the workers and their
// transcripts.
func TestGracefulShutdownStopsWorkers(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := testproc.Start(t, bin, testproc.Options{StateDir: state})
	id := createWorker(t, p, "echo")
	waitState(t, p, id, "active")
	if a := call(t, "POST", p.URL+"/v1/workers/"+id+"/input", p.Token, `{"kind":"user","content":"before"}`, nil); a.status != 202 {
		t.Fatalf("input: %d %s", a.status, a.body)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err, ok := p.Wait(60 * time.Second)
	if !ok {
		t.Fatal("did not exit after SIGTERM")
	}
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, p.Log())
	}
	q := testproc.Start(t, bin, testproc.Options{StateDir: state, Token: p.Token})
	w := waitState(t, q, id, "stopped")
	if w["status"] != "stopped:runtime_shutdown" {
		t.Fatalf("status %v, want stopped:runtime_shutdown", w["status"])
	}
	a := call(t, "GET", q.URL+"/v1/workers/"+id+"/transcript", q.Token, "", nil)
	if !bytes.Contains(a.body, []byte(`"before"`)) {
		t.Fatalf("transcript lost: %s", a.body)
	}
}
