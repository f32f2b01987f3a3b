package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/workspace-backend/runtime-registry/api"
	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/registry/registrytest"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// contract is the embedded spec, loaded once, with the router the response
// validator uses to find each request's operation.
var contract = sync.OnceValues(func() (*contractRouter, error) {
	doc, err := api.Load()
	if err != nil {
		return nil, err
	}
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &contractRouter{doc: doc, router: router}, nil
})

type contractRouter struct {
	doc    *openapi3.T
	router routers.Router
}

// testServer is the real echo server over a registry, with every response
// checked against the contract.
type testServer struct {
	t       *testing.T
	handler http.Handler
	logs    *testproc.Buffer
}

// logText is what was logged so far; safe while a real server logs.
func (s *testServer) logText() string { return s.logs.String() }

func newTestServer(t *testing.T, opts registry.Options, sources ...registry.Source) *testServer {
	t.Helper()
	return newTestServerWith(t, opts, handlers.ServerOptions{}, sources...)
}

// newTestServerWith is newTestServer with server options (its Logger is
// replaced by the test's).
func newTestServerWith(t *testing.T, opts registry.Options, sopts handlers.ServerOptions, sources ...registry.Source) *testServer {
	t.Helper()
	logs := &testproc.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.Auditor == nil {
		opts.Auditor = registry.SlogAuditor{Logger: log}
	}
	reg, err := registry.New(opts, sources...)
	if err != nil {
		t.Fatal(err)
	}
	sopts.Logger = log
	e, err := handlers.NewServer(reg, sopts)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{t: t, handler: e, logs: logs}
}

// response is one answer of the server, already checked against the contract.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) problem(t *testing.T) gen.Problem {
	t.Helper()
	var p gen.Problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.Body, err)
	}
	return p
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
}

// do sends one request and fails the test if the response does not conform to
// the contract: an undeclared status, a body that does not match its schema, or
// an error that is not a well-formed problem document.
func (s *testServer) do(method, target string, body string, header ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(s.t.Context(), method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	resp := response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	checkResponse(s.t, method, target, resp)
	return resp
}

// problemCodes are the codes the contract declares.
var problemCodes = sync.OnceValue(func() []string {
	c, err := contract()
	if err != nil {
		panic(err)
	}
	var codes []string
	for _, v := range c.doc.Components.Schemas["ProblemCode"].Value.Enum {
		codes = append(codes, v.(string))
	}
	return codes
})

func checkResponse(t *testing.T, method, target string, resp response) {
	t.Helper()
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s %s: X-Content-Type-Options = %q", method, target, got)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("%s %s: grants CORS", method, target)
	}
	if resp.Status >= 400 {
		checkProblem(t, c, method, target, resp)
	}
	req := httptest.NewRequest(routeMethod(method), target, nil)
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// No operation: only not_found and method_not_allowed may answer (or
		// invalid_identifier for an empty id, "/api/runtimes//workers" or
		// "/api/runtimes/"), and checkProblem has validated their bodies
		// against Problem.
		emptyID := resp.Status == http.StatusBadRequest && (strings.Contains(req.URL.Path, "//") || strings.HasSuffix(req.URL.Path, "/")) &&
			resp.problem(t).Code == gen.ProblemCodeInvalidIdentifier
		if resp.Status != http.StatusNotFound && resp.Status != http.StatusMethodNotAllowed && !emptyID {
			t.Errorf("%s %s: no operation, yet status %d", method, target, resp.Status)
		}
		return
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.Status,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(resp.Body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		t.Errorf("%s %s: response %d does not match the contract: %v\nbody: %s", method, target, resp.Status, err, resp.Body)
	}
}

// routeMethod is the method whose operation answers method: HEAD is
// answered by the GET operation.
func routeMethod(method string) string {
	if method == http.MethodHead {
		return http.MethodGet
	}
	return method
}

