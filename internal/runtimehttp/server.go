package runtimehttp

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/workspace-backend/runtime-registry/api"
	gen "github.com/workspace-backend/runtime-registry/internal/gen/workerruntimeapi"
	"github.com/workspace-backend/runtime-registry/internal/httpkit"
	"github.com/workspace-backend/runtime-registry/internal/httpvalidate"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// DefaultMaxBodyBytes is the request body limit: 1 MiB.
const DefaultMaxBodyBytes = 1 << 20

// Options configures NewServer.
type Options struct {
	// Token is the bearer token every /v1 route needs; "" turns the check
	// off (the process allows that only on loopback).
	Token string
	// Label and Version are answered in GET /v1/runtime.
	Label, Version string
	// Logger receives request and error logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxStreams bounds the open event streams; 0 means DefaultMaxStreams.
	MaxStreams int
	// Heartbeat is the idle stream's comment interval; 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// Shutdown, once closed, ends every event stream and makes the Runtime
	// report itself degraded.
	Shutdown <-chan struct{}
}

// NewServer builds the echo server for rt: the embedded contract (served at
// /v1/openapi.json), the bearer token check on /v1, the request validator,
// panic recovery, request logging, the problem error handler and the
// generated routes. It fails only if the embedded contract cannot be loaded,
// which is a build defect.
func NewServer(rt *workerruntime.Runtime, opts Options) (*echo.Echo, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	doc, err := api.LoadWorkerRuntime()
	if err != nil {
		return nil, err
	}
	specJSON, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("runtimehttp: encoding the contract: %w", err)
	}
	doc.Servers = nil
	validator, err := httpvalidate.New(doc, opts.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	shutdown := opts.Shutdown
	if shutdown == nil {
		shutdown = make(chan struct{})
	}
	h := &Handlers{
		rt: rt, label: opts.Label, version: opts.Version, spec: specResponse(specJSON), log: log,
		streams: &streamLimiter{slots: make(chan struct{}, opts.MaxStreams)}, shutdown: shutdown, heartbeat: opts.Heartbeat,
	}
	routes := map[string]bool{}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(log)
	e.Use(
		securityHeaders,
		httpkit.RequestLog(log, routes, nil),
		httpkit.RecoverPanics(log, panicError),
		bearerAuth(opts.Token),
		validator.Middleware,
	)
	gen.RegisterHandlers(e, gen.NewStrictHandler(h, nil))
	for _, r := range e.Routes() {
		routes[r.Path] = true
	}
	return e, nil
}

// bearerAuth answers 401 unauthenticated for every /v1 request (known route
// or not, so the routes are not revealed) without the token, compared in
// constant time. /healthz needs none.
func bearerAuth(token string) echo.MiddlewareFunc {
	want := []byte(token)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if token == "" {
			return next
		}
		return func(c echo.Context) error {
			p := c.Request().URL.Path
			if p != "/v1" && !strings.HasPrefix(p, "/v1/") {
				return next(c)
			}
			got, ok := bearer(c.Request().Header.Values("Authorization"))
			if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				return errUnauthenticated
			}
			return next(c)
		}
	}
}

// bearer is the token of the one Authorization header, if it is a Bearer one.
func bearer(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		hdr := c.Response().Header()
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Cache-Control", "no-store")
		return next(c)
	}
}

// panicError is the error a recovered panic becomes: unknown to problemOf,
// so it is answered as internal.
func panicError(v any) error { return fmt.Errorf("panic of type %T", v) }
