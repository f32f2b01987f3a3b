package contract_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/contract"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// toolsEnv enables the checks that need the external tools (Node packages,
// oasdiff, the Go toolchain); `make contract` sets it after `npm ci`.
const toolsEnv = "CONTRACT_TOOLS"

// requireTools skips t unless the external tools are enabled. Under `make
// contract` they are, and a missing tool is then a failure, not a skip.
func requireTools(t *testing.T) {
	t.Helper()
	if os.Getenv(toolsEnv) == "" {
		t.Skipf("needs the external contract tools: run `make contract` (it sets %s=1 after npm ci)", toolsEnv)
	}
}

// repoRoot is the repository root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func repo(t testing.TB) contract.Repo { return contract.DefaultRepo(repoRoot(t)) }

// specChecker is the response checker over api/openapi.yaml, loaded once.
var specChecker = sync.OnceValues(func() (*contract.ResponseChecker, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	doc, err := contract.LoadSpec(context.Background(), filepath.Join(root, "api", "openapi.yaml"))
	if err != nil {
		return nil, err
	}
	return contract.NewResponseChecker(doc)
})

func checker(t testing.TB) *contract.ResponseChecker {
	t.Helper()
	c, err := specChecker()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Sample workspace settings, as `make run` uses them.
const (
	sampleWorkspaceID   = "local:sample"
	sampleWorkspaceRoot = "/srv/workspaces/sample-app"
	reservedRuntimeID   = "remote-later"
)

func sampleDataDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "examples", "sample-workspace", "data")
}

// newSampleHandler is the real echo server over a registry holding the local
// compatibility source (on dataDir; "" means none configured) and a reserved
// remote Runtime.
func newSampleHandler(t testing.TB, dataDir string) http.Handler {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	local := compat.New(compat.Config{WorkspaceID: sampleWorkspaceID, WorkspaceRoot: sampleWorkspaceRoot, DataDir: dataDir, Logger: log})
	reserved := registry.NewReservedSource(reservedRuntimeID, registry.SourceRemoteHTTP, "Remote Runtime, later")
	reg, err := registry.New(registry.Options{WorkspaceID: sampleWorkspaceID, MaxRecords: 50, Auditor: registry.SlogAuditor{Logger: log}}, local, reserved)
	if err != nil {
		t.Fatal(err)
	}
	e, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// exchange is one request and the response it got.
type exchange struct {
	req    *http.Request
	status int
	header http.Header
	body   []byte
}

// serve sends req to h in-process.
func serve(h http.Handler, req *http.Request) exchange {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return exchange{req: req, status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// newRequest builds a request for target (path and query, already escaped)
// with an optional body.
func newRequest(ctx context.Context, method, target, contentType string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://registry.test"+target, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// copyFile copies src to a new file in dir and returns its path.
func copyFile(t testing.TB, src, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// editedCopy writes to dir/name the file src with old replaced by new (which
// must occur in it).
func editedCopy(t testing.TB, src, dir, name, old, replacement string) string {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), old) {
		t.Fatalf("%s does not contain %q", src, old)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, []byte(strings.Replace(string(raw), old, replacement, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}
