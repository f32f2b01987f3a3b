package handlers_test

import (
	"encoding/json"
	"flag"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/registry/registrytest"
)

// The validation fast path (validate.go) must answer exactly what the full
// kin-openapi validator answers. These tests run both on the same random
// requests: random methods and paths over every route of the contract (and
// some outside it), real, random and invalid ids, random query strings and
// random headers, and require the same status, problem code and field.

func TestFastPathCoversTheReadsWithoutABody(t *testing.T) {
	got, err := handlers.FastPathOperationIDs()
	if err != nil {
		t.Fatal(err)
	}
	// Every GET whose parameters are ids, optional plain queries and
	// If-None-Match; not the console's assets (their path parameter is not
	// an id) nor the event streams (Last-Event-ID has a pattern).
	want := []string{"getConsole", "getHealth", "getMetrics", "getOpenAPISpec", "getRuntime", "getWorker",
		"getWorkerTranscript", "listHostWorkers", "listHosts", "listRuntimeHosts", "listRuntimeProfiles",
		"listRuntimeWorkers", "listRuntimes", "listWorkers"}
	if !slices.Equal(got, want) {
		t.Errorf("operations with a fast path:\n got %v\nwant %v", got, want)
	}
}

// fastEnv is the same registry served twice: with the fast path (counting
// what it admits) and with the full validator only.
type fastEnv struct {
	fast, full http.Handler
	admitted   atomic.Int64
	templates  []string
	runtimes   []string
	workers    []string
	hosts      []string
	etags      []string
	tagged     map[string]string // path → its current ETag
	statuses   map[int]int
}