func checkProblem(t *testing.T, c *contractRouter, method, target string, resp response) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s %s: error Content-Type %q", method, target, ct)
	}
	var v any
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		t.Fatalf("%s %s: problem is not JSON: %v", method, target, err)
	}
	if err := c.doc.Components.Schemas["Problem"].Value.VisitJSON(v); err != nil {
		t.Errorf("%s %s: problem does not match the Problem schema: %v", method, target, err)
	}
	var p gen.Problem
	_ = json.Unmarshal(resp.Body, &p)
	if p.Status != resp.Status || p.Type != handlers.ProblemTypePrefix+string(p.Code) ||
		p.Message != p.Detail || p.Error != http.StatusText(resp.Status) || p.Title == "" ||
		!slices.Contains(problemCodes(), string(p.Code)) {
		t.Errorf("%s %s: malformed problem %+v", method, target, p)
	}
	if handlers.StatusOf(registry.Code(p.Code)) != resp.Status {
		t.Errorf("%s %s: code %s answered with %d", method, target, p.Code, resp.Status)
	}
}

// newFakeSource is the shared registry test double with a host note, which
// the host lists pass on.
func newFakeSource(id registry.RuntimeID, workerIDs ...registry.WorkerID) *registrytest.Source {
	s := registrytest.New(id, workerIDs...)
	s.SetHostDiagnostics(registry.Diagnostic{Code: "fake_note", Severity: registry.SeverityInfo, Message: "a note"})
	return s
}

func TestEveryEndpointAnswersPerContract(t *testing.T) {
	a := newFakeSource("runtime-a", "w1", "w2", "w3")
	b := newFakeSource("runtime-b", "w1")
	s := newTestServer(t, registry.Options{WorkspaceID: "ws:test"}, registrytest.Full{Source: a}, b)

	tests := []struct {
		method, target, body string
		wantStatus           int
		wantInBody           []string
	}{
		{"GET", "/healthz", "", 200, []string{`"status":"ok"`}},
		{"GET", "/api/openapi.json", "", 200, []string{`"openapi":"3.0.3"`}},
		{"GET", "/api/runtimes", "", 200, []string{`"runtime_id":"runtime-a"`, `"runtime_id":"runtime-b"`, `"source":"worker_runtime_registry"`, `"workspace_id":"ws:test"`, `"limit":200`}},
		{"GET", "/api/hosts", "", 200, []string{`"host_id":"host-runtime-a"`, `"code":"fake_note"`}},
		{"GET", "/api/workers", "", 200, []string{`"worker_id":"w3"`, `"runtime_id":"runtime-b"`}},
		{"GET", "/api/hosts/host-runtime-b/workers", "", 200, []string{`"runtime_id":"runtime-b"`}},
		{"GET", "/api/runtimes/runtime-a", "", 200, []string{`"label":"Test runtime-a"`}},
		{"GET", "/api/runtimes/runtime-a/hosts", "", 200, []string{`"host_id":"host-runtime-a"`}},
		{"GET", "/api/runtimes/runtime-a/workers?limit=2", "", 200, []string{`"limit":2`, `"next_cursor":`}},
		{"GET", "/api/runtimes/runtime-a/workers/w2", "", 200, []string{`"worker_id":"w2"`, `"role":null`}},
		{"POST", "/api/runtimes/runtime-a/workers", `{"intent":{"kind":"task","objective":"write docs"},"worker_name":"docs"}`, 202, []string{`"label":"docs"`}},
		{"POST", "/api/runtimes/runtime-a/workers/w1/input", `{"kind":"user","content":"hello"}`, 202, []string{`"accepted":true`}},
		{"POST", "/api/runtimes/runtime-a/workers/w1/stop", `{"mode":"graceful"}`, 202, []string{`"state":"stopping"`, `"mode":"graceful"`}},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			s.t = t
			resp := s.do(tc.method, tc.target, tc.body)
			if resp.Status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.Status, tc.wantStatus, resp.Body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			for _, want := range tc.wantInBody {
				if !bytes.Contains(resp.Body, []byte(want)) {
					t.Errorf("body lacks %s: %s", want, resp.Body)
				}
			}
		})
	}
}

