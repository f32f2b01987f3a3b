package contract_test

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/workspace-backend/runtime-registry/internal/contract"
	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Property-based contract tests: random, valid and hostile requests against
// the real echo server (over the sample workspace, or over no data dir at
// all), each answer checked against the contract. `make contract-fuzz` runs
// them with many more cases (-rapid.checks).

// propEnv is the servers under test and the real ids and cursors they answer.
type propEnv struct {
	servers   []http.Handler
	checker   *contract.ResponseChecker
	runtimes  []string
	hosts     []string
	workers   []string
	cursors   []string
	bodyNames []string
	// statuses counts the answers by status, to show what the generators reach.
	statuses map[int]int
}

func newPropEnv(t *testing.T) *propEnv {
	t.Helper()
	sample := newSampleHandler(t, sampleDataDir(t))
	env := &propEnv{
		servers:  []http.Handler{sample, newSampleHandler(t, "")},
		checker:  checker(t),
		statuses: map[int]int{},
		runtimes: []string{"local-worker-runtime", reservedRuntimeID},
		bodyNames: []string{"intent", "kind", "purpose", "objective", "role", "profile", "worker_name", "content", "mode",
			"endpoint", "token", "callback", "session_id", "data_dir", "workspace_root", "socket_path", "runtime_id", "worker_id"},
	}
	get := func(target string, v any) {
		req, err := newRequest(t.Context(), "GET", target, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		x := serve(sample, req)
		if x.status != 200 {
			t.Fatalf("GET %s: %d %s", target, x.status, x.body)
		}
		if err := json.Unmarshal(x.body, v); err != nil {
			t.Fatal(err)
		}
	}
	var workers gen.WorkerList
	get("/api/workers", &workers)
	for _, w := range workers.Items {
		env.workers = append(env.workers, w.WorkerId)
		env.hosts = append(env.hosts, w.HostId)
	}
	env.workers = append(env.workers, "local-worker-other-workspace-pod-0000000000000000")
	for _, limit := range []string{"1", "2", "3"} {
		var page gen.WorkerList
		get("/api/runtimes/local-worker-runtime/workers?limit="+limit, &page)
		if page.NextCursor == nil {
			t.Fatalf("no next_cursor with limit %s", limit)
		}
		env.cursors = append(env.cursors, *page.NextCursor)
	}
	return env
}

var (
	hostileIDs = []string{
		"", ".", "..", "../..", "a/b", "%2F", "..%2F..%2Fetc", "%252F", "a%00b", "a b", "a?b", "a#b", "a.b",
		"é", "日本語", "\u202e", "local-worker-runtime/", "/local-worker-runtime", "Local Worker runtime",
		strings.Repeat("a", 121), strings.Repeat("z", 400), "local-worker-runtime%2F..",
	}
	limitValues = []string{
		"0", "-1", "1", "2", "50", "51", "200", "201", "-0", "+1", "1.5", "1e2", "0x10", " 1", "ten", "",
		"99999999999999999999999", "9223372036854775807", "-9223372036854775808", "１",
	}
	forbiddenQuery = []string{"token", "data_dir", "session_id", "endpoint", "callback", "workspace_root", "LIMIT", "limit[]", "page", "offset"}
	contentTypes   = []string{"application/json", "application/json", "application/json", "application/json; charset=utf-8",
		"text/plain", "", "application/x-www-form-urlencoded", "application/problem+json", "application/json; charset=latin1"}
)

func (e *propEnv) id(real []string) *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.SampledFrom(real),
		rapid.StringMatching(`[A-Za-z0-9_:-]{1,120}`),
		rapid.StringMatching(`[a-z0-9-]{1,40}`),
		rapid.StringMatching(`[A-Za-z0-9_:-]{121,140}`),
		rapid.SampledFrom(hostileIDs),
		rapid.String(),
		rapid.StringOf(rapid.RuneFrom([]rune("a/.%2F:é日 ?#\x00\\"))),
	)
}

