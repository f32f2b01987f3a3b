package handlers

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"github.com/workspace-backend/runtime-registry/internal/httpvalidate"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// DefaultMaxBodyBytes is the request body limit: 1 MiB.
const DefaultMaxBodyBytes = 1 << 20

// requestValidator checks every request against the contract before any
// handler runs, so that the generated code (which checks only types) never sees
// an id, limit, enum or body field the contract forbids. It is ours rather than
// echo-middleware's so that every failure is mapped to our problem codes.
type requestValidator struct {
	router       routers.Router
	maxBodyBytes int64
	// routes finds the operation of a request from the route echo matched
	// ("GET /api/runtimes/:runtime_id"); the contract router remains the
	// fallback.
	routes *httpvalidate.Routes
	// templates are the contract's paths of each method split into
	// segments, ":name" for a parameter: the empty-id rule matches against
	// them.
	templates map[string][][]string
	// fast holds, for each operation whose request can only be wrong in
	// ways the middleware checks before kin-openapi (its path ids), what
	// else a request may carry and still skip kin-openapi; see fastPathOf.
	fast map[*openapi3.Operation]*fastPath
	// onFast, when set (tests only), is called for each request the fast
	// path admitted.
	onFast func()
}

// fastPath is what a request of one operation may carry and still be
// answered without kin-openapi: no query string, or one of plain name=value
// pairs of its optional query parameters whose values fastQuery can check
// exactly (limit=200, a cursor); and of its optional header parameters
// (If-None-Match), at most one value each, not empty and no longer than the
// schema's maxLength. Anything else goes through the full validator, which
// stays the source of truth.
type fastPath struct {
	headers []fastHeader
	// query holds the optional query parameters a request may carry on the
	// fast path (by name); a request with any other takes the full path.
	query map[string]fastQuery
}

// fastQuery is one optional query parameter of a plain schema: an integer
// within bounds, or a string of a pattern within lengths. The fast path
// takes only values that need no unescaping and parse one way only (digits
// without sign or leading zero; strings of A-Z a-z 0-9 _ : -).
type fastQuery struct {
	integer   bool
	min, max  *float64
	pattern   *regexp.Regexp
	minLength int
	maxLength int // 0: no limit
}

// fastQueryOf compiles the fast check of query parameter p, or false when
// its schema is more than fastQuery knows.
func fastQueryOf(p *openapi3.Parameter) (fastQuery, bool) {
	s := p.Schema.Value
	if p.Required || p.AllowEmptyValue || len(s.Enum) > 0 || s.Not != nil || len(s.AllOf)+len(s.AnyOf)+len(s.OneOf) > 0 ||
		s.ExclusiveMin.IsSet() || s.ExclusiveMax.IsSet() || s.MultipleOf != nil || s.Nullable {
		return fastQuery{}, false
	}
	if style := p.Style; style != "" && style != openapi3.SerializationForm || p.Explode != nil && !*p.Explode {
		return fastQuery{}, false
	}
	switch {
	case s.Type.Is(openapi3.TypeInteger) && (s.Format == "" || s.Format == "int32" || s.Format == "int64") && s.Pattern == "":
		return fastQuery{integer: true, min: s.Min, max: s.Max}, true
	case s.Type.Is(openapi3.TypeString) && s.Format == "" && s.Pattern != "":
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			return fastQuery{}, false
		}
		q := fastQuery{pattern: re, minLength: int(s.MinLength)}
		if s.MaxLength != nil {
			q.maxLength = int(*s.MaxLength)
		}
		return q, true
	}
	return fastQuery{}, false
}

// admits reports whether value passes q; false means "not sure", and the
// full validator decides.
func (q fastQuery) admits(value string) bool {
	if value == "" || len(value) > 512 {
		return false
	}
	if q.integer {
		if len(value) > 9 || value[0] == '0' && len(value) > 1 {
			return false
		}
		n := 0
		for i := 0; i < len(value); i++ {
			c := value[i]
			if c < '0' || c > '9' {
				return false
			}
			n = n*10 + int(c-'0')
		}
		return (q.min == nil || float64(n) >= *q.min) && (q.max == nil || float64(n) <= *q.max)
	}
	if !idAlphabet(value) {
		return false
	}
	return len(value) >= q.minLength && (q.maxLength == 0 || len(value) <= q.maxLength) && q.pattern.MatchString(value)
}

// idAlphabet reports whether every byte of s is one of A-Z a-z 0-9 _ : -.
func idAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// fastHeader is one optional string header parameter of an operation.
type fastHeader struct {
	key       string // canonical header key
	maxLength int    // bytes; 0 means no limit
}

// admitsQuery reports whether raw is name=value pairs, each of a distinct
// parameter the fast path knows, each value admitted by its check.
func (fp *fastPath) admitsQuery(raw string) bool {
	if len(fp.query) == 0 {
		return false
	}
	var seen [4]string
	n := 0
	for part := range strings.SplitSeq(raw, "&") {
		name, value, ok := strings.Cut(part, "=")
		q, known := fp.query[name]
		if !ok || !known || n == len(seen) || slices.Contains(seen[:n], name) || !q.admits(value) {
			return false
		}
		seen[n] = name
		n++
	}
	return true
}

