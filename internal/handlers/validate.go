package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

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
	// queryParams lists the declared query parameters of each operation.
	queryParams map[*openapi3.Operation][]string
	// routes finds the operation of a request from the route echo matched
	// ("GET /api/runtimes/:runtime_id"): a map lookup instead of the regular
	// expressions of the contract router, which cost a third of a small
	// request. The contract router remains the fallback.
	routes map[string]*routers.Route
	// templates are the contract's paths of each method split into
	// segments, ":name" for a parameter: the empty-id rule matches against
	// them.
	templates map[string][][]string
}

// echoPath turns a contract path template into echo's: {id} becomes :id.
func echoPath(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		j := strings.IndexByte(p, '}')
		if i < 0 || j < i {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		b.WriteByte(':')
		b.WriteString(p[i+1 : j])
		p = p[j+1:]
	}
}

func newRequestValidator(doc *openapi3.T, router routers.Router, maxBodyBytes int64) *requestValidator {
	v := &requestValidator{router: router, maxBodyBytes: maxBodyBytes, queryParams: map[*openapi3.Operation][]string{},
		routes: map[string]*routers.Route{}, templates: map[string][][]string{}}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			v.routes[method+" "+echoPath(path)] = &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}
			v.templates[method] = append(v.templates[method], strings.Split(echoPath(path)[1:], "/"))
			var names []string
			for _, params := range []openapi3.Parameters{item.Parameters, op.Parameters} {
				for _, p := range params {
					if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
						names = append(names, p.Value.Name)
					}
				}
			}
			v.queryParams[op] = names
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
		route, pathParams, err := v.findRoute(c)
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
		for _, name := range c.ParamNames() {
			if id, ok := pathParams[name]; ok && isIDParam(name) && !registry.ValidID(id) {
				return registry.InvalidIdentifier(name)
			}
		}
		if err := v.checkQuery(route.Operation, req); err != nil {
			return err
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
	if len(path) < 2 || !strings.Contains(path[1:], "/") && !strings.HasSuffix(path, "/") {
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

// findRoute is the operation and path parameters of the request: from the
// route echo matched when it is one of the contract's, else from the
// contract router.
func (v *requestValidator) findRoute(c echo.Context) (*routers.Route, map[string]string, error) {
	req := c.Request()
	if route, ok := v.routes[req.Method+" "+c.Path()]; ok {
		names, values := c.ParamNames(), c.ParamValues()
		params := make(map[string]string, len(names))
		for i, n := range names {
			if i < len(values) {
				params[n] = values[i]
			}
		}
		return route, params, nil
	}
	return v.router.FindRoute(req)
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
	declared := v.queryParams[op]
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(declared, k) {
			name := boundedText(k, 64)
			if len(declared) == 0 {
				return registry.InvalidRequest(name, fmt.Sprintf("Unknown query parameter %q: this operation takes no query parameters.", name))
			}
			return registry.InvalidRequest(name, fmt.Sprintf("Unknown query parameter %q: this operation takes only %s.", name, strings.Join(declared, ", ")))
		}
	}
	return nil
}

// requestErrorOf turns a validation failure into a browser-safe problem. It
// builds the detail itself from the parameter name, the field path and the
// schema reason: kin-openapi's own error texts quote schemas and values.
func requestErrorOf(err error) error {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return registry.InvalidRequest("", "The request does not match the API contract.")
	}
	reason := schemaReason(re.Err)
	switch {
	case re.Parameter != nil && re.Parameter.In == openapi3.ParameterInPath && isIDParam(re.Parameter.Name):
		return registry.InvalidIdentifier(re.Parameter.Name)
	case re.Parameter != nil:
		if reason == "" {
			reason = "it has the wrong type"
		}
		return registry.InvalidRequest(re.Parameter.Name, fmt.Sprintf("The %s parameter %q is invalid: %s.", re.Parameter.In, re.Parameter.Name, reason))
	case re.RequestBody != nil:
		return bodyError(re, reason)
	}
	return registry.InvalidRequest("", "The request does not match the API contract.")
}

func bodyError(re *openapi3filter.RequestError, reason string) error {
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		field := strings.Join(se.JSONPointer(), ".")
		if field == "" {
			return registry.InvalidRequest("", "The request body is invalid: "+reason+".")
		}
		return registry.InvalidRequest(field, fmt.Sprintf("The request body field %q is invalid: %s.", boundedText(field, 64), reason))
	}
	var pe *openapi3filter.ParseError
	switch {
	case errors.As(re.Err, &pe):
		return registry.InvalidRequest("", "The request body is not valid JSON.")
	case strings.Contains(re.Reason, "header Content-Type"):
		return registry.InvalidRequest("", "The request body must be application/json.")
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return registry.InvalidRequest("", "A request body is required.")
	}
	return registry.InvalidRequest("", "The request body is invalid.")
}

// schemaReason is the reason of the first schema error in err, or "". kin-openapi
// keeps values out of SchemaError.Reason; it is bounded anyway.
func schemaReason(err error) string {
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		return boundedText(se.Reason, 200)
	}
	return ""
}

// isIDParam tells the id path parameters (runtime_id, worker_id, host_id)
// from the others (the console's asset name).
func isIDParam(name string) bool { return strings.HasSuffix(name, "_id") }