// segment puts id into a path: escaped, "raw" (with '/' and '%' left as they
// are, so it may change the route), or escaped twice.
func segment(t *rapid.T, id string) string {
	escaped := url.PathEscape(id)
	switch rapid.IntRange(0, 2).Draw(t, "escaping") {
	case 1:
		raw := strings.NewReplacer("%2F", "/", "%25", "%").Replace(escaped)
		if _, err := url.Parse("http://x/" + raw); err == nil {
			return raw
		}
	case 2:
		return url.PathEscape(escaped)
	}
	return escaped
}

func (e *propEnv) cursor() *rapid.Generator[string] {
	return rapid.OneOf(
		rapid.SampledFrom(e.cursors),
		rapid.Custom(func(t *rapid.T) string { // a real cursor with one character changed
			c := []byte(rapid.SampledFrom(e.cursors).Draw(t, "cursor"))
			i := rapid.IntRange(0, len(c)-1).Draw(t, "at")
			c[i] = rapid.SampledFrom([]byte("AZaz09_-.=")).Draw(t, "char")
			return string(c)
		}),
		rapid.StringMatching(`[A-Za-z0-9_-]{1,80}`),
		rapid.StringMatching(`[A-Za-z0-9_-]{500,530}`),
		rapid.String(),
	)
}

