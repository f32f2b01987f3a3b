package handlers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/benchstore"
	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

const benchPods = 10_000

// benchServer is the real echo server over an indexed store of 10,000 pods.
func benchServer(b *testing.B, cacheBytes int) http.Handler {
	b.Helper()
	dataDir := filepath.Join(b.TempDir(), "data")
	if err := benchstore.Generate(dataDir, benchPods, "/srv/ws"); err != nil {
		b.Fatal(err)
	}
	src := compat.New(compat.Config{WorkspaceID: "bench", WorkspaceRoot: "/srv/ws", DataDir: dataDir})
	if err := src.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = src.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.New(registry.Options{WorkspaceID: "bench", Auditor: registry.Auditors{}}, src)
	if err != nil {
		b.Fatal(err)
	}
	e, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log, BodyCacheBytes: cacheBytes})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func serve(b *testing.B, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 && rec.Code != 304 {
		b.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
	}
	return rec
}

// BenchmarkServe measures whole requests through echo, the validator and the
// handlers over 10,000 indexed pods: a 200-worker page with the encoded-body
// cache on and off, its 304 revalidation, the legacy merged list, and one
// worker by id. bytes/op of the page is the body size (SetBytes).
func BenchmarkServe(b *testing.B) {
	if _, err := os.Stat("/proc/self"); err != nil {
		b.Skip("needs Linux")
	}
	page := "/api/runtimes/local-worker-runtime/workers?limit=200"
	worker := "/api/runtimes/local-worker-runtime/workers/" + string(compat.WorkerIDFor(benchstore.PodName(4242)))
	for _, cache := range []struct {
		name  string
		bytes int
	}{{"cache=on", 0}, {"cache=off", -1}} {
		h := benchServer(b, cache.bytes)
		etag := serve(b, h, page).Header().Get("ETag")
		for _, tc := range []struct {
			name, target string
			header       []string
		}{
			{"page200", page, nil},
			{"page200-304", page, []string{"If-None-Match", etag}},
			{"legacy-workers", "/api/workers", nil},
			{"worker", worker, nil},
		} {
			b.Run(fmt.Sprintf("%s/%s", tc.name, cache.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(serve(b, h, tc.target, tc.header...).Body.Len()))
				for b.Loop() {
					serve(b, h, tc.target, tc.header...)
				}
			})
		}
	}
}
