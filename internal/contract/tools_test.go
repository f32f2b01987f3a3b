package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/contract"
)

// These tests run the external tools: they need `npm ci` in clients/typescript
// and reach the Go module proxy once for oasdiff. `make contract` runs them.

func TestSpecLintsClean(t *testing.T) {
	requireTools(t)
	t.Parallel()
	if out, err := repo(t).Lint(t.Context()); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "valid") {
		t.Fatalf("unexpected Redocly output:\n%s", out)
	}
}

func TestLintCatchesViolations(t *testing.T) {
	requireTools(t)
	t.Parallel()
	spec := repo(t).Path("api/openapi.yaml")
	tests := []struct{ name, old, replacement, rule string }{
		{"duplicate operationId", "operationId: listHosts\n", "operationId: listRuntimes\n", "operation-operationId-unique"},
		// no-unused-components is off (redocly.yaml says why), so a missing
		// operation summary stands for the other rules.
		{"operation without summary", "      summary: Liveness check\n", "", "operation-summary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := repo(t)
			r.Spec = editedCopy(t, spec, t.TempDir(), "openapi.yaml", tc.old, tc.replacement)
			out, err := r.Lint(t.Context())
			if err == nil {
				t.Fatalf("Redocly accepted a violating spec:\n%s", out)
			}
			if !strings.Contains(out, tc.rule) {
				t.Fatalf("Redocly failed without reporting %s:\n%s", tc.rule, out)
			}
		})
	}
}

func TestGeneratedCodeIsReproducible(t *testing.T) {
	requireTools(t)
	t.Parallel()
	if err := repo(t).Drift(t.Context(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// A drifted generated file, and a spec changed without `make generate`, are
// each caught. The drift check writes only to its temporary folder.
func TestDriftCheckCatchesViolations(t *testing.T) {
	requireTools(t)
	t.Parallel()
	base := repo(t)
	tests := []struct {
		name    string
		breakIt func(t *testing.T, r *contract.Repo)
		want    []string
	}{
		{"hand-edited Go file", func(t *testing.T, r *contract.Repo) {
			r.GoGenerated = editedCopy(t, r.Path(r.GoGenerated), t.TempDir(), "api.gen.go", "package gen\n", "package gen\n\n// hand edit\n")
		}, []string{"api.gen.go"}},
		{"hand-edited TypeScript schema", func(t *testing.T, r *contract.Repo) {
			r.TSGenerated = editedCopy(t, r.Path(r.TSGenerated), t.TempDir(), "schema.d.ts", "status: number;", "status: string;")
		}, []string{"schema.d.ts"}},
		{"spec changed without make generate", func(t *testing.T, r *contract.Repo) {
			r.Spec = editedCopy(t, r.Path(r.Spec), t.TempDir(), "openapi.yaml", "summary: Liveness check\n", "summary: Liveness probe\n")
		}, []string{"api.gen.go", "schema.d.ts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := base
			tc.breakIt(t, &r)
			err := r.Drift(t.Context(), t.TempDir())
			if err == nil {
				t.Fatal("drift was not detected")
			}
			if !strings.Contains(err.Error(), "differs from what the spec generates") {
				t.Fatalf("the drift check failed for another reason: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the drift error does not name %s: %v", w, err)
				}
			}
		})
	}
}

// oasdiffBuilt builds oasdiff once, before the parallel tests run it.
var oasdiffBuilt = sync.OnceValue(func() error {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return err
	}
	return contract.DefaultRepo(root).BuildOasdiff(context.Background())
})

// newestSnapshot is the baseline of the breaking-change check. It also makes
// sure oasdiff is built.
func newestSnapshot(t *testing.T, r contract.Repo) string {
	t.Helper()
	if err := oasdiffBuilt(); err != nil {
		t.Fatal(err)
	}
	snaps, err := r.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return snaps[len(snaps)-1].Path
}

func TestNoBreakingChangeSinceTheLastRelease(t *testing.T) {
	requireTools(t)
	t.Parallel()
	r := repo(t)
	if out, err := r.Breaking(t.Context(), newestSnapshot(t, r), r.Spec); err != nil {
		t.Fatalf("api/openapi.yaml breaks the released contract; see CHANGELOG.md for how to release a deliberate break:\n%v", err)
	} else {
		t.Log(out)
	}
}

// Each kind of break is caught against the released snapshot, and a growing
// ProblemCode enum counts as one (see CHANGELOG.md); a compatible change passes.
func TestBreakingChangeCheckCatchesViolations(t *testing.T) {
	requireTools(t)
	t.Parallel()
	spec := repo(t).Path("api/openapi.yaml")
	tests := []struct {
		name, old, replacement string
		wantBreak              bool
		rule                   string
	}{
		{"endpoint removed", "  /api/hosts:\n", "  /api/hosts-renamed:\n", true, "api-path-removed-without-deprecation"},
		{"required response property made optional", "        - worker_id\n        - runtime_id\n        - host_id\n        - label\n", "        - worker_id\n        - runtime_id\n        - host_id\n", true, "response-property-became-optional"},
		{"new required query parameter", "        - $ref: '#/components/parameters/Cursor'\n", "        - $ref: '#/components/parameters/Cursor'\n        - name: since\n          in: query\n          required: true\n          description: x\n          schema:\n            type: string\n", true, "new-required-request-parameter"},
		{"new problem code", "        - internal\n", "        - internal\n        - rate_limited\n", true, "response-property-enum-value-added"},
		{"compatible: new optional query parameter", "        - $ref: '#/components/parameters/Cursor'\n", "        - $ref: '#/components/parameters/Cursor'\n        - name: since\n          in: query\n          required: false\n          description: x\n          schema:\n            type: string\n", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := repo(t)
			rev := editedCopy(t, spec, t.TempDir(), "openapi.yaml", tc.old, tc.replacement)
			out, err := r.Breaking(t.Context(), newestSnapshot(t, r), rev)
			switch {
			case tc.wantBreak && err == nil:
				t.Fatalf("oasdiff passed a breaking change:\n%s", out)
			case tc.wantBreak && !strings.Contains(err.Error(), tc.rule):
				t.Fatalf("oasdiff failed without reporting %s: %v", tc.rule, err)
			case !tc.wantBreak && err != nil:
				t.Fatalf("oasdiff failed a compatible change: %v", err)
			}
		})
	}
}