// idSchema reports whether s is the contract's id schema, which
// registry.ValidID checks exactly: a string of 1 to 120 characters of
// A-Z a-z 0-9 _ : -.
func idSchema(s *openapi3.Schema) bool {
	return s != nil && s.Type.Is(openapi3.TypeString) && s.Pattern == "^[A-Za-z0-9_:-]{1,120}$" &&
		s.MinLength <= 1 && (s.MaxLength == nil || *s.MaxLength >= registry.MaxIDLength) &&
		s.Format == "" && len(s.Enum) == 0 && s.Not == nil && len(s.AllOf)+len(s.AnyOf)+len(s.OneOf) == 0
}

// fastPathOf compiles the fast path of op (method on item of doc), or nil
// when its requests always need the full validator: only a GET with no
// request body and no security requirement whose parameters are path ids,
// optional query parameters (a request that carries one fastQuery cannot
// check takes the full validator) and optional plain string headers bounded
// by maxLength only.
func fastPathOf(doc *openapi3.T, item *openapi3.PathItem, method string, op *openapi3.Operation) *fastPath {
	if method != http.MethodGet || op.RequestBody != nil {
		return nil
	}
	if op.Security != nil && len(*op.Security) > 0 || op.Security == nil && len(doc.Security) > 0 {
		return nil
	}
	fp := &fastPath{}
	for _, ref := range append(slices.Clone(item.Parameters), op.Parameters...) {
		p := ref.Value
		if p == nil || p.Content != nil || p.Schema == nil || p.Schema.Value == nil {
			return nil
		}
		s := p.Schema.Value
		switch p.In {
		case openapi3.ParameterInPath:
			if !idSchema(s) {
				return nil
			}
		case openapi3.ParameterInQuery:
			if p.Required {
				return nil
			}
			// A parameter the fast path cannot check is still declared: a
			// request that carries it takes the full path.
			if q, ok := fastQueryOf(p); ok {
				if fp.query == nil {
					fp.query = map[string]fastQuery{}
				}
				fp.query[p.Name] = q
			}
		case openapi3.ParameterInHeader:
			if p.Required || p.AllowEmptyValue || !s.Type.Is(openapi3.TypeString) || s.Pattern != "" || s.Format != "" ||
				s.MinLength > 0 || len(s.Enum) > 0 || s.Not != nil || len(s.AllOf)+len(s.AnyOf)+len(s.OneOf) > 0 {
				return nil
			}
			h := fastHeader{key: http.CanonicalHeaderKey(p.Name)}
			if s.MaxLength != nil {
				h.maxLength = int(*s.MaxLength)
			}
			fp.headers = append(fp.headers, h)
		default:
			return nil
		}
	}
	return fp
}

// admits reports whether req, whose path ids are already valid, may skip
// the full validator. A header counts in bytes, which is never fewer than
// the characters maxLength counts.
func (fp *fastPath) admits(req *http.Request) bool {
	if raw := req.URL.RawQuery; raw != "" && !fp.admitsQuery(raw) {
		return false
	}
	for _, h := range fp.headers {
		vs, ok := req.Header[h.key]
		if !ok {
			continue
		}
		if len(vs) != 1 || vs[0] == "" || h.maxLength > 0 && len(vs[0]) > h.maxLength {
			return false
		}
	}
	return true
}

func newRequestValidator(doc *openapi3.T, router routers.Router, maxBodyBytes int64) *requestValidator {
	v := &requestValidator{router: router, maxBodyBytes: maxBodyBytes, routes: httpvalidate.NewRoutes(doc),
		templates: map[string][][]string{}, fast: map[*openapi3.Operation]*fastPath{}}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if fp := fastPathOf(doc, item, method, op); fp != nil {
				v.fast[op] = fp
			}
			v.templates[method] = append(v.templates[method], strings.Split(httpvalidate.EchoPath(path)[1:], "/"))
		}
	}
	return v
}

