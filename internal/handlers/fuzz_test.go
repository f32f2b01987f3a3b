package handlers_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// fuzzMethods are the methods the handler fuzzer picks from.
var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND"}

// fuzzContentTypes are the Content-Type headers the handler fuzzer picks from.
var fuzzContentTypes = []string{"", "application/json", "application/json; charset=utf-8", "text/plain",
	"application/problem+json", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"}

// newFuzzStore writes a small pod store: one listed pod, one of another
// workspace, one with broken metadata. It returns the data dir and root.
func newFuzzStore(tb testing.TB) (dataDir, root string) {
	tb.Helper()
	base := tb.TempDir()
	root = filepath.Join(base, "ws", "project")
	dataDir = filepath.Join(base, "data")
	pods := map[string]string{
		"00001KVWECEQG-Coder.Worker": fmt.Sprintf(`{"worker_name":"00001KVWECEQG-Coder.Worker","workspace_root":%q,"active":{"session_id":"s-1","segment_id":"g"}}`, root),
		"reviewer":                   fmt.Sprintf(`{"worker_name":"reviewer","workspace_root":%q,"resolved_manifest_snapshot":{"role":"reviewer"}}`, root),
		"other-workspace":            `{"workspace_root":"/elsewhere/project"}`,
		"broken":                     `{"workspace_root":`,
	}
	for name, doc := range pods {
		dir := filepath.Join(dataDir, "pods", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(doc), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dataDir, root
}

// FuzzHandler sends arbitrary requests (method, path, query, Content-Type,
// body) through the real server over the local compatibility source. Every
// request the HTTP server itself would accept must be answered per the
// contract (checkResponse): never a 500, every error a problem+json document
// with a code of the contract's ProblemCode enum, nosniff and no CORS grant.
func FuzzHandler(f *testing.F) {
	w := string(compat.WorkerIDFor("00001KVWECEQG-Coder.Worker"))
	rt := string(compat.RuntimeID)
	seeds := []struct {
		method uint8
		path   string
		query  string
		ctype  uint8
		body   string
	}{
		{0, "/healthz", "", 0, ""},
		{0, "/api/openapi.json", "", 0, ""},
		{0, "/api/runtimes", "", 0, ""},
		{0, "/api/hosts", "", 0, ""},
		{0, "/api/workers", "x=1", 0, ""},
		{0, "/api/hosts/" + string(compat.HostIDFor("ws")) + "/workers", "", 0, ""},
		{0, "/api/runtimes/" + rt, "", 0, ""},
		{0, "/api/runtimes/" + rt + "/hosts", "", 0, ""},
		{0, "/api/runtimes/" + rt + "/workers", "limit=1", 0, ""},
		{0, "/api/runtimes/" + rt + "/workers", "limit=1&cursor=YzF8bG9jYWwtd29ya2VyLXJ1bnRpbWV8YQ", 0, ""},
		{0, "/api/runtimes/" + rt + "/workers", "cursor=%ff&limit=-1", 0, ""},
		{0, "/api/runtimes/" + rt + "/workers/" + w, "", 0, ""},
		{0, "/api/runtimes/" + rt + "/workers/" + string(compat.WorkerIDFor("other-workspace")), "", 0, ""},
		{0, "/api/runtimes/" + rt + "/workers/..%2F..%2Fetc", "", 0, ""},
		{1, "/api/runtimes/" + rt + "/workers", "", 1, `{"intent":{"kind":"task","objective":"x"},"worker_name":"n"}`},
		{1, "/api/runtimes/" + rt + "/workers/" + w + "/input", "", 1, `{"kind":"user","content":"hi"}`},
		{1, "/api/runtimes/" + rt + "/workers/" + w + "/stop", "", 2, `{"mode":"force","extra":1}`},
		{1, "/api/runtimes/" + rt + "/workers/" + w + "/stop", "", 3, `mode=force`},
		{1, "/api/runtimes/" + rt + "/workers/" + w + "/input", "", 1, `{"kind":"user","content":` + strings.Repeat("[", 5000) + `}`},
		{3, "/api/runtimes/" + rt, "", 0, ""},
		{5, "/api/workers", "", 0, ""},
		{6, "/api/workers", "", 0, ""},
		{0, "//api//workers/", "", 0, ""},
		{0, "/api/runtimes/%00", "", 0, ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.ctype, []byte(s.body))
	}
	dataDir, root := newFuzzStore(f)
	src := compat.New(compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: dataDir})
	log := slog.New(slog.DiscardHandler)
	reg, err := registry.New(registry.Options{WorkspaceID: "ws", Auditor: registry.SlogAuditor{Logger: log}}, src)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, methodIdx uint8, path, query string, ctypeIdx uint8, body []byte) {
		method := fuzzMethods[int(methodIdx)%len(fuzzMethods)]
		target := path
		if query != "" {
			target += "?" + query
		}
		ctype := fuzzContentTypes[int(ctypeIdx)%len(fuzzContentTypes)]
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "%s %s HTTP/1.1\r\nHost: example.test\r\n", method, target)
		if ctype != "" {
			fmt.Fprintf(&raw, "Content-Type: %s\r\n", ctype)
		}
		fmt.Fprintf(&raw, "Content-Length: %d\r\n\r\n", len(body))
		raw.Write(body)
		req, err := http.ReadRequest(bufio.NewReader(&raw))
		if err != nil || !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n") {
			// The HTTP server refuses this request line itself, before any
			// handler runs (a plain 400 from net/http).
			return
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		resp := response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		if resp.Status >= 500 && resp.Status != http.StatusNotImplemented && resp.Status != http.StatusServiceUnavailable {
			t.Fatalf("%s %q: status %d: %s", method, target, resp.Status, resp.Body)
		}
		if resp.Status >= 400 {
			var p struct {
				Code string `json:"code"`
			}
			if err := json.Unmarshal(resp.Body, &p); err != nil || p.Code == "" {
				t.Fatalf("%s %q: error %d without a problem code: %s", method, target, resp.Status, resp.Body)
			}
		}
		checkFuzzResponse(t, method, target, resp)
		_, _ = io.Copy(io.Discard, req.Body)
	})
}

// checkFuzzResponse is checkResponse, except for one case the contract's
// router cannot judge: a path that echo routes to an operation but the
// contract's router does not match (an id holding an escaped '/' or a quote,
// say). Such a request names an id that fails the id rule, so the only
// right answer is a 400 invalid_identifier problem.
func checkFuzzResponse(t *testing.T, method, target string, resp response) {
	t.Helper()
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.router.FindRoute(httptest.NewRequest(routeMethod(method), target, nil)); err == nil || resp.Status != http.StatusBadRequest {
		checkResponse(t, method, target, resp)
		return
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("%s %s: security headers %v", method, target, resp.Header)
	}
	checkProblem(t, c, method, target, resp)
	if p := resp.problem(t); p.Code != gen.ProblemCodeInvalidIdentifier {
		t.Errorf("%s %s: no contract operation, yet %d %s", method, target, resp.Status, p.Code)
	}
}