// query draws a raw query string: limit, cursor, unknown and forbidden names,
// repeated names, and values of every shape.
func (e *propEnv) query(t *rapid.T) string {
	var parts []string
	for i := range rapid.IntRange(0, 4).Draw(t, "params") {
		name := rapid.OneOf(
			rapid.SampledFrom([]string{"limit", "cursor"}),
			rapid.SampledFrom(forbiddenQuery),
			rapid.StringMatching(`[a-z_]{1,10}`),
			rapid.String(),
		).Draw(t, "name"+strconv.Itoa(i))
		var value string
		switch name {
		case "limit":
			value = rapid.OneOf(rapid.SampledFrom(limitValues), rapid.Map(rapid.IntRange(-300, 300), strconv.Itoa)).Draw(t, "limit")
		case "cursor":
			value = e.cursor().Draw(t, "cursor")
		default:
			value = rapid.String().Draw(t, "value")
		}
		if rapid.IntRange(0, 9).Draw(t, "bare") == 0 {
			parts = append(parts, url.QueryEscape(name))
		} else {
			parts = append(parts, url.QueryEscape(name)+"="+url.QueryEscape(value))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "?" + strings.Join(parts, "&")
}

// jsonValue draws any JSON value, nested at most depth deep.
func jsonValue(depth int) *rapid.Generator[any] {
	return rapid.Custom(func(t *rapid.T) any {
		kinds := 4
		if depth > 0 {
			kinds = 6
		}
		switch rapid.IntRange(0, kinds-1).Draw(t, "kind") {
		case 0:
			return nil
		case 1:
			return rapid.Bool().Draw(t, "bool")
		case 2:
			return rapid.OneOf(rapid.Map(rapid.Int(), func(i int) any { return i }),
				rapid.Map(rapid.Float64(), func(f float64) any { return f })).Draw(t, "number")
		case 3:
			return rapid.OneOf(rapid.String(), rapid.StringN(2000, 2100, -1), rapid.SampledFrom([]string{"", "user", "system", "graceful", "force", "task", "role", "assistant"})).Draw(t, "string")
		case 4:
			return rapid.SliceOfN(jsonValue(depth-1), 0, 3).Draw(t, "array")
		default:
			return rapid.MapOfN(rapid.String(), jsonValue(depth-1), 0, 3).Draw(t, "object")
		}
	})
}

// body draws a broken request body for op: a valid one mutated (a key
// dropped, an unknown or forbidden key added, a value replaced), replaced by
// any JSON value, or cut short.
func (e *propEnv) body(t *rapid.T, op string) []byte {
	var m map[string]any
	if err := json.Unmarshal(e.validBody(t, op), &m); err != nil {
		t.Fatal(err)
	}
	var v any = m
	switch rapid.IntRange(1, 5).Draw(t, "mutation") {
	case 1:
		for k := range m {
			delete(m, k)
			break
		}
	case 2:
		m[rapid.OneOf(rapid.SampledFrom(e.bodyNames), rapid.String()).Draw(t, "key")] = jsonValue(2).Draw(t, "value")
	case 3:
		m[rapid.SampledFrom(e.bodyNames).Draw(t, "key")] = jsonValue(2).Draw(t, "value")
	case 4:
		v = jsonValue(3).Draw(t, "body")
	case 5:
		raw, _ := json.Marshal(m)
		return raw[:rapid.IntRange(0, len(raw)-1).Draw(t, "cut")]
	}
	raw, err := json.Marshal(v)
	if err != nil { // e.g. NaN: send it as broken JSON
		return []byte(`{"mode":NaN}`)
	}
	return raw
}

// validBody draws a request body that op accepts.
func (e *propEnv) validBody(t *rapid.T, op string) []byte {
	var m map[string]any
	switch op {
	case "create":
		kind := rapid.SampledFrom([]string{"assistant", "task", "role"}).Draw(t, "intent")
		m = map[string]any{"intent": map[string]any{"kind": kind, map[string]string{"assistant": "purpose", "task": "objective", "role": "role"}[kind]: "Write the notes"}}
		if rapid.Bool().Draw(t, "profile") {
			m["profile"] = "default"
		}
		if rapid.Bool().Draw(t, "worker_name") {
			m["worker_name"] = "notes"
		}
	case "input":
		m = map[string]any{"kind": rapid.SampledFrom([]string{"user", "system"}).Draw(t, "kind"), "content": "Please rebase."}
	default:
		m = map[string]any{"mode": rapid.SampledFrom([]string{"graceful", "force"}).Draw(t, "mode")}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// send builds and serves one request and asserts the contract properties:
// no 500, an answer the contract allows (status, content type, schema), and
// every error a problem whose code the contract declares and the server's one
// code table maps to this status.
func (e *propEnv) send(t *rapid.T, method, target, contentType string, body []byte) {
	req, err := newRequest(context.Background(), method, target, contentType, body)
	if err != nil {
		t.Skipf("no client can send %q: %v", target, err)
	}
	x := serve(e.servers[rapid.IntRange(0, len(e.servers)-1).Draw(t, "server")], req)
	e.statuses[x.status]++
	if x.status == http.StatusInternalServerError {
		t.Fatalf("%s %s answered 500: %s", method, target, x.body)
	}
	if err := e.checker.Check(context.Background(), x.req, x.status, x.header, x.body); err != nil {
		t.Fatalf("%s %s (Content-Type %q, body %q): %v\nresponse %d: %s", method, target, contentType, body, err, x.status, x.body)
	}
	if x.status >= 400 {
		var p gen.Problem
		if err := json.Unmarshal(x.body, &p); err != nil {
			t.Fatal(err)
		}
		if got := handlers.StatusOf(registry.Code(p.Code)); got != x.status {
			t.Fatalf("%s %s: code %s answered with %d, the code table says %d", method, target, p.Code, x.status, got)
		}
	}
}

var readTemplates = []string{
	"/healthz", "/api/openapi.json", "/api/runtimes", "/api/hosts", "/api/workers",
	"/api/hosts/{h}/workers", "/api/runtimes/{r}", "/api/runtimes/{r}/hosts",
	"/api/runtimes/{r}/workers", "/api/runtimes/{r}/workers/{w}",
}

var opTemplates = map[string]string{
	"create": "/api/runtimes/{r}/workers",
	"input":  "/api/runtimes/{r}/workers/{w}/input",
	"stop":   "/api/runtimes/{r}/workers/{w}/stop",
}

// requireReached fails t unless the generators reached every status in want:
// a property that only ever sees one kind of answer proves little.
func (e *propEnv) requireReached(t *testing.T, want ...int) {
	t.Helper()
	t.Logf("answers by status: %v", e.statuses)
	for _, s := range want {
		if e.statuses[s] == 0 {
			t.Errorf("no request was answered %d: the generators miss a class of requests", s)
		}
	}
}

func (e *propEnv) path(t *rapid.T, template string) string {
	return strings.NewReplacer(
		"{r}", segment(t, e.id(e.runtimes).Draw(t, "runtime_id")),
		"{w}", segment(t, e.id(e.workers).Draw(t, "worker_id")),
		"{h}", segment(t, e.id(e.hosts).Draw(t, "host_id")),
	).Replace(template)
}

// Faults a request of the "one fault at a time" properties may carry: it
// starts valid, and at most one part of it is then drawn at random.
const (
	faultNone = iota
	faultRuntimeID
	faultOtherID
	faultUnknownID
	faultQuery
	faultBody
	faultContentType
	faultCount
)

// validQuery draws a query the list operations accept: an optional limit in
// range and an optional real cursor.
func (e *propEnv) validQuery(t *rapid.T) string {
	var parts []string
	if rapid.Bool().Draw(t, "with_limit") {
		parts = append(parts, "limit="+strconv.Itoa(rapid.IntRange(1, 50).Draw(t, "limit")))
	}
	if rapid.Bool().Draw(t, "with_cursor") {
		parts = append(parts, "cursor="+rapid.SampledFrom(e.cursors).Draw(t, "cursor"))
	}
	if len(parts) == 0 {
		return ""
	}
	return "?" + strings.Join(parts, "&")
}

// faulty draws the target, content type and body of a request to template
// (of operation op, "" for a read) with at most one fault.
func (e *propEnv) faulty(t *rapid.T, template, op string) (target, contentType string, body []byte) {
	fault := rapid.IntRange(0, faultCount-1).Draw(t, "fault")
	r := url.PathEscape(rapid.SampledFrom([]string{"local-worker-runtime", "local-worker-runtime", "local-worker-runtime", reservedRuntimeID}).Draw(t, "runtime_id"))
	w := url.PathEscape(rapid.SampledFrom(e.workers).Draw(t, "worker_id"))
	h := url.PathEscape(rapid.SampledFrom(e.hosts).Draw(t, "host_id"))
	switch fault {
	case faultRuntimeID:
		r = segment(t, e.id(e.runtimes).Draw(t, "bad_runtime_id"))
	case faultOtherID:
		w = segment(t, e.id(e.workers).Draw(t, "bad_worker_id"))
		h = segment(t, e.id(e.hosts).Draw(t, "bad_host_id"))
	case faultUnknownID: // well-formed ids nobody has
		unknown := "unknown-" + rapid.StringMatching(`[A-Za-z0-9_:-]{1,100}`).Draw(t, "unknown_id")
		switch rapid.IntRange(0, 2).Draw(t, "which") {
		case 0:
			r = unknown
		case 1:
			w = unknown
		default:
			h = unknown
		}
	}
	target = strings.NewReplacer("{r}", r, "{w}", w, "{h}", h).Replace(template)
	switch {
	case fault == faultQuery:
		target += e.query(t)
	case strings.HasSuffix(template, "/workers") && op == "":
		target += e.validQuery(t)
	}
	if op == "" {
		return target, "", nil
	}
	contentType = "application/json"
	if fault == faultContentType {
		contentType = rapid.SampledFrom(contentTypes).Draw(t, "content_type")
	}
	if fault == faultBody {
		return target, contentType, e.body(t, op)
	}
	return target, contentType, e.validBody(t, op)
}

// reads is the property of the read operations.
func (e *propEnv) reads(t *rapid.T) {
	target, _, _ := e.faulty(t, rapid.SampledFrom(readTemplates).Draw(t, "template"), "")
	e.send(t, "GET", target, "", nil)
}

// operations is the property of the create, input and stop operations.
func (e *propEnv) operations(t *rapid.T) {
	op := rapid.SampledFrom([]string{"create", "input", "stop"}).Draw(t, "op")
	target, contentType, body := e.faulty(t, opTemplates[op], op)
	e.send(t, "POST", target, contentType, body)
}

func TestPropertyReadsConformToTheContract(t *testing.T) {
	e := newPropEnv(t)
	rapid.Check(t, e.reads)
	e.requireReached(t, 200, 400, 404)
}

func TestPropertyOperationsConformToTheContract(t *testing.T) {
	e := newPropEnv(t)
	rapid.Check(t, e.operations)
	e.requireReached(t, 400, 501)
}

// The properties fail against a server that breaks the contract: each double
// wraps the real server and spoils some of its answers.
func TestPropertiesFailOnAViolatingServer(t *testing.T) {
	tests := []struct {
		name     string
		property func(e *propEnv) func(*rapid.T)
		mutate   func(path string, body map[string]any)
	}{
		{"success answer with an extra property", func(e *propEnv) func(*rapid.T) { return e.reads }, func(_ string, body map[string]any) {
			if _, isProblem := body["code"]; !isProblem {
				body["endpoint"] = "http://10.0.0.7:9000"
			}
		}},
		{"problem with a code outside the enum", func(e *propEnv) func(*rapid.T) { return e.operations }, func(_ string, body map[string]any) {
			if body["code"] == "operation_unsupported" {
				body["code"], body["type"] = "not_supported", contract.ProblemTypePrefix+"not_supported"
			}
		}},
		{"problem whose status disagrees", func(e *propEnv) func(*rapid.T) { return e.reads }, func(_ string, body map[string]any) {
			if body["code"] == "invalid_request" {
				body["status"] = 422
			}
		}},
	}
	// These failures are expected: write no fail files for them.
	prev := flag.Lookup("rapid.nofailfile").Value.String()
	if err := flag.Set("rapid.nofailfile", "true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flag.Set("rapid.nofailfile", prev) })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newPropEnv(t)
			for i, h := range e.servers {
				e.servers[i] = mutatingHandler{next: h, mutate: tc.mutate}
			}
			rec := &recordingTB{name: t.Name()}
			rapid.Check(rec, tc.property(e))
			if !rec.failed {
				t.Fatal("the property passed against a server that breaks the contract")
			}
		})
	}
}

// recordingTB is a rapid.TB that records a failure instead of failing the
// test, so that a test can require a property to fail.
type recordingTB struct {
	name   string
	failed bool
}

var _ rapid.TB = (*recordingTB)(nil)

func (r *recordingTB) Helper()               {}
func (r *recordingTB) Name() string          { return r.name }
func (r *recordingTB) Logf(string, ...any)   {}
func (r *recordingTB) Log(...any)            {}
func (r *recordingTB) Skipf(string, ...any)  {}
func (r *recordingTB) Skip(...any)           {}
func (r *recordingTB) SkipNow()              {}
func (r *recordingTB) Errorf(string, ...any) { r.failed = true }
func (r *recordingTB) Error(...any)          { r.failed = true }
func (r *recordingTB) Fatalf(string, ...any) { r.failed = true }
func (r *recordingTB) Fatal(...any)          { r.failed = true }
func (r *recordingTB) FailNow()              { r.failed = true }
func (r *recordingTB) Fail()                 { r.failed = true }
func (r *recordingTB) Failed() bool          { return r.failed }

func TestPropertyAnyRequestConformsToTheContract(t *testing.T) {
	e := newPropEnv(t)
	templates := append([]string{"/", "/api", "/api/", "/api/nothing", "/api/runtimes/{r}/workers/{w}/events", "/healthz/{r}"}, readTemplates...)
	for _, tpl := range opTemplates {
		templates = append(templates, tpl)
	}
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
	ops := []string{"create", "input", "stop"}
	rapid.Check(t, func(t *rapid.T) {
		method := rapid.SampledFrom(methods).Draw(t, "method")
		target := e.path(t, rapid.SampledFrom(templates).Draw(t, "template")) + e.query(t)
		var body []byte
		if rapid.Bool().Draw(t, "with_body") {
			body = e.body(t, rapid.SampledFrom(ops).Draw(t, "shape"))
		}
		e.send(t, method, target, rapid.SampledFrom(contentTypes).Draw(t, "content_type"), body)
	})
	e.requireReached(t, 400, 404, 405)
}
