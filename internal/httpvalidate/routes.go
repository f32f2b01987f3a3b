package httpvalidate

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
)

// Routes are one contract's operations indexed for requests echo has
// routed: by method and echo path (a map lookup instead of the contract
// router's regular expressions, which cost a third of a small request), with
// the query parameters each operation declares. Both the browser API's and
// the worker-runtime's validators build theirs with NewRoutes.
type Routes struct {
	byMethod map[string]map[string]*routers.Route
	query    map[*openapi3.Operation][]string
}

// NewRoutes indexes every operation of doc.
func NewRoutes(doc *openapi3.T) *Routes {
	r := &Routes{byMethod: map[string]map[string]*routers.Route{}, query: map[*openapi3.Operation][]string{}}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if r.byMethod[method] == nil {
				r.byMethod[method] = map[string]*routers.Route{}
			}
			r.byMethod[method][EchoPath(path)] = &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}
			var names []string
			for _, params := range []openapi3.Parameters{item.Parameters, op.Parameters} {
				for _, p := range params {
					if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
						names = append(names, p.Value.Name)
					}
				}
			}
			r.query[op] = names
		}
	}
	return r
}

// Matched is the operation of the route echo matched, nil when echo matched
// none of the contract's (it builds no key and allocates nothing).
func (r *Routes) Matched(c echo.Context) *routers.Route {
	return r.byMethod[c.Request().Method][c.Path()]
}

// Find is the operation and path parameters of the request: from the route
// echo matched when it is one of the contract's, else from router.
func (r *Routes) Find(router routers.Router, c echo.Context) (*routers.Route, map[string]string, error) {
	if route := r.Matched(c); route != nil {
		return route, PathParams(c), nil
	}
	return router.FindRoute(c.Request())
}

// PathParams are echo's path parameters of c as a map.
func PathParams(c echo.Context) map[string]string {
	names, values := c.ParamNames(), c.ParamValues()
	params := make(map[string]string, len(names))
	for i, n := range names {
		if i < len(values) {
			params[n] = values[i]
		}
	}
	return params
}

// UnknownQuery checks query against the parameters op declares, which
// kin-openapi does not do by itself. For the first undeclared name (in byte
// order) it returns that name, bounded, and a browser-safe detail; ok is
// true when every name is declared.
func (r *Routes) UnknownQuery(op *openapi3.Operation, query url.Values) (name, detail string, ok bool) {
	declared := r.query[op]
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(declared, k) {
			continue
		}
		name = BoundedText(k, 64)
		if len(declared) == 0 {
			return name, fmt.Sprintf("Unknown query parameter %q: this operation takes no query parameters.", name), false
		}
		return name, fmt.Sprintf("Unknown query parameter %q: this operation takes only %s.", name, strings.Join(declared, ", ")), false
	}
	return "", "", true
}
