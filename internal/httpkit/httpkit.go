// Package httpkit holds the pieces of HTTP plumbing that the browser API
// (internal/handlers) and the Worker Runtime API (internal/runtimehttp)
// share: writing a problem document, panic recovery and the request log.
// Each server keeps its own contract's Problem type, its own code table and
// its own error mapping; this package only takes values already converted at
// that edge.
package httpkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"
)

// ProblemTypePrefix prefixes every problem type URI of both contracts; the
// code follows it. One code has exactly one type URI.
const ProblemTypePrefix = "urn:problem:workspace-runtime:"

// WriteProblem writes doc, an RFC 9457 problem document (either contract's
// generated Problem), as application/problem+json with status, followed by
// a newline. It returns the encoding error or the client's write error.
func WriteProblem(w http.ResponseWriter, status int, doc any) error {
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	w.Header().Set(echo.HeaderContentType, "application/problem+json")
	w.WriteHeader(status)
	_, err = w.Write(append(body, '\n'))
	return err
}

// WriteJSONBody writes body, JSON already encoded, as a 200
// application/json answer. It returns the client's write error.
func WriteJSONBody(w http.ResponseWriter, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}

// RecoverPanics turns a panic in a handler into the error asError makes of
// the panic's value (which the server's error handler must answer as an
// internal error): the client gets a 500 problem with nothing internal in
// it, the log gets the value's type and the stack, and the server goes on.
// http.ErrAbortHandler is panicked again, as net/http expects.
func RecoverPanics(log *slog.Logger, asError func(v any) error) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if v := recover(); v != nil {
					if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
						panic(v)
					}
					// The value's text may quote data, so log its type and the stack.
					log.Error("handler panicked", slog.String("route", c.Path()),
						slog.String("panic_type", fmt.Sprintf("%T", v)), slog.String("stack", string(debug.Stack())))
					err = asError(v)
				}
			}()
			return next(c)
		}
	}
}

// RequestLog writes one line per request with the route template, never the
// raw path, query, header or body, so that nothing a client sent is logged
// verbatim; a request that matched no route in routes (the registered route
// templates) is logged as "unmatched". observe, if set, is told the same
// route, the method, the status and the duration (for metrics). An error
// from the handler is answered through c.Error before the line is written.
func RequestLog(log *slog.Logger, routes map[string]bool, observe func(route, method string, status int, elapsed time.Duration)) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			elapsed := time.Since(start)
			route := RouteTemplate(c, routes)
			if observe != nil {
				observe(route, c.Request().Method, c.Response().Status, elapsed)
			}
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("method", c.Request().Method),
				slog.String("route", route),
				slog.Int("status", c.Response().Status),
				slog.Duration("duration", elapsed))
			return nil
		}
	}
}

// RouteTemplate is the matched route pattern if it is one of routes, else
// the fixed word "unmatched": only a registered template is ever returned,
// so a request path never becomes a log field or a metric label.
func RouteTemplate(c echo.Context, routes map[string]bool) string {
	if p := c.Path(); routes[p] {
		return p
	}
	return "unmatched"
}