func TestTypeScriptClientTypeChecks(t *testing.T) {
	requireTools(t)
	t.Parallel()
	if _, err := repo(t).TypeCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// tsc --noEmit fails on code that misuses the generated types: the check
// really covers the client's types.
func TestTypeCheckCatchesMisuse(t *testing.T) {
	requireTools(t)
	t.Parallel()
	r := repo(t)
	// Inside node_modules (ignored by git) so that openapi-fetch resolves.
	dir, err := os.MkdirTemp(filepath.Join(r.Path(r.ClientDir), "node_modules"), ".contract-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	files := map[string]string{
		"tsconfig.json": `{"extends": "../../tsconfig.json", "compilerOptions": {"rootDir": "../.."}, "include": ["misuse.ts"]}`,
		"misuse.ts": `import { createRegistryClient } from "../../src/client.js";
const api = createRegistryClient("");
await api.GET("/api/runtimes/{runtime_id}", { params: { path: { runtimeId: "x" } } });
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := r.TypeCheckProject(t.Context(), dir)
	if err == nil {
		t.Fatalf("tsc accepted a wrong path parameter name:\n%s", out)
	}
	if !strings.Contains(out, "misuse.ts") || !strings.Contains(out, "runtimeId") {
		t.Fatalf("tsc failed for another reason:\n%s", out)
	}
}

// builtClient compiles the TypeScript client into clients/typescript/dist once.
var builtClient = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	return contract.DefaultRepo(root).BuildClient(context.Background())
})

// runSmoke runs the compiled smoke program against baseURL.
func runSmoke(t *testing.T, baseURL string) (string, error) {
	t.Helper()
	if out, err := builtClient(); err != nil {
		t.Fatalf("compiling the TypeScript client: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "dist/smoke.js", baseURL)
	cmd.Dir = repo(t).Path("clients/typescript")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The smoke walk of the TypeScript client against the real server binary,
// started on a free loopback port over the sample workspace.
func TestTypeScriptSmokeAgainstTheServer(t *testing.T) {
	requireTools(t)
	t.Parallel()
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "server")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/server")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	base := startServer(t, bin, "--workspace-id", sampleWorkspaceID, "--workspace-root", sampleWorkspaceRoot,
		"--data-dir", filepath.Join(root, "examples", "sample-workspace", "data"))
	out, err := runSmoke(t, base)
	if err != nil {
		t.Fatalf("smoke failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "checks passed") {
		t.Fatalf("smoke output:\n%s", out)
	}
	t.Log(out)
}

// A server that disagrees with the walk in any way makes the smoke fail.
func TestSmokeFailsOnAMismatch(t *testing.T) {
	requireTools(t)
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(path string, body map[string]any)
	}{
		{"merged list misses a worker", func(path string, body map[string]any) {
			if path == "/api/workers" {
				items := body["items"].([]any)
				body["items"] = items[:len(items)-1]
			}
		}},
		{"unknown worker answers another code", func(path string, body map[string]any) {
			if strings.HasSuffix(path, "/smoke-no-such-worker") {
				body["code"], body["type"] = "not_found", contract.ProblemTypePrefix+"not_found"
			}
		}},
		{"a page repeats a worker", func(path string, body map[string]any) {
			if items, ok := body["items"].([]any); ok && strings.HasSuffix(path, "/workers") && len(items) == 2 {
				items[1] = items[0]
			}
		}},
	}
	real := newSampleHandler(t, sampleDataDir(t))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(mutatingHandler{next: real, mutate: tc.mutate})
			t.Cleanup(srv.Close)
			out, err := runSmoke(t, srv.URL)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("smoke did not fail (%v):\n%s", err, out)
			}
			if !strings.Contains(out, "mismatch") {
				t.Errorf("smoke failed without naming the mismatch:\n%s", out)
			}
		})
	}
}

// mutatingHandler passes each request to next and lets mutate edit the JSON
// object it answers: a server double that disagrees with the contract walk.
type mutatingHandler struct {
	next   http.Handler
	mutate func(path string, body map[string]any)
}

func (h mutatingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	h.next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		h.mutate(r.URL.Path, m)
		body, _ = json.Marshal(m)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// startServer starts the server binary on a free loopback port (it binds
// 127.0.0.1:0 and logs the address), waits until /healthz answers, and stops
// it when the test ends. It returns the base URL.
func startServer(t *testing.T, bin string, args ...string) string {
	t.Helper()
	logs := &serverLog{addr: make(chan string, 1)}
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	cmd.Stderr = logs
	cmd.Stdout = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var addr string
	select {
	case addr = <-logs.addr:
	case <-exited:
		t.Fatalf("the server exited at start-up: %v\n%s", exitErr, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not log its address:\n%s", logs.String())
	}
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, err := http.NewRequestWithContext(t.Context(), "GET", base+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer 200: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverLog collects the server's JSON log lines and reports the address of
// its "listening" line.
type serverLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	pending []byte
	addr    chan string
}

func (l *serverLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.pending = append(l.pending, p...)
	for {
		i := bytes.IndexByte(l.pending, '\n')
		if i < 0 {
			break
		}
		var line struct{ Msg, Listen string }
		if json.Unmarshal(l.pending[:i], &line) == nil && line.Msg == "listening" && line.Listen != "" {
			select {
			case l.addr <- line.Listen:
			default:
			}
		}
		l.pending = l.pending[i+1:]
	}
	return len(p), nil
}

func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
