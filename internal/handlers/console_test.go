package handlers_test

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/web/console"
)

// The response validator has no decoder for these text bodies; a console
// asset is declared as a plain string, so read it as one.
func init() {
	for _, typ := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(typ, openapi3filter.FileBodyDecoder)
	}
}

// builtAssets are the names index.html references under /assets/.
func builtAssets(t *testing.T, index string) []string {
	t.Helper()
	m := regexp.MustCompile(`/assets/([A-Za-z0-9._-]+)`).FindAllStringSubmatch(index, -1)
	if len(m) < 2 {
		t.Fatalf("index.html references %d assets, want a script and a stylesheet", len(m))
	}
	var names []string
	for _, x := range m {
		names = append(names, x[1])
	}
	return names
}

func checkConsoleHeaders(t *testing.T, what string, resp response) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": handlers.ConsoleCSP,
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"X-Content-Type-Options":  "nosniff",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

func TestConsoleServesTheEmbeddedBuild(t *testing.T) {
	s := newTestServer(t, registry.Options{WorkspaceID: "ws:test"}, newFakeSource("runtime-a", "w1"))
	index, err := fs.ReadFile(console.Files(), "index.html")
	if err != nil {
		t.Fatal(err)
	}

	for _, target := range []string{"/", "/?token=abc"} {
		page := s.do("GET", target, "")
		if page.Status != 200 || string(page.Body) != string(index) {
			t.Fatalf("GET %s: %d, body is the embedded index.html: %v", target, page.Status, string(page.Body) == string(index))
		}
		checkConsoleHeaders(t, "GET "+target, page)
		if got := page.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", target, got)
		}
		if got := page.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/html") {
			t.Errorf("GET %s: Content-Type %q", target, got)
		}
	}
	// Nothing inline: the CSP allows no inline script or style.
	for _, bad := range []string{"<script>", "<style", " style=", "onclick", "onload"} {
		if strings.Contains(string(index), bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}

	for _, name := range builtAssets(t, string(index)) {
		resp := s.do("GET", "/assets/"+name, "")
		if resp.Status != 200 {
			t.Fatalf("GET /assets/%s: %d", name, resp.Status)
		}
		checkConsoleHeaders(t, name, resp)
		if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", name, got)
		}
		wantType := map[bool]string{true: "text/javascript", false: "text/css"}[strings.HasSuffix(name, ".js")]
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, wantType) {
			t.Errorf("%s: Content-Type %q, want %s", name, got, wantType)
		}
		want, _ := fs.ReadFile(console.Files(), name)
		if string(resp.Body) != string(want) {
			t.Errorf("%s: body differs from the embedded file", name)
		}
	}
}

func TestConsoleAssetsNotFound(t *testing.T) {
	files := fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html><title>x</title>")},
		"app-0123456789ab.js": {Data: []byte("export {};")},
		"logo.png":            {Data: []byte("\x89PNG")},
		"notes.txt":           {Data: []byte("not an asset")},
	}
	s := newTestServerWith(t, registry.Options{WorkspaceID: "ws:test"}, handlers.ServerOptions{Console: files}, newFakeSource("runtime-a"))

	tests := []struct {
		target     string
		wantStatus int
		wantCache  string
	}{
		{"/assets/app-0123456789ab.js", 200, "public, max-age=31536000, immutable"},
		{"/assets/logo.png", 200, "no-cache"},
		{"/assets/app-ffffffffffff.js", 404, ""},
		{"/assets/index.html", 404, ""},
		{"/assets/notes.txt", 404, ""},
		{"/assets/..", 404, ""},
		{"/assets/.hidden.js", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			s.t = t
			resp := s.do("GET", tc.target, "")
			if resp.Status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.Status, tc.wantStatus, resp.Body)
			}
			checkConsoleHeaders(t, tc.target, resp)
			if tc.wantStatus == 404 {
				if p := resp.problem(t); p.Code != "not_found" {
					t.Errorf("code %s", p.Code)
				}
				return
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.wantCache {
				t.Errorf("Cache-Control %q, want %q", got, tc.wantCache)
			}
		})
	}
}
