package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/registry/registrytest"
)

// TestEmptyIDRule pins the one rule for empty path segments: a request
// whose path matches an operation for its method when its empty segments
// are taken as ids is invalid_identifier naming the first empty one; any
// other path with an empty segment is not_found (or method_not_allowed).
func TestEmptyIDRule(t *testing.T) {
	s := newTestServer(t, registry.Options{}, newFakeSource("runtime-a", "w1"))
	tests := []struct {
		method, path string
		wantCode     gen.ProblemCode
		wantField    string
	}{
		{"GET", "/api/runtimes/", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"GET", "/api/runtimes//workers", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"GET", "/api/runtimes//hosts", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"GET", "/api/runtimes//workers/w1", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"GET", "/api/runtimes///", gen.ProblemCodeNotFound, ""},
		{"GET", "/api/runtimes/runtime-a/workers/", gen.ProblemCodeInvalidIdentifier, "worker_id"},
		{"POST", "/api/runtimes/runtime-a/workers//stop", gen.ProblemCodeInvalidIdentifier, "worker_id"},
		{"POST", "/api/runtimes/runtime-a/workers//input", gen.ProblemCodeInvalidIdentifier, "worker_id"},
		{"POST", "/api/runtimes//workers", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"DELETE", "/api/runtimes/", gen.ProblemCodeNotFound, ""},
		{"GET", "/api/runtimes/runtime-a/workers//stop", gen.ProblemCodeMethodNotAllowed, ""},
		{"HEAD", "/api/runtimes//hosts", gen.ProblemCodeInvalidIdentifier, "runtime_id"},
		{"GET", "/api/hosts//workers", gen.ProblemCodeInvalidIdentifier, "host_id"},
		{"GET", "/api/hosts/", gen.ProblemCodeNotFound, ""},
		{"GET", "/api/workers/", gen.ProblemCodeNotFound, ""},
		{"GET", "/api/runtimes/runtime-a/hosts/", gen.ProblemCodeNotFound, ""},
		{"GET", "/api/runtimes/runtime-a/workers/w1/", gen.ProblemCodeNotFound, ""},
		{"GET", "//api/workers", gen.ProblemCodeNotFound, ""},
		{"GET", "/api//workers", gen.ProblemCodeNotFound, ""},
		{"GET", "/healthz/", gen.ProblemCodeNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			s.t = t
			body := ""
			if tt.method == "POST" {
				body = `{"mode":"force"}`
			}
			resp := s.do(tt.method, tt.path, body)
			p := resp.problem(t)
			if p.Code != tt.wantCode {
				t.Fatalf("%d %s, want %s", resp.Status, p.Code, tt.wantCode)
			}
			if tt.wantField != "" && (p.Field == nil || *p.Field != tt.wantField) {
				t.Errorf("field %v, want %s", p.Field, tt.wantField)
			}
		})
	}
}

// TestBodyChecks runs the body checks in process, beside the real-server
// tests in cmd/server: each is invalid_request (or 413) before the
// contract validator builds a tree of the body.
func TestBodyChecks(t *testing.T) {
	a := newFakeSource("runtime-a", "w1")
	s := newTestServer(t, registry.Options{}, registrytest.Full{Source: a})
	stop := "/api/runtimes/runtime-a/workers/w1/stop"
	create := "/api/runtimes/runtime-a/workers"
	tests := []struct {
		name, path, body, ctype string
		want                    int
		wantField               string
	}{
		{"valid", stop, `{"mode":"force"}`, "application/json", http.StatusAccepted, ""},
		{"valid with charset", stop, `{"mode":"force"}`, "application/json;charset=utf-8", http.StatusAccepted, ""},
		{"trailing garbage", stop, `{"mode":"force"}x`, "application/json", 400, ""},
		{"second object", stop, `{"mode":"force"} {}`, "application/json", 400, ""},
		{"second scalar", stop, `{"mode":"force"} 1`, "application/json", 400, ""},
		{"duplicate key", stop, `{"mode":"force","mode":"force"}`, "application/json", 400, "mode"},
		{"unknown key first", stop, `{"x":[` + strings.Repeat("{},", 200) + `{}],"mode":"force"}`, "application/json", 400, "x"},
		{"unknown nested key", create, `{"intent":{"kind":"task","argv":["rm"]}}`, "application/json", 400, "intent.argv"},
		{"too many tokens", create, `{"intent":{"kind":"task","objective":[` + strings.Repeat("1,", 5000) + `1]}}`, "application/json", 400, ""},
		{"too deep", create, `{"intent":{"kind":"task","objective":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}}`, "application/json", 400, ""},
		{"unterminated", stop, `{"mode":"force"`, "application/json", 400, ""},
		{"json media type with suffix", stop, `{"mode":"force"}`, "application/problem+json", 400, ""},
		{"utf-16", stop, `{"mode":"force"}`, "application/json; charset=utf-16", 400, ""},
		{"bad media type", stop, `{"mode":"force"}`, "application/json; charset", 400, ""},
		{"stop too large", stop, `{"mode":"force","pad":"` + strings.Repeat(" ", 1<<10) + `"}`, "application/json", 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.t = t
			resp := s.do("POST", tt.path, tt.body, "Content-Type", tt.ctype)
			if resp.Status != tt.want {
				t.Fatalf("%d, want %d: %s", resp.Status, tt.want, resp.Body)
			}
			if tt.want == 400 {
				p := resp.problem(t)
				if p.Code != gen.ProblemCodeInvalidRequest {
					t.Errorf("code %s", p.Code)
				}
				if tt.wantField != "" && (p.Field == nil || *p.Field != tt.wantField) {
					t.Errorf("field %v, want %s", p.Field, tt.wantField)
				}
			}
		})
	}
}