func TestPagingThroughNextCursor(t *testing.T) {
	s := newTestServer(t, registry.Options{}, newFakeSource("runtime-a", "w1", "w2", "w3", "w4", "w5"))
	var seen []string
	target := "/api/runtimes/runtime-a/workers?limit=2"
	for range 10 {
		var page gen.WorkerList
		s.do("GET", target, "").decode(t, &page)
		for _, w := range page.Items {
			seen = append(seen, w.WorkerId)
		}
		if page.NextCursor == nil {
			break
		}
		target = "/api/runtimes/runtime-a/workers?limit=2&cursor=" + *page.NextCursor
	}
	if !slices.Equal(seen, []string{"w1", "w2", "w3", "w4", "w5"}) {
		t.Errorf("paged %v", seen)
	}
}

func TestEveryErrorCodeIsAProblem(t *testing.T) {
	a := newFakeSource("runtime-a", "w1", "secret")
	a.Hide("secret")
	broken := newFakeSource("runtime-panics")
	broken.SetHook(func(_ context.Context, m registrytest.Method) error {
		if m == registrytest.MethodSummary {
			panic("fake source: summary of /very/secret/path")
		}
		return nil
	})
	reserved := registry.NewReservedSource("runtime-later", registry.SourceRemoteHTTP, "Remote later")
	s := newTestServer(t, registry.Options{MaxRecords: 50}, a, reserved, broken)

	tooLarge := `{"kind":"user","content":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name, method, target, body string
		wantCode                   gen.ProblemCode
		wantField                  string
	}{
		{"id with a dot", "GET", "/api/runtimes/bad.id", "", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"id too long", "GET", "/api/runtimes/" + strings.Repeat("a", 121), "", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"escaped slash in id", "GET", "/api/runtimes/runtime-a/workers/..%2Fetc", "", gen.ProblemCodeInvalidIdentifier, "worker_id"},
		{"bad host id", "GET", "/api/hosts/h@st/workers", "", gen.ProblemCodeInvalidIdentifier, "host_id"},
		{"empty id", "POST", "/api/runtimes//workers", `{"intent":{"kind":"task"}}`, gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"empty worker id", "POST", "/api/runtimes/runtime-a/workers//stop", `{"mode":"force"}`, gen.ProblemCodeInvalidIdentifier, "worker_id"},
		{"bad worker id on POST", "POST", "/api/runtimes/runtime-a/workers/w%20x/stop", `{"mode":"force"}`, gen.ProblemCodeInvalidIdentifier, "worker_id"},
		{"unknown query on legacy list", "GET", "/api/workers?data_dir=/tmp", "", gen.ProblemCodeInvalidRequest, "data_dir"},
		{"unknown query on paged list", "GET", "/api/runtimes/runtime-a/workers?limit=1&token=x", "", gen.ProblemCodeInvalidRequest, "token"},
		{"limit zero", "GET", "/api/runtimes/runtime-a/workers?limit=0", "", gen.ProblemCodeInvalidRequest, "limit"},
		{"limit over spec max", "GET", "/api/runtimes/runtime-a/workers?limit=201", "", gen.ProblemCodeInvalidRequest, "limit"},
		{"limit over max-records", "GET", "/api/runtimes/runtime-a/workers?limit=51", "", gen.ProblemCodeInvalidRequest, "limit"},
		{"limit not a number", "GET", "/api/runtimes/runtime-a/workers?limit=ten", "", gen.ProblemCodeInvalidRequest, "limit"},
		{"cursor of bad shape", "GET", "/api/runtimes/runtime-a/workers?cursor=a.b", "", gen.ProblemCodeInvalidRequest, "cursor"},
		{"cursor not ours", "GET", "/api/runtimes/runtime-a/workers?cursor=bm90LWEtY3Vyc29y", "", gen.ProblemCodeInvalidRequest, "cursor"},
		{"unknown body field", "POST", "/api/runtimes/runtime-a/workers/w1/stop", `{"mode":"force","callback":"http://x"}`, gen.ProblemCodeInvalidRequest, ""},
		{"bad enum", "POST", "/api/runtimes/runtime-a/workers/w1/stop", `{"mode":"nicely"}`, gen.ProblemCodeInvalidRequest, "mode"},
		{"nested bad enum", "POST", "/api/runtimes/runtime-a/workers", `{"intent":{"kind":"boss"}}`, gen.ProblemCodeInvalidRequest, "intent.kind"},
		{"missing field", "POST", "/api/runtimes/runtime-a/workers/w1/input", `{"kind":"user"}`, gen.ProblemCodeInvalidRequest, ""},
		{"malformed JSON", "POST", "/api/runtimes/runtime-a/workers/w1/input", `{"kind":`, gen.ProblemCodeInvalidRequest, ""},
		{"no body", "POST", "/api/runtimes/runtime-a/workers/w1/stop", "", gen.ProblemCodeInvalidRequest, ""},
		{"unknown runtime", "GET", "/api/runtimes/runtime-z", "", gen.ProblemCodeUnknownRuntime, ""},
		{"unknown runtime on worker", "GET", "/api/runtimes/runtime-z/workers/w1", "", gen.ProblemCodeUnknownRuntime, ""},
		{"unknown host", "GET", "/api/hosts/host-z/workers", "", gen.ProblemCodeUnknownHost, ""},
		{"unknown worker", "GET", "/api/runtimes/runtime-a/workers/w9", "", gen.ProblemCodeUnknownWorker, ""},
		{"label is not authority", "GET", "/api/runtimes/runtime-a/workers/Worker", "", gen.ProblemCodeUnknownWorker, ""},
		{"hidden worker", "GET", "/api/runtimes/runtime-a/workers/secret", "", gen.ProblemCodeWorkerNotVisible, ""},
		{"reserved runtime", "GET", "/api/runtimes/runtime-later/workers", "", gen.ProblemCodeRuntimeUnavailable, ""},
		{"unsupported stop", "POST", "/api/runtimes/runtime-a/workers/w1/stop", `{"mode":"force"}`, gen.ProblemCodeOperationUnsupported, ""},
		{"unsupported create", "POST", "/api/runtimes/runtime-a/workers", `{"intent":{"kind":"assistant"}}`, gen.ProblemCodeOperationUnsupported, ""},
		{"no route", "GET", "/api/nothing-here", "", gen.ProblemCodeNotFound, ""},
		{"trailing slash", "GET", "/api/runtimes/", "", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"wrong method", "DELETE", "/api/runtimes/runtime-a", "", gen.ProblemCodeMethodNotAllowed, ""},
		{"OPTIONS is not declared", "OPTIONS", "/api/runtimes/runtime-a", "", gen.ProblemCodeMethodNotAllowed, ""},
		{"body over 1 MiB", "POST", "/api/runtimes/runtime-a/workers/w1/input", tooLarge, gen.ProblemCodePayloadTooLarge, ""},
		{"panic in a source", "GET", "/api/runtimes/runtime-panics", "", gen.ProblemCodeInternal, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			resp := s.do(tc.method, tc.target, tc.body)
			p := resp.problem(t)
			if p.Code != tc.wantCode {
				t.Fatalf("code %s (%d), want %s: %s", p.Code, resp.Status, tc.wantCode, resp.Body)
			}
			if tc.wantField != "" && (p.Field == nil || *p.Field != tc.wantField) {
				t.Errorf("field = %v, want %s", p.Field, tc.wantField)
			}
			if bytes.Contains(resp.Body, []byte("secret/path")) || bytes.Contains(resp.Body, []byte("schema")) {
				t.Errorf("problem leaks internals: %s", resp.Body)
			}
		})
	}

	// The server goes on after a panic.
	s.t = t
	if resp := s.do("GET", "/healthz", ""); resp.Status != 200 {
		t.Errorf("after a panic /healthz answers %d", resp.Status)
	}
	if strings.Contains(s.logs.String(), "/very/secret/path") {
		t.Error("the log holds the panic's text")
	}
}

func TestProblemCarriesTheIDsItConcerns(t *testing.T) {
	s := newTestServer(t, registry.Options{}, newFakeSource("runtime-a", "w1"))
	p := s.do("GET", "/api/runtimes/runtime-a/workers/w404", "").problem(t)
	if p.RuntimeId == nil || *p.RuntimeId != "runtime-a" || p.WorkerId == nil || *p.WorkerId != "w404" {
		t.Errorf("problem ids: %+v", p)
	}
	p = s.do("GET", "/api/hosts/h404/workers", "").problem(t)
	if p.HostId == nil || *p.HostId != "h404" {
		t.Errorf("problem host id: %+v", p)
	}
}

func TestAuditLogLineForEveryAuthorityBearingCall(t *testing.T) {
	s := newTestServer(t, registry.Options{}, newFakeSource("runtime-a", "w1"))
	s.do("GET", "/api/runtimes/runtime-a/workers/w1", "")
	s.do("POST", "/api/runtimes/runtime-a/workers/w1/stop", `{"mode":"force"}`)
	var audits []map[string]any
	for line := range strings.Lines(s.logs.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "audit" {
			audits = append(audits, m)
		}
	}
	if len(audits) != 2 {
		t.Fatalf("audit lines %v, want 2", audits)
	}
	if audits[1]["operation"] != "stop_worker" || audits[1]["outcome"] != "operation_unsupported" || audits[1]["worker_id"] != "w1" {
		t.Errorf("stop audit line: %v", audits[1])
	}
}

func TestServedSpecIsTheContract(t *testing.T) {
	s := newTestServer(t, registry.Options{}, newFakeSource("runtime-a"))
	resp := s.do("GET", "/api/openapi.json", "")
	doc, err := openapi3.NewLoader().LoadFromData(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("served spec does not validate: %v", err)
	}
	// It is api/openapi.yaml as written, operationIds included (the spec that
	// oapi-codegen embeds capitalises them).
	file, err := openapi3.NewLoader().LoadFromFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the served spec differs from api/openapi.yaml")
	}
	if op := doc.Paths.Find("/api/hosts").Get; op == nil || op.OperationID != "listHosts" {
		t.Errorf("served operationId of GET /api/hosts = %v, want listHosts", op)
	}
}

func TestInternalErrorRevealsNothing(t *testing.T) {
	err := errors.New("open /data/pods/x/metadata.json: permission denied")
	src := newFakeSource("runtime-a")
	src.FailWith(err, registrytest.MethodSummary)
	s := newTestServer(t, registry.Options{}, src)
	resp := s.do("GET", "/api/runtimes/runtime-a", "")
	if resp.Status != 500 || bytes.Contains(resp.Body, []byte("/data/pods")) {
		t.Errorf("internal error: %d %s", resp.Status, resp.Body)
	}
	if strings.Contains(s.logs.String(), "/data/pods") {
		t.Error("the log holds the os error's path")
	}
}

// TestBlockedRuntimeLeavesListsAnswering: a Runtime that never answers is
// listed as unavailable (the summary still matches the contract), left out
// of the other merged lists with a diagnostic, and makes an unknown host 503.
func TestBlockedRuntimeLeavesListsAnswering(t *testing.T) {
	const timeout = 100 * time.Millisecond
	blocked := newFakeSource("runtime-blocked", "w1")
	blocked.BlockForever(t)
	s := newTestServer(t, registry.Options{SourceTimeout: timeout}, newFakeSource("runtime-a", "w1"), blocked)
	for _, tc := range []struct {
		target     string
		wantStatus int
		wantInBody []string
	}{
		{"/api/runtimes", 200, []string{`"label":"runtime-blocked"`, `"status":"unavailable"`, `"code":"runtime_unavailable"`}},
		{"/api/hosts", 200, []string{`"host_id":"host-runtime-a"`, `"code":"runtime_unavailable"`}},
		{"/api/workers", 200, []string{`"runtime_id":"runtime-a"`, `"code":"runtime_unavailable"`}},
		{"/api/hosts/host-runtime-a/workers", 200, []string{`"worker_id":"w1"`}},
		{"/api/hosts/host-runtime-blocked/workers", 503, []string{`"code":"runtime_unavailable"`, `"host_id":"host-runtime-blocked"`}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			s.t = t
			started := time.Now()
			resp := s.do("GET", tc.target, "")
			// A hang guard, not a timing assertion.
			if took := time.Since(started); took > timeout+5*time.Second {
				t.Errorf("answered after %s", took)
			}
			if resp.Status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.Status, tc.wantStatus, resp.Body)
			}
			for _, want := range tc.wantInBody {
				if !bytes.Contains(resp.Body, []byte(want)) {
					t.Errorf("body lacks %s: %s", want, resp.Body)
				}
			}
		})
	}
}