// middleware validates the request; an invalid one is answered with a problem
// and never reaches a handler.
func (v *requestValidator) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if name, ok := v.emptyIDParam(req.Method, req.URL.EscapedPath()); ok {
			return registry.InvalidIdentifier(name)
		}
		route, pathParams, err := v.routeOf(c)
		if err != nil {
			// Echo answers OPTIONS on a known path with 204; the contract
			// declares no OPTIONS, so it is a method not allowed.
			if req.Method == http.MethodOptions && c.Get(echo.ContextKeyHeaderAllow) != nil {
				return echo.ErrMethodNotAllowed
			}
			// Otherwise echo's router answers not_found or method_not_allowed.
			return next(c)
		}
		// Ids come first: a bad id is invalid_identifier whatever else is
		// wrong with the request. (The console's asset name is the one path
		// parameter that is not an id; its own pattern is checked below.)
		names, values := c.ParamNames(), c.ParamValues()
		for i, name := range names {
			var id string
			ok := false
			if pathParams == nil {
				ok = i < len(values)
				if ok {
					id = values[i]
				}
			} else {
				id, ok = pathParams[name]
			}
			if ok && httpvalidate.IsIDParam(name) && !registry.ValidID(id) {
				return registry.InvalidIdentifier(name)
			}
		}
		// A request the fast path admits has nothing left that kin-openapi
		// would check (TestFastPathAnswersAsTheFullValidator proves it).
		if fp := v.fast[route.Operation]; fp != nil && fp.admits(req) {
			if v.onFast != nil {
				v.onFast()
			}
			return next(c)
		}
		if err := v.checkQuery(route.Operation, req); err != nil {
			return err
		}
		if pathParams == nil {
			pathParams = httpvalidate.PathParams(c)
		}
		// Only an operation that declares a body reads one: a body sent with
		// a GET is never buffered.
		if rb := route.Operation.RequestBody; rb != nil && rb.Value != nil {
			var schema *openapi3.Schema
			if mt := rb.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
				schema = mt.Schema.Value
			}
			if err := readBody(c.Response(), req, v.bodyLimit(route.Operation), schema); err != nil {
				return err
			}
		}
		input := &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: pathParams,
			Route:      route,
			Options: &openapi3filter.Options{
				// The generated binder then decodes exactly what was validated.
				KeepValidatedValue:  true,
				SkipSettingDefaults: true,
			},
		}
		if err := openapi3filter.ValidateRequest(req.Context(), input); err != nil {
			return requestErrorOf(err)
		}
		return next(c)
	}
}

// emptyIDParam applies the one rule for empty path segments ("//", or a
// trailing "/"): a request whose path matches an operation of the contract
// for its method when its empty segments are taken as path parameters is
// invalid_identifier naming the first such parameter ("GET /api/runtimes/"
// and "GET /api/runtimes//workers" name runtime_id); any other path with an
// empty segment is not found, or a method not allowed (false here: echo's
// router answers it).
func (v *requestValidator) emptyIDParam(method, path string) (string, bool) {
	// An empty segment is a "//", a trailing "/" or a leading "//": only
	// such a path is split.
	if len(path) < 2 || !strings.Contains(path, "//") && !strings.HasSuffix(path, "/") {
		return "", false
	}
	segs := strings.Split(path[1:], "/")
	if !slices.Contains(segs, "") {
		return "", false
	}
	for _, tmpl := range v.templates[method] {
		if len(tmpl) != len(segs) {
			continue
		}
		name, matched := "", true
		for i, t := range tmpl {
			switch {
			case strings.HasPrefix(t, ":"):
				if segs[i] == "" && name == "" {
					name = t[1:]
				}
			case t != segs[i]:
				matched = false
			}
			if !matched {
				break
			}
		}
		if matched && name != "" {
			return name, true
		}
	}
	return "", false
}

// routeOf is the operation of the request: the route echo matched, with a
// nil map (the path parameters are then echo's, made a map only for a
// request the fast path does not admit), or else the contract router's
// route and parameters.
func (v *requestValidator) routeOf(c echo.Context) (*routers.Route, map[string]string, error) {
	if route := v.routes.Matched(c); route != nil {
		return route, nil, nil
	}
	return v.router.FindRoute(c.Request())
}

// maxQueryParams bounds the parameters of a query string: no operation
// takes more than a few.
const maxQueryParams = 100

// checkQuery answers invalid_request for a query string that does not parse
// cleanly (a ";" separator, a bad escape, more than maxQueryParams
// parameters: net/url would drop what it cannot parse and the defaults would
// answer) and for a query parameter the operation does not declare, which
// kin-openapi does not check by itself.
func (v *requestValidator) checkQuery(op *openapi3.Operation, req *http.Request) error {
	raw := req.URL.RawQuery
	if raw == "" {
		return nil
	}
	if strings.Count(raw, "&") >= maxQueryParams {
		return registry.InvalidRequest("", fmt.Sprintf("The query string has more than %d parameters.", maxQueryParams))
	}
	query, err := url.ParseQuery(raw)
	if err != nil {
		return registry.InvalidRequest("", "The query string is malformed: parameters are name=value pairs separated by \"&\", percent-encoded.")
	}
	if name, detail, ok := v.routes.UnknownQuery(op, query); !ok {
		return registry.InvalidRequest(name, detail)
	}
	return nil
}

// requestErrorOf turns a validation failure into a browser-safe problem:
// httpvalidate builds the field and detail (shared with the worker-runtime
// process); an id keeps the registry's own wording.
func requestErrorOf(err error) error {
	e := httpvalidate.RequestErrorOf(err)
	if e.Code == httpvalidate.CodeInvalidIdentifier {
		return registry.InvalidIdentifier(e.Field)
	}
	return &registry.Error{Code: registry.Code(e.Code), Field: e.Field, Detail: e.Detail}
}
