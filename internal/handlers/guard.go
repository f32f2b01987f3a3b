package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// The guard is the plain net/http handler in front of echo: it answers what
// must be decided before routing (the Host allow-list, cross-origin writes,
// the access token, "OPTIONS *") and normalises what echo and the generated
// binder would otherwise misread (HEAD, a repeated If-None-Match). Every
// answer it writes itself is a problem document with the security headers.

// TokenCookie is the cookie that carries the access token of a browser that
// opened /?token=<token> once; the contract declares it (accessTokenCookie).
const TokenCookie = "rr_access"

// guard wraps the echo server.
type guard struct {
	next    http.Handler
	log     *slog.Logger
	metrics *Metrics
	hosts   *hostAllowList // nil: every Host is accepted
	// tokenSum is the SHA-256 of the access token; nil when no token is
	// required. Comparing digests in constant time hides the token's length
	// as well as its bytes.
	tokenSum []byte
	cop      *http.CrossOriginProtection
}

func newGuard(next http.Handler, opts ServerOptions, log *slog.Logger, m *Metrics) (*guard, error) {
	g := &guard{next: next, log: log, metrics: m, cop: http.NewCrossOriginProtection()}
	if opts.AllowedHosts != nil {
		hl, err := newHostAllowList(opts.AllowedHosts)
		if err != nil {
			return nil, err
		}
		g.hosts = hl
	}
	if opts.AccessToken != "" {
		if err := ValidAccessToken(opts.AccessToken); err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(opts.AccessToken))
		g.tokenSum = sum[:]
	}
	return g, nil
}

// Header values set on every answer, shared rather than allocated per
// request: a header's value slice is only ever read or replaced (Set and Del
// replace it, Add appends past its length into a new array), never written in
// place.
var (
	nosniffValue = []string{"nosniff"}
	noStoreValue = []string{"no-store"}
	noCacheValue = []string{"no-cache"}
	jsonValue    = []string{"application/json"}
)

// ServeHTTP checks the request, then hands it to echo.
func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr["X-Content-Type-Options"] = nosniffValue
	hdr["Cache-Control"] = noStoreValue
	// A chunked request may have carried a Content-Length too, which net/http
	// drops without a trace: RFC 9112 section 6.1 asks the server to close the
	// connection after answering such a request, so every chunked request
	// closes its connection and no smuggled second request is ever read.
	if len(r.TransferEncoding) > 0 {
		hdr.Set("Connection", "close")
	}
	if r.RequestURI == "*" {
		// "OPTIONS *" (net/http's own answer is turned off in cmd/server).
		g.reject(w, r, &registry.Error{Code: registry.CodeNotFound, Detail: "No such route."})
		return
	}
	if g.hosts != nil && !g.hosts.allows(r.Host) {
		g.reject(w, r, &registry.Error{Code: registry.CodeMisdirectedRequest,
			Detail: "This server does not answer for the host the request names."})
		return
	}
	if err := g.cop.Check(r); err != nil {
		g.reject(w, r, &registry.Error{Code: registry.CodeCrossOriginRejected,
			Detail: "A cross-origin request may not change anything here."})
		return
	}
	if g.tokenSum != nil {
		if r.URL.Path == "/" && r.URL.Query().Has("token") {
			g.tokenLogin(w, r)
			return
		}
		if needsToken(r.URL.Path) && !g.authenticated(r) {
			hdr.Set("WWW-Authenticate", "Bearer")
			g.reject(w, r, &registry.Error{Code: registry.CodeUnauthenticated,
				Detail: "This server requires its access token: send Authorization: Bearer <token>, or open /?token=<token> once in the browser."})
			return
		}
	}
	// Echo and the validator change the request (its body, its headers):
	// they get a copy, so that net/http still sees the request it read (its
	// method, its own body type) when it finishes the answer.
	r = r.WithContext(r.Context())
	// RFC 9110 section 5.3: a list header sent on several lines is one list.
	if v := r.Header.Values("If-None-Match"); len(v) > 1 {
		r.Header = r.Header.Clone()
		r.Header["If-None-Match"] = []string{strings.Join(v, ", ")}
	}
	if r.Method == http.MethodHead {
		// HEAD is GET without the body (RFC 9110 section 9.3.2): net/http
		// still knows the request is HEAD and drops whatever body is written,
		// keeping the headers (ETag, Content-Length) of the GET. The first
		// body write ends the request's context, so that an answer that
		// would go on (an event stream) ends once its headers are out.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		r = r.WithContext(ctx)
		r.Method = http.MethodGet
		w = &headWriter{ResponseWriter: w, wrote: cancel}
	}
	g.next.ServeHTTP(w, r)
}

