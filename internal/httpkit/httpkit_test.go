package httpkit_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/workspace-backend/runtime-registry/internal/httpkit"
)

func TestWriteProblem(t *testing.T) {
	w := httptest.NewRecorder()
	if err := httpkit.WriteProblem(w, http.StatusConflict, map[string]any{"status": 409}); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusConflict || w.Header().Get("Content-Type") != "application/problem+json" ||
		w.Body.String() != "{\"status\":409}\n" {
		t.Errorf("got %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
	if err := httpkit.WriteProblem(httptest.NewRecorder(), 500, func() {}); err == nil {
		t.Error("an unencodable document was written")
	}
}

var errPanicked = errors.New("panicked")

// TestMiddleware runs both middlewares the way the servers stack them.
func TestMiddleware(t *testing.T) {
	tests := []struct {
		name, path string
		handler    echo.HandlerFunc
		wantStatus int
		wantRoute  string
		wantInLog  string
	}{
		{"ok", "/things/1", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, http.StatusNoContent, "/things/:id", `"route":"/things/:id"`},
		{"panic", "/things/2", func(echo.Context) error { panic("secret value") }, http.StatusTeapot, "/things/:id", `"panic_type":"string"`},
		{"unmatched", "/secret/path", nil, http.StatusNotFound, "unmatched", `"route":"unmatched"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			var observed string
			routes := map[string]bool{"/things/:id": true}
			e := echo.New()
			e.HTTPErrorHandler = func(err error, c echo.Context) {
				status := http.StatusNotFound
				if errors.Is(err, errPanicked) {
					status = http.StatusTeapot
				}
				_ = c.NoContent(status)
			}
			e.Use(
				httpkit.RequestLog(log, routes, func(route, _ string, _ int, _ time.Duration) { observed = route }),
				httpkit.RecoverPanics(log, func(any) error { return errPanicked }),
			)
			if tt.handler != nil {
				e.GET("/things/:id", tt.handler)
			}
			w := httptest.NewRecorder()
			e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if w.Code != tt.wantStatus || observed != tt.wantRoute {
				t.Errorf("status %d, route %q; want %d, %q", w.Code, observed, tt.wantStatus, tt.wantRoute)
			}
			if !strings.Contains(logs.String(), tt.wantInLog) || strings.Contains(logs.String(), "secret") {
				t.Errorf("log: %s", logs.String())
			}
		})
	}
}

func TestRecoverPanicsRepanicsAbort(t *testing.T) {
	e := echo.New()
	e.Use(httpkit.RecoverPanics(slog.New(slog.DiscardHandler), func(any) error { return errPanicked }))
	e.GET("/", func(echo.Context) error { panic(http.ErrAbortHandler) })
	defer func() {
		if err, _ := recover().(error); !errors.Is(err, http.ErrAbortHandler) {
			t.Errorf("recovered %v, want http.ErrAbortHandler", err)
		}
	}()
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	t.Error("ErrAbortHandler was swallowed")
}
