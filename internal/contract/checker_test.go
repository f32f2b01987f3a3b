package contract_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// cannedHandler is a test double of the server: it answers every request with
// one fixed response.
type cannedHandler struct {
	status      int
	contentType string
	body        string
	// bareHeaders leaves out the ETag and Cache-Control headers that every
	// data GET of the contract declares.
	bareHeaders bool
}

var _ http.Handler = cannedHandler{}

func (h cannedHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", h.contentType)
	if h.status == http.StatusOK && !h.bareHeaders {
		w.Header().Set("ETag", `"0123456789abcdef"`)
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.WriteHeader(h.status)
	_, _ = w.Write([]byte(h.body))
}

// withJSON returns the JSON object body with key set to value.
func withJSON(t *testing.T, body []byte, key string, value any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		delete(m, key)
	} else {
		m[key] = value
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// The response checker accepts the real server's answers and rejects each
// kind of deliberate violation a handler could commit.
func TestResponseCheckerRejectsViolations(t *testing.T) {
	c := checker(t)
	real := newSampleHandler(t, sampleDataDir(t))
	get := func(target string) exchange {
		req, err := newRequest(t.Context(), "GET", target, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return serve(real, req)
	}
	runtime := get("/api/runtimes/local-worker-runtime")
	unknown := get("/api/runtimes/local-worker-runtime/workers/nobody")
	if runtime.status != 200 || unknown.status != 404 {
		t.Fatalf("sample server answered %d and %d", runtime.status, unknown.status)
	}
	const problemJSON = "application/problem+json"

	tests := []struct {
		name, method, target string
		double               cannedHandler
		wantOK               bool
	}{
		{"real runtime (control)", "GET", "/api/runtimes/local-worker-runtime",
			cannedHandler{status: 200, contentType: "application/json", body: string(runtime.body)}, true},
		{"real problem (control)", "GET", "/api/runtimes/local-worker-runtime/workers/nobody",
			cannedHandler{status: 404, contentType: problemJSON, body: string(unknown.body)}, true},
		{"declared headers missing", "GET", "/api/runtimes/local-worker-runtime",
			cannedHandler{status: 200, contentType: "application/json", body: string(runtime.body), bareHeaders: true}, false},
		{"extra property", "GET", "/api/runtimes/local-worker-runtime",
			cannedHandler{status: 200, contentType: "application/json", body: withJSON(t, runtime.body, "endpoint", "http://10.0.0.1")}, false},
		{"missing required property", "GET", "/api/runtimes/local-worker-runtime",
			cannedHandler{status: 200, contentType: "application/json", body: withJSON(t, runtime.body, "capabilities", nil)}, false},
		{"value outside its enum", "GET", "/api/runtimes/local-worker-runtime",
			cannedHandler{status: 200, contentType: "application/json", body: withJSON(t, runtime.body, "status", "sleepy")}, false},
		{"undeclared success status", "GET", "/api/runtimes/local-worker-runtime",
			cannedHandler{status: 201, contentType: "application/json", body: string(runtime.body)}, false},
		{"undeclared error status", "GET", "/api/runtimes/local-worker-runtime",
			cannedHandler{status: 409, contentType: problemJSON, body: withJSON(t, withJSONBytes(t, unknown.body, "status", 409), "error", "Conflict")}, false},
		{"body of another operation", "GET", "/healthz",
			cannedHandler{status: 200, contentType: "application/json", body: string(runtime.body)}, false},
		{"undeclared content type", "GET", "/api/runtimes/local-worker-runtime",
			cannedHandler{status: 200, contentType: "text/plain", body: string(runtime.body)}, false},
		{"error as application/json", "GET", "/api/runtimes/local-worker-runtime/workers/nobody",
			cannedHandler{status: 404, contentType: "application/json", body: string(unknown.body)}, false},
		{"error without a body", "GET", "/api/runtimes/local-worker-runtime/workers/nobody",
			cannedHandler{status: 404, contentType: problemJSON, body: ""}, false},
		{"problem code not in the enum", "GET", "/api/runtimes/local-worker-runtime/workers/nobody",
			cannedHandler{status: 404, contentType: problemJSON, body: withJSON(t, withJSONBytes(t, unknown.body, "code", "teapot"), "type", "urn:problem:workspace-runtime:teapot")}, false},
		{"problem status disagrees", "GET", "/api/runtimes/local-worker-runtime/workers/nobody",
			cannedHandler{status: 404, contentType: problemJSON, body: withJSON(t, unknown.body, "status", 400)}, false},
		{"problem with a leaking member", "GET", "/api/runtimes/local-worker-runtime/workers/nobody",
			cannedHandler{status: 404, contentType: problemJSON, body: withJSON(t, unknown.body, "data_dir", "/srv/data")}, false},
		{"unmatched route answers 200", "GET", "/api/nothing",
			cannedHandler{status: 200, contentType: "application/json", body: `{}`}, false},
		{"internal error", "GET", "/api/runtimes",
			cannedHandler{status: 500, contentType: "text/plain", body: "panic: /srv/data"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := newRequest(t.Context(), tc.method, tc.target, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			x := serve(tc.double, req)
			err = c.Check(t.Context(), x.req, x.status, x.header, x.body)
			switch {
			case tc.wantOK && err != nil:
				t.Fatalf("a conforming response was rejected: %v", err)
			case !tc.wantOK && err == nil:
				t.Fatal("a violating response was accepted")
			}
		})
	}
}

func withJSONBytes(t *testing.T, body []byte, key string, value any) []byte {
	return []byte(withJSON(t, body, key, value))
}
