package handlers

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"github.com/workspace-backend/runtime-registry/api"
	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/httpkit"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// ServerOptions configures NewServer.
type ServerOptions struct {
	// Logger receives request and error logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Metrics are the metrics served at /metrics and updated per request;
	// nil means a fresh NewMetrics().
	Metrics *Metrics
	// BodyCacheBytes bounds each of the two caches of encoded bodies (lists,
	// and single Workers by id, kept apart so that many small lookups never
	// evict the pages); 0 means DefaultBodyCacheBytes and a negative value
	// turns both off (every answer is encoded and hashed afresh; for
	// benchmarks).
	BodyCacheBytes int
	// Console is the built browser console served at / and /assets/; nil
	// means the files embedded from web/console/dist.
	Console fs.FS
	// AllowedHosts are the Host header values answered ("host" accepts that
	// host on any port, "host:port" exactly that); any other Host is
	// 421 misdirected_request. Nil accepts every Host: only for in-process
	// tests, cmd/server always sets the list.
	AllowedHosts []string
	// AccessToken, when set, is required (as a bearer token or the console's
	// cookie) by every /api/* and /metrics request; see ValidAccessToken.
	AccessToken string
	// MaxStreams bounds the event streams open at once (more answer 503
	// too_many_streams); 0 means DefaultMaxStreams.
	MaxStreams int
	// Shutdown, when closed, ends every open event stream: the server's
	// graceful shutdown closes it before it waits for connections to go
	// idle, since a stream never does by itself. Nil means streams end only
	// when their clients leave.
	Shutdown <-chan struct{}
}

func (opts ServerOptions) logger() *slog.Logger {
	if opts.Logger == nil {
		return slog.Default()
	}
	return opts.Logger
}

func (opts ServerOptions) metrics() *Metrics {
	if opts.Metrics == nil {
		return NewMetrics()
	}
	return opts.Metrics
}

// bodyCache is the cache BodyCacheBytes asks for (nil: none).
func (opts ServerOptions) bodyCache() *bodyCache {
	switch {
	case opts.BodyCacheBytes < 0:
		return nil
	case opts.BodyCacheBytes > 0:
		return newBodyCache(opts.BodyCacheBytes)
	}
	return newBodyCache(DefaultBodyCacheBytes)
}

// NewServer builds the HTTP handler for reg: the guard (security headers,
// Host allow-list, cross-origin write rejection, access token, HEAD as GET)
// in front of the echo server with the embedded contract (its servers
// cleared so that routes match on any host), the request validator, panic
// recovery, request logging, the problem error handler and the generated
// routes. It fails if the embedded contract cannot be loaded, which is a
// build defect, or if an allowed host or the access token is malformed.
func NewServer(reg *registry.Registry, opts ServerOptions) (http.Handler, error) {
	return newServer(reg, opts, nil)
}

// newServer is NewServer; tune, when not nil, adjusts the request validator
// (tests turn its fast path off, or count what it admits).
func newServer(reg *registry.Registry, opts ServerOptions, tune func(*requestValidator)) (http.Handler, error) {
	log := opts.logger()
	maxBody := opts.MaxBodyBytes
	if maxBody == 0 {
		maxBody = DefaultMaxBodyBytes
	}
	doc, err := api.Load()
	if err != nil {
		return nil, err
	}
	// Served as written, before the servers are cleared for routing.
	specJSON, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("handlers: encoding the contract: %w", err)
	}
	doc.Servers = nil
	// The guard checks the access token before routing; the contract
	// declares it for clients. Validating it again would make kin-openapi
	// buffer every request body (even a GET's) for an authentication hook.
	clearSecurity(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("handlers: routing the contract: %w", err)
	}
	opts.Logger, opts.Metrics = log, opts.metrics()
	h, err := New(reg, specJSON, opts)
	if err != nil {
		return nil, err
	}
	routes := map[string]bool{}
	validator := newRequestValidator(doc, router, maxBody)
	if tune != nil {
		tune(validator)
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = ErrorHandler(log)
	e.Use(
		httpkit.RequestLog(log, routes, h.metrics.observe),
		httpkit.RecoverPanics(log, panicError),
		validator.middleware,
	)
	gen.RegisterHandlers(e, gen.NewStrictHandler(h, nil))
	for _, r := range e.Routes() {
		routes[r.Path] = true
	}
	return newGuard(e, opts, log, h.metrics)
}

// panicError is the internal error a recovered panic becomes.
func panicError(v any) error {
	return &registry.Error{Code: registry.CodeInternal, Cause: fmt.Errorf("panic: %v", v)}
}

// clearSecurity removes every security requirement from doc, which is the
// copy used for request validation only.
func clearSecurity(doc *openapi3.T) {
	doc.Security = nil
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			op.Security = nil
		}
	}
}
