package handlers_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// cacheableGETs are the operations that answer with an ETag.
var cacheableGETs = []string{
	"/api/runtimes",
	"/api/hosts",
	"/api/workers",
	"/api/hosts/host-runtime-a/workers",
	"/api/runtimes/runtime-a",
	"/api/runtimes/runtime-a/hosts",
	"/api/runtimes/runtime-a/workers?limit=2",
	"/api/runtimes/runtime-a/workers/w2",
}

func TestConditionalGET(t *testing.T) {
	s := newTestServer(t, registry.Options{}, newFakeSource("runtime-a", "w1", "w2", "w3"))
	for _, target := range cacheableGETs {
		t.Run(target, func(t *testing.T) {
			s.t = t
			first := s.do("GET", target, "")
			etag := first.Header.Get("ETag")
			if first.Status != 200 || !strings.HasPrefix(etag, `"`) || len(etag) != 34 {
				t.Fatalf("first answer %d with ETag %q", first.Status, etag)
			}
			if cc := first.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache", cc)
			}
			if again := s.do("GET", target, ""); again.Header.Get("ETag") != etag || !bytes.Equal(again.Body, first.Body) {
				t.Errorf("an unchanged answer changed: %q vs %q", again.Header.Get("ETag"), etag)
			}
			tests := []struct {
				header string
				want   int
			}{
				{etag, 304},
				{"W/" + etag, 304},
				{`"other", ` + etag, 304},
				{"*", 304},
				{`"other"`, 200},
				{strings.Trim(etag, `"`), 200},
			}
			for _, tc := range tests {
				resp := s.do("GET", target, "", "If-None-Match", tc.header)
				if resp.Status != tc.want {
					t.Errorf("If-None-Match %s: status %d, want %d", tc.header, resp.Status, tc.want)
				}
				if resp.Status == 304 && (len(resp.Body) != 0 || resp.Header.Get("ETag") != etag ||
					resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("Content-Type") != "") {
					t.Errorf("304 answer: headers %v body %q", resp.Header, resp.Body)
				}
			}
		})
	}
	s.t = t
	// Errors and operations are not to be stored.
	if resp := s.do("GET", "/api/runtimes/runtime-a/workers/w9", "", "If-None-Match", "*"); resp.Status != 404 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("problem: %d Cache-Control %q", resp.Status, resp.Header.Get("Cache-Control"))
	}
	if resp := s.do("POST", "/api/runtimes/runtime-a/workers/w1/stop", `{"mode":"force"}`); resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("operation: Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}

// TestConditionalGETOverTheIndex runs the real echo server over a started
// compat source: the ETag changes when a pod changes, and the cached body of
// a page is never served for new content.
func TestConditionalGETOverTheIndex(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	pods := filepath.Join(base, "data", "pods")
	write := func(pod, name string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(pods, pod), 0o755); err != nil {
			t.Fatal(err)
		}
		data := fmt.Appendf(nil, `{"worker_name":%q,"workspace_root":%q}`, name, root)
		if err := os.WriteFile(filepath.Join(pods, pod, "metadata.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		write(fmt.Sprintf("pod-%d", i), fmt.Sprintf("pod-%d", i))
	}
	src := compat.New(compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: filepath.Join(base, "data")})
	if err := src.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	s := newTestServer(t, registry.Options{WorkspaceID: "ws"}, src)

	targets := []string{"/api/workers", "/api/runtimes/local-worker-runtime/workers?limit=2",
		"/api/runtimes/local-worker-runtime/workers/" + string(compat.WorkerIDFor("pod-1"))}
	etags := map[string]string{}
	for _, target := range targets {
		resp := s.do("GET", target, "")
		etags[target] = resp.Header.Get("ETag")
		if again := s.do("GET", target, "", "If-None-Match", etags[target]); again.Status != 304 {
			t.Fatalf("%s: revalidation answered %d", target, again.Status)
		}
	}

	write("pod-1", "renamed")
	deadline := time.Now().Add(5 * time.Second)
	for _, target := range targets {
		for {
			resp := s.do("GET", target, "", "If-None-Match", etags[target])
			if resp.Status == 200 {
				if !bytes.Contains(resp.Body, []byte(`"label":"renamed"`)) || resp.Header.Get("ETag") == etags[target] {
					t.Errorf("%s: changed answer %s with ETag %s", target, resp.Body, resp.Header.Get("ETag"))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the change did not show", target)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestMetricsExposeNoIDs(t *testing.T) {
	m := handlers.NewMetrics()
	a := newFakeSource("runtime-a", "w1", "secret-worker-id")
	opts := registry.Options{Auditor: m.Auditor("runtime-a")}
	s := newTestServerWith(t, opts, handlers.ServerOptions{Metrics: m}, a)

	s.do("GET", "/api/runtimes/runtime-a/workers/secret-worker-id", "")
	s.do("GET", "/api/runtimes/runtime-a/workers/w404", "")
	s.do("GET", "/api/runtimes/runtime-zzz-unregistered/workers/w1", "")
	s.do("GET", "/api/no/such/route-xyz", "")
	s.do("PATCH", "/api/runtimes/runtime-a", "")
	s.do("GET", "/api/workers?data_dir=/tmp/secret-path", "")
	resp := s.do("GET", "/metrics", "")
	if resp.Status != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	body := string(resp.Body)
	for _, secret := range []string{"secret-worker-id", "w404", "runtime-zzz", "route-xyz", "secret-path", "/tmp"} {
		if strings.Contains(body, secret) {
			t.Errorf("metrics contain %q", secret)
		}
	}
	for _, want := range []string{
		`runtime_registry_http_requests_total{method="GET",route="/api/runtimes/:runtime_id/workers/:worker_id",status="200"} 1`,
		`runtime_registry_http_requests_total{method="GET",route="/api/runtimes/:runtime_id/workers/:worker_id",status="404"} 2`,
		`runtime_registry_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`runtime_registry_http_requests_total{method="GET",route="/api/workers",status="400"} 1`,
		`runtime_registry_operations_total{operation="get_worker",outcome="ok",runtime="runtime-a"} 1`,
		`runtime_registry_operations_total{operation="get_worker",outcome="unknown_worker",runtime="runtime-a"} 1`,
		`runtime_registry_operations_total{operation="get_worker",outcome="unknown_runtime",runtime="unregistered"} 1`,
		`runtime_registry_http_request_duration_seconds_count{route="/api/workers"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Every route label is a registered template or "unmatched".
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		_, rest, ok := strings.Cut(line, `route="`)
		if !ok {
			continue
		}
		route, _, _ := strings.Cut(rest, `"`)
		if route != "unmatched" && route != "/metrics" && route != "/healthz" && !strings.HasPrefix(route, "/api/") {
			t.Errorf("route label %q", route)
		}
		for seg := range strings.SplitSeq(route, "/") {
			if seg != "" && !strings.HasPrefix(seg, ":") && !json.Valid([]byte(`"`+seg+`"`)) {
				t.Errorf("route label %q", route)
			}
			if strings.Contains(seg, "runtime-a") || strings.Contains(seg, "w1") {
				t.Errorf("route label %q holds an id", route)
			}
		}
	}
}

// TestLookupCache checks that a Worker by id is encoded once per version: an
// unchanged version answers the bytes encoded before (even when the double
// breaks its promise, which is how the test sees the cache), a new version
// answers the Worker as it is now, and a Source with no version is encoded
// every time.
func TestLookupCache(t *testing.T) {
	src := newFakeSource("runtime-a", "w1")
	s := newTestServer(t, registry.Options{}, src)
	const target = "/api/runtimes/runtime-a/workers/w1"
	label := func() string {
		t.Helper()
		var w struct{ Label string }
		resp := s.do("GET", target, "")
		resp.decode(t, &w)
		return w.Label
	}
	steps := []struct {
		name, label, version, want string
	}{
		{"no version: encoded afresh", "first", "", "first"},
		{"no version again", "second", "", "second"},
		{"a version: encoded", "third", "v1", "third"},
		{"same version: the bytes of before", "fourth", "v1", "third"},
		{"new version: encoded again", "fifth", "v2", "fifth"},
	}
	for _, step := range steps {
		src.Add("w1", step.label)
		src.SetLookupVersion(step.version)
		if got := label(); got != step.want {
			t.Errorf("%s: label %q, want %q", step.name, got, step.want)
		}
	}
}