// headWriter is the ResponseWriter of a HEAD answered as GET: it calls
// wrote after the first body write (which net/http discards).
type headWriter struct {
	http.ResponseWriter
	wrote func()
}

func (hw *headWriter) Write(p []byte) (int, error) {
	n, err := hw.ResponseWriter.Write(p)
	hw.wrote()
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (hw *headWriter) Unwrap() http.ResponseWriter { return hw.ResponseWriter }

// needsToken reports whether path is behind the access token: the API and
// the metrics; /healthz and the console's static files are not.
func needsToken(path string) bool {
	return path == "/api" || strings.HasPrefix(path, "/api/") || path == "/metrics" || strings.HasPrefix(path, "/metrics/")
}

// authenticated reports whether r carries the access token, as a bearer
// token or in the console's cookie.
func (g *guard) authenticated(r *http.Request) bool {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, tok, ok := strings.Cut(auth, " ")
		return ok && strings.EqualFold(scheme, "Bearer") && g.tokenMatches(strings.TrimSpace(tok))
	}
	if c, err := r.Cookie(TokenCookie); err == nil {
		return g.tokenMatches(c.Value)
	}
	return false
}

func (g *guard) tokenMatches(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], g.tokenSum) == 1
}

// tokenLogin answers GET /?token=<token>: the right token sets the console's
// HttpOnly, SameSite=Strict cookie and redirects to / without the query, so
// the token leaves the address bar and the history; a wrong one is 401.
func (g *guard) tokenLogin(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !g.tokenMatches(tok) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		g.reject(w, r, &registry.Error{Code: registry.CodeUnauthenticated, Detail: "The access token is wrong."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	w.Header().Set("Location", "/")
	w.WriteHeader(http.StatusSeeOther)
	g.logRequest(r, http.StatusSeeOther, time.Now())
}

// reject answers err as a problem and logs the request like
// httpkit.RequestLog does.
func (g *guard) reject(w http.ResponseWriter, r *http.Request, err *registry.Error) {
	start := time.Now()
	p := problemOf(err, g.log)
	if werr := p.write(w); werr != nil {
		g.log.Debug("writing problem failed", slog.String("reason", "client write"))
	}
	g.logRequest(r, p.Status, start)
}

func (g *guard) logRequest(r *http.Request, status int, start time.Time) {
	elapsed := time.Since(start)
	g.metrics.observe("unmatched", r.Method, status, elapsed)
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", methodLabel(r.Method)),
		slog.String("route", "unmatched"),
		slog.Int("status", status),
		slog.Duration("duration", elapsed))
}

// ValidAccessToken reports whether tok can serve as the access token: 16 to
// 512 characters of letters, digits and "-._~+/=" (so that it travels
// unchanged in a header, a query and a cookie). The error never quotes the
// token.
func ValidAccessToken(tok string) error {
	if len(tok) < 16 || len(tok) > 512 {
		return errors.New("the access token must be 16 to 512 characters long")
	}
	for i := 0; i < len(tok); i++ {
		if !tokenByte(tok[i]) {
			return fmt.Errorf("the access token may hold only letters, digits and -._~+/= (character %d is not one)", i+1)
		}
	}
	return nil
}

// tokenByte reports whether c may appear in an access token.
func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/=", c) >= 0
}

// hostAllowList holds the accepted Host values: a host with a port accepts
// exactly that host and port, a host without a port accepts that host on any
// port or none.
type hostAllowList struct {
	exact   map[string]bool // "host:port" and bare "host" as sent
	anyPort map[string]bool // host names accepted on any port
}

func newHostAllowList(entries []string) (*hostAllowList, error) {
	hl := &hostAllowList{exact: map[string]bool{}, anyPort: map[string]bool{}}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		host, port, err := net.SplitHostPort(e)
		if err != nil {
			// No port: a bare name, or an IPv6 address with or without brackets.
			host = strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
			if host == "" || strings.ContainsAny(host, "/@?# ") {
				return nil, fmt.Errorf("allowed host %q is not host[:port]", e)
			}
			hl.anyPort[host] = true
			continue
		}
		if host == "" || port == "" || strings.ContainsAny(host, "/@?# ") {
			return nil, fmt.Errorf("allowed host %q is not host[:port]", e)
		}
		hl.exact[net.JoinHostPort(host, port)] = true
	}
	return hl, nil
}

// allows reports whether the Host header value h is on the list.
func (hl *hostAllowList) allows(h string) bool {
	h = strings.ToLower(h)
	if host, port, err := net.SplitHostPort(h); err == nil {
		return hl.exact[net.JoinHostPort(host, port)] || hl.anyPort[host]
	}
	return hl.anyPort[strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")]
}