func newFastEnv(t *testing.T) *fastEnv {
	t.Helper()
	a := registrytest.New("runtime-a", "w1", "w2")
	b := registrytest.New("runtime-b", "w1", "w3")
	reg, err := registry.New(registry.Options{WorkspaceID: "ws"},
		registrytest.ProfileLister{Source: a}, registrytest.TranscriptReader{Source: b})
	if err != nil {
		t.Fatal(err)
	}
	e := &fastEnv{runtimes: []string{"runtime-a", "runtime-b"}, workers: []string{"w1", "w2", "w3"},
		hosts: []string{string(a.HostID()), string(b.HostID())}, statuses: map[int]int{}, tagged: map[string]string{}}
	opts := handlers.ServerOptions{Logger: slog.New(slog.DiscardHandler)}
	if e.fast, err = handlers.NewServerCountingFastPath(reg, opts, func() { e.admitted.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if e.full, err = handlers.NewServerFullValidation(reg, opts); err != nil {
		t.Fatal(err)
	}
	// Real tags, so that some requests are answered 304.
	for _, p := range []string{"/api/workers", "/api/runtimes/runtime-a/workers/w1", "/api/runtimes", "/api/runtimes/runtime-b/workers"} {
		rec := httptest.NewRecorder()
		e.full.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost"+p, nil))
		if rec.Code != 200 || rec.Header().Get("ETag") == "" {
			t.Fatalf("GET %s: %d, ETag %q", p, rec.Code, rec.Header().Get("ETag"))
		}
		e.etags = append(e.etags, rec.Header().Get("ETag"))
		e.tagged[p] = rec.Header().Get("ETag")
	}
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	for path := range c.doc.Paths.Map() {
		e.templates = append(e.templates, path)
	}
	slices.Sort(e.templates)
	e.templates = append(e.templates, "/api", "/api/nothing", "/api/runtimes/{runtime_id}/nothing", "/healthz/{runtime_id}")
	return e
}

// id draws a path id: a real one, one of the id alphabet, one too long,
// or anything.
func (e *fastEnv) id(t *rapid.T, real []string, label string) string {
	return rapid.OneOf(
		rapid.SampledFrom(real),
		rapid.SampledFrom(real),
		rapid.StringMatching(`[A-Za-z0-9_:-]{1,120}`),
		rapid.StringMatching(`[A-Za-z0-9_:-]{121,130}`),
		rapid.SampledFrom([]string{"", ".", "..", "a.b", "a b", "é", "a%2Fb", "a/b", "app.js", "index.html", "a:b", "-", "_"}),
		rapid.String(),
	).Draw(t, label)
}

func (e *fastEnv) target(t *rapid.T) string {
	tpl := rapid.SampledFrom(e.templates).Draw(t, "template")
	path := strings.NewReplacer(
		"{runtime_id}", url.PathEscape(e.id(t, e.runtimes, "runtime_id")),
		"{worker_id}", url.PathEscape(e.id(t, e.workers, "worker_id")),
		"{host_id}", url.PathEscape(e.id(t, e.hosts, "host_id")),
		"{asset}", url.PathEscape(e.id(t, []string{"app.js", "missing.css"}, "asset")),
	).Replace(tpl)
	if rapid.IntRange(0, 1).Draw(t, "with_query") > 0 {
		return path
	}
	var parts []string
	for i := range rapid.IntRange(0, 3).Draw(t, "params") {
		name := rapid.OneOf(
			rapid.SampledFrom([]string{"limit", "cursor", "after", "token", "Limit", "data_dir"}),
			rapid.StringMatching(`[a-z_]{1,8}`),
			rapid.String(),
		).Draw(t, "name"+strconv.Itoa(i))
		value := rapid.OneOf(
			rapid.SampledFrom([]string{"", "0", "1", "50", "200", "201", "-1", "x", "007", "+1", "1e2", "1.0", " 1",
				"999999999", "9999999999", "9223372036854775807", strings.Repeat("a", 512), strings.Repeat("a", 513), "a.b", "a%20b"}),
			rapid.Map(rapid.IntRange(-5, 300), strconv.Itoa),
			rapid.StringMatching(`[A-Za-z0-9_:-]{1,24}`),
			rapid.String(),
		).Draw(t, "value"+strconv.Itoa(i))
		if rapid.IntRange(0, 9).Draw(t, "bare") == 0 {
			parts = append(parts, url.QueryEscape(name))
		} else {
			parts = append(parts, url.QueryEscape(name)+"="+url.QueryEscape(value))
		}
	}
	// An empty query ("?" alone) is drawn too.
	return path + "?" + strings.Join(parts, "&")
}

// ifNoneMatch draws the values of an If-None-Match header (nil: absent).
func (e *fastEnv) ifNoneMatch(t *rapid.T) []string {
	one := rapid.OneOf(
		rapid.SampledFrom(e.etags),
		rapid.SampledFrom(e.etags),
		rapid.SampledFrom([]string{`"0123456789abcdef0123456789abcdef"`, `W/"abc"`, "*", "", " ", `"a", "b"`}),
		rapid.Just(strings.Repeat("a", 4096)),
		rapid.Just(strings.Repeat("a", 4097)),
		rapid.Just(strings.Repeat("é", 2048)),
		rapid.Just(strings.Repeat("é", 2049)),
		rapid.Just(strings.Repeat("é", 4097)),
		rapid.Just("\xff\xfe"),
		rapid.String(),
	)
	switch rapid.IntRange(0, 5).Draw(t, "if_none_match") {
	case 0, 1, 2:
		return nil
	case 3:
		return []string{one.Draw(t, "etag"), one.Draw(t, "etag2")}
	}
	return []string{one.Draw(t, "etag")}
}

func (e *fastEnv) request(t *rapid.T) (method, target string, header http.Header) {
	method = rapid.SampledFrom([]string{"GET", "GET", "GET", "GET", "HEAD", "POST", "DELETE", "OPTIONS"}).Draw(t, "method")
	header = http.Header{}
	if rapid.IntRange(0, 7).Draw(t, "revalidation") == 0 {
		// A revalidation of a real answer, which the tag may match.
		target = rapid.SampledFrom(slices.Sorted(maps.Keys(e.tagged))).Draw(t, "tagged")
		header["If-None-Match"] = []string{rapid.SampledFrom([]string{e.tagged[target], `"x", ` + e.tagged[target], "W/" + e.tagged[target]}).Draw(t, "tag")}
	} else {
		target = e.target(t)
		if v := e.ifNoneMatch(t); v != nil {
			header["If-None-Match"] = v
		}
	}
	for i := range rapid.IntRange(0, 3).Draw(t, "headers") {
		name := rapid.OneOf(
			rapid.SampledFrom([]string{"Last-Event-ID", "Idempotency-Key", "Content-Type", "Accept", "X-Anything", "if-none-match"}),
			rapid.StringMatching(`[A-Za-z-]{1,12}`),
		).Draw(t, "header"+strconv.Itoa(i))
		header.Add(name, rapid.OneOf(rapid.SampledFrom([]string{"", "x", "application/json", "1"}), rapid.String()).Draw(t, "header_value"+strconv.Itoa(i)))
	}
	return method, target, header
}

// verdict is what both validators must agree on.
type verdict struct {
	status      int
	code, field string
}

func serveVerdict(t *rapid.T, h http.Handler, method, target string, header http.Header) verdict {
	req := httptest.NewRequest(method, "http://localhost"+target, nil)
	req.Header = header.Clone()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	v := verdict{status: rec.Code}
	if rec.Code >= 400 && method != http.MethodHead {
		var p gen.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s %s: answer %d is not a problem: %q", method, target, rec.Code, rec.Body.Bytes())
		}
		v.code = string(p.Code)
		if p.Field != nil {
			v.field = *p.Field
		}
	}
	return v
}

// same is the property: both servers give req the same verdict.
func (e *fastEnv) same(t *rapid.T) {
	method, target, header := e.request(t)
	if _, err := url.ParseRequestURI(target); err != nil {
		t.Skip("no client sends this target")
	}
	full := serveVerdict(t, e.full, method, target, header)
	fast := serveVerdict(t, e.fast, method, target, header)
	if fast != full {
		t.Fatalf("%s %s (headers %q): with the fast path %+v, full validator %+v", method, target, header, fast, full)
	}
	e.statuses[full.status]++
}

func TestFastPathAnswersAsTheFullValidator(t *testing.T) {
	e := newFastEnv(t)
	rapid.Check(t, e.same)
	t.Logf("answers by status: %v; admitted by the fast path: %d", e.statuses, e.admitted.Load())
	// The generators must reach both sides of every decision, or the
	// comparison proves little.
	for _, s := range []int{200, 304, 400, 404, 405} {
		if e.statuses[s] == 0 {
			t.Errorf("no request was answered %d", s)
		}
	}
	if e.admitted.Load() == 0 {
		t.Error("the fast path admitted no request")
	}
}

// TestFastPathPropertyCatchesABrokenFastPath: a fast path that forgets the
// bound of If-None-Match, or the bounds of limit, answers 200 where the
// contract says 400, and the property must say so.
func TestFastPathPropertyCatchesABrokenFastPath(t *testing.T) {
	prev := flag.Lookup("rapid.nofailfile").Value.String()
	if err := flag.Set("rapid.nofailfile", "true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flag.Set("rapid.nofailfile", prev) })
	for _, tc := range []struct {
		name   string
		server func(*registry.Registry, handlers.ServerOptions) (http.Handler, error)
	}{
		{"unchecked headers", handlers.NewServerUncheckedHeaders},
		{"unbounded queries", handlers.NewServerUnboundedQueries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFastEnv(t)
			reg, err := registry.New(registry.Options{WorkspaceID: "ws"}, registrytest.New("runtime-a", "w1", "w2"))
			if err != nil {
				t.Fatal(err)
			}
			if e.fast, err = tc.server(reg, handlers.ServerOptions{Logger: slog.New(slog.DiscardHandler)}); err != nil {
				t.Fatal(err)
			}
			rec := &failureRecorder{name: t.Name()}
			for range 50 {
				if rapid.Check(rec, e.same); rec.failed {
					return
				}
			}
			t.Fatal("the property passed against a broken fast path")
		})
	}
}

// failureRecorder is a rapid.TB that records a failure instead of failing
// the test.
type failureRecorder struct {
	name   string
	failed bool
}

var _ rapid.TB = (*failureRecorder)(nil)

func (r *failureRecorder) Helper()               {}
func (r *failureRecorder) Name() string          { return r.name }
func (r *failureRecorder) Logf(string, ...any)   {}
func (r *failureRecorder) Log(...any)            {}
func (r *failureRecorder) Skipf(string, ...any)  {}
func (r *failureRecorder) Skip(...any)           {}
func (r *failureRecorder) SkipNow()              {}
func (r *failureRecorder) Errorf(string, ...any) { r.failed = true }
func (r *failureRecorder) Error(...any)          { r.failed = true }
func (r *failureRecorder) Fatalf(string, ...any) { r.failed = true }
func (r *failureRecorder) Fatal(...any)          { r.failed = true }
func (r *failureRecorder) FailNow()              { r.failed = true }
func (r *failureRecorder) Fail()                 { r.failed = true }
func (r *failureRecorder) Failed() bool          { return r.failed }
