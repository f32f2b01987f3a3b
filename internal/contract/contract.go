// Package contract holds the checks that keep the contract (api/openapi.yaml),
// the server, the generated Go and TypeScript code and the released contract
// in agreement. `make contract` runs them through this package's tests. Every
// check takes paths or a loaded document, so that the tests can also feed it a
// deliberately broken copy and prove that it fails.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// ProblemTypePrefix prefixes the `type` URI of every problem document; the
// problem's `code` follows it (the contract's Problem.type).
const ProblemTypePrefix = "urn:problem:workspace-runtime:"

// LoadSpec loads the OpenAPI document at path and validates it with
// kin-openapi. External references are refused: the contract is one file. It
// fails if the file cannot be read or parsed, or does not validate.
func LoadSpec(ctx context.Context, path string) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("validating %s: %w", path, err)
	}
	return doc, nil
}

// ProblemCodes returns the values of the ProblemCode enum of doc, or nil if the
// schema is missing.
func ProblemCodes(doc *openapi3.T) []string {
	ref := doc.Components.Schemas["ProblemCode"]
	if ref == nil || ref.Value == nil {
		return nil
	}
	codes := make([]string, 0, len(ref.Value.Enum))
	for _, v := range ref.Value.Enum {
		if s, ok := v.(string); ok {
			codes = append(codes, s)
		}
	}
	return codes
}

// Finding is one authority-bearing name in a spec.
type Finding struct {
	// Where locates the name, e.g. "components.schemas.Problem.properties".
	Where string
	// Name is the offending parameter, header or property name.
	Name string
}

func (f Finding) String() string { return f.Where + ": " + f.Name }

// Authority-bearing names: how or where a Runtime is reached or stored, and
// credentials. Names are compared after normalisation (lower case, camelCase
// and '-' turned into '_').
var (
	authorityExact = []string{
		"endpoint", "endpoints", "url", "urls", "uri", "uris", "href", "address", "addr",
		"host", "hostname", "port", "path", "paths", "dir", "directory", "root", "file", "filename",
		"data_dir", "workspace_root", "authorization", "proxy_authorization",
	}
	authorityContains = []string{
		"socket", "session", "token", "secret", "password", "passwd", "credential",
		"callback", "cookie", "api_key", "apikey",
	}
	authorityPrefixes = []string{"metadata"}
	authoritySuffixes = []string{
		"_path", "_paths", "_url", "_urls", "_uri", "_uris", "_endpoint", "_endpoints",
		"_dir", "_dirs", "_directory", "_root", "_file", "_filename", "_address", "_addr",
	}
	camelBoundary = regexp.MustCompile(`([a-z0-9])([A-Z])`)
)

// normalizeName lower-cases name and turns camelCase, '-', '.' and ' ' into
// '_' separators: "X-Session-Id" and "sessionId" both contain "session".
func normalizeName(name string) string {
	n := camelBoundary.ReplaceAllString(name, "${1}_${2}")
	n = strings.NewReplacer("-", "_", ".", "_", " ", "_").Replace(n)
	return strings.ToLower(n)
}

// IsAuthorityName reports whether name (of a parameter, header or schema
// property) would carry authority the browser-facing API must never accept or
// reveal: an endpoint, URL, token, socket, session, callback, file path, data
// directory, workspace root or metadata location.
func IsAuthorityName(name string) bool {
	n := normalizeName(name)
	if slices.Contains(authorityExact, n) {
		return true
	}
	for _, s := range authorityContains {
		if strings.Contains(n, s) {
			return true
		}
	}
	for _, p := range authorityPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	for _, s := range authoritySuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// ForbiddenNames returns every parameter, header and schema property name of
// doc, at any depth, for which IsAuthorityName holds, and every operation that
// declares callbacks (a callback is an address the server would call). The
// result is sorted; empty means the spec is clean.
func ForbiddenNames(doc *openapi3.T) []Finding {
	w := &nameWalker{seen: map[*openapi3.Schema]bool{}}
	if c := doc.Components; c != nil {
		for _, k := range sortedKeys(c.Parameters) {
			w.parameter("components.parameters."+k, c.Parameters[k])
		}
		for _, k := range sortedKeys(c.Headers) {
			w.header("components.headers", k, c.Headers[k])
		}
		for _, k := range sortedKeys(c.Schemas) {
			w.schema("components.schemas."+k, c.Schemas[k])
		}
		for _, k := range sortedKeys(c.RequestBodies) {
			if rb := c.RequestBodies[k]; rb != nil && rb.Value != nil {
				w.content("components.requestBodies."+k, rb.Value.Content)
			}
		}
		for _, k := range sortedKeys(c.Responses) {
			w.response("components.responses."+k, c.Responses[k])
		}
		for _, k := range sortedKeys(c.Callbacks) {
			w.add("components.callbacks", k)
		}
	}
	if doc.Paths != nil {
		for _, p := range doc.Paths.InMatchingOrder() {
			item := doc.Paths.Value(p)
			for _, prm := range item.Parameters {
				w.parameter("paths."+p+".parameters", prm)
			}
			ops := item.Operations()
			for _, method := range sortedKeys(ops) {
				op := ops[method]
				where := "paths." + p + "." + strings.ToLower(method)
				for _, prm := range op.Parameters {
					w.parameter(where+".parameters", prm)
				}
				if op.RequestBody != nil && op.RequestBody.Value != nil {
					w.content(where+".requestBody", op.RequestBody.Value.Content)
				}
				if op.Responses != nil {
					for _, status := range sortedKeys(op.Responses.Map()) {
						w.response(where+".responses."+status, op.Responses.Value(status))
					}
				}
				for _, cb := range sortedKeys(op.Callbacks) {
					w.add(where+".callbacks", cb)
				}
			}
		}
	}
	w.found = slices.DeleteFunc(w.found, func(f Finding) bool { return allowedFindings[f] })
	sort.Slice(w.found, func(i, j int) bool { return w.found[i].String() < w.found[j].String() })
	return slices.Compact(w.found)
}

// allowedFindings are the only authority-looking names the contract may
// hold, each for a stated reason. Both are the user's own access token to
// this backend (DESIGN, "Browser-facing server security": opening /?token=
// once sets an HttpOnly cookie, the way Jupyter does); neither is a Runtime
// credential, which the browser never holds.
var allowedFindings = map[Finding]bool{
	{Where: "paths./.get.parameters", Name: "token"}:                 true,
	{Where: "paths./.get.responses.303.headers", Name: "Set-Cookie"}: true,
}

type nameWalker struct {
	seen  map[*openapi3.Schema]bool
	found []Finding
}

func (w *nameWalker) add(where, name string) {
	w.found = append(w.found, Finding{Where: where, Name: name})
}

func (w *nameWalker) check(where, name string) {
	if IsAuthorityName(name) {
		w.add(where, name)
	}
}

func (w *nameWalker) parameter(where string, ref *openapi3.ParameterRef) {
	if ref == nil || ref.Value == nil {
		return
	}
	w.check(where, ref.Value.Name)
	w.schema(where+"."+ref.Value.Name+".schema", ref.Value.Schema)
	w.content(where+"."+ref.Value.Name, ref.Value.Content)
}

func (w *nameWalker) header(where, name string, ref *openapi3.HeaderRef) {
	w.check(where, name)
	if ref != nil && ref.Value != nil {
		w.schema(where+"."+name+".schema", ref.Value.Schema)
	}
}

func (w *nameWalker) response(where string, ref *openapi3.ResponseRef) {
	if ref == nil || ref.Value == nil {
		return
	}
	for _, h := range sortedKeys(ref.Value.Headers) {
		w.header(where+".headers", h, ref.Value.Headers[h])
	}
	w.content(where, ref.Value.Content)
}

func (w *nameWalker) content(where string, content openapi3.Content) {
	for _, mt := range sortedKeys(content) {
		if m := content[mt]; m != nil {
			w.schema(where+".content."+mt, m.Schema)
		}
	}
}

func (w *nameWalker) schema(where string, ref *openapi3.SchemaRef) {
	if ref == nil || ref.Value == nil || w.seen[ref.Value] {
		return
	}
	s := ref.Value
	w.seen[s] = true
	for _, name := range sortedKeys(s.Properties) {
		w.check(where+".properties", name)
		w.schema(where+".properties."+name, s.Properties[name])
	}
	for _, name := range s.Required {
		if _, declared := s.Properties[name]; !declared {
			w.check(where+".required", name)
		}
	}
	w.schema(where+".items", s.Items)
	w.schema(where+".not", s.Not)
	w.schema(where+".additionalProperties", s.AdditionalProperties.Schema)
	for i, list := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for j, sub := range list {
			w.schema(fmt.Sprintf("%s.%s[%d]", where, [...]string{"allOf", "anyOf", "oneOf"}[i], j), sub)
		}
	}
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ResponseChecker decides whether an HTTP response is one the contract allows.
type ResponseChecker struct {
	doc    *openapi3.T
	router routers.Router
	codes  []string
}

// NewResponseChecker builds a checker for doc. It clears doc.Servers so that
// routes match on any host. It fails if doc cannot be routed.
func NewResponseChecker(doc *openapi3.T) (*ResponseChecker, error) {
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("routing the spec: %w", err)
	}
	return &ResponseChecker{doc: doc, router: router, codes: ProblemCodes(doc)}, nil
}

// Check returns nil if status, header and body are an answer the contract
// allows to req, and otherwise an error naming every violation:
//   - for a request that matches an operation, the status must be declared by
//     that operation and the body must match the declared content and schema;
//   - for a request that matches no operation, only 404 and 405 may answer;
//   - every status of 400 and above must be an application/problem+json
//     Problem whose `status` is the HTTP status, whose `code` is in the
//     ProblemCode enum, whose `type` is ProblemTypePrefix + code, and whose
//     legacy members agree (`error` is the reason phrase, `message` = `detail`).
func (c *ResponseChecker) Check(ctx context.Context, req *http.Request, status int, header http.Header, body []byte) error {
	var errs []error
	if status >= 400 {
		errs = append(errs, c.checkProblem(status, header, body))
	}
	// HEAD is answered as GET without the body (RFC 9110 section 9.3.2; the
	// server's guard does so): judge it by the GET operation, bodiless.
	head := req.Method == http.MethodHead
	if head {
		req = req.Clone(ctx)
		req.Method = http.MethodGet
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// An empty path segment is an empty id: if filling it in matches an
		// operation, the answer is that operation's 400 invalid_identifier.
		if filled := fillEmptySegments(req); filled != nil {
			r, p, ferr := c.router.FindRoute(filled)
			switch {
			case ferr == nil:
				if code := problemCode(body); status != http.StatusBadRequest || code != "invalid_identifier" {
					errs = append(errs, fmt.Errorf("%s %s has an empty id, yet the answer is %d %q, not 400 invalid_identifier", req.Method, req.URL.Path, status, code))
				}
				route, params, err = r, p, nil
			case errors.Is(ferr, routers.ErrMethodNotAllowed) && status == http.StatusBadRequest:
				// The path with its id filled in exists for another method:
				// the empty id may be reported before the method.
				if code := problemCode(body); code != "invalid_identifier" {
					errs = append(errs, fmt.Errorf("%s %s has an empty id, yet the answer is 400 %q, not invalid_identifier", req.Method, req.URL.Path, code))
				}
				return errors.Join(errs...)
			}
		}
	}
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			errs = append(errs, fmt.Errorf("no operation matches %s %s, yet the status is %d (only 404 or 405 may answer)", req.Method, req.URL.Path, status))
		}
		return errors.Join(errs...)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: head},
	}
	if err := openapi3filter.ValidateResponse(ctx, input); err != nil {
		errs = append(errs, fmt.Errorf("operation %s: response %d does not match the contract: %w", route.Operation.OperationID, status, err))
	}
	return errors.Join(errs...)
}

// fillEmptySegments returns a copy of req whose empty interior path segments
// ("//") hold a placeholder id, or nil if the path has none.
func fillEmptySegments(req *http.Request) *http.Request {
	escaped := req.URL.EscapedPath()
	trailing := len(escaped) > 1 && strings.HasSuffix(escaped, "/")
	if !strings.Contains(escaped, "//") && !trailing {
		return nil
	}
	escaped = strings.ReplaceAll(strings.ReplaceAll(escaped, "//", "/empty/"), "//", "/empty/")
	if strings.HasSuffix(escaped, "/") {
		escaped += "empty" // a trailing "/" is an empty last segment
	}
	u, err := url.Parse(escaped)
	if err != nil {
		return nil
	}
	filled := req.Clone(req.Context())
	filled.URL.Path, filled.URL.RawPath = u.Path, u.RawPath
	return filled
}

// problemCode is the `code` member of a problem body, or "".
func problemCode(body []byte) string {
	var p struct{ Code string }
	_ = json.Unmarshal(body, &p)
	return p.Code
}

func (c *ResponseChecker) checkProblem(status int, header http.Header, body []byte) error {
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil || mt != "application/problem+json" {
		return fmt.Errorf("error status %d with Content-Type %q, want application/problem+json", status, header.Get("Content-Type"))
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("problem body is not JSON: %w", err)
	}
	schema := c.doc.Components.Schemas["Problem"]
	if schema == nil || schema.Value == nil {
		return errors.New("the spec has no Problem schema")
	}
	if err := schema.Value.VisitJSON(v); err != nil {
		return fmt.Errorf("problem does not match the Problem schema: %w", err)
	}
	var p struct {
		Type, Title, Detail, Code, Error, Message string
		Status                                    int
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("problem body: %w", err)
	}
	var errs []error
	if p.Status != status {
		errs = append(errs, fmt.Errorf("problem status %d in a %d response", p.Status, status))
	}
	if !slices.Contains(c.codes, p.Code) {
		errs = append(errs, fmt.Errorf("problem code %q is not in the ProblemCode enum", p.Code))
	}
	if p.Type != ProblemTypePrefix+p.Code {
		errs = append(errs, fmt.Errorf("problem type %q does not match code %q", p.Type, p.Code))
	}
	if p.Error != http.StatusText(status) || p.Message != p.Detail || p.Title == "" {
		errs = append(errs, fmt.Errorf("problem legacy members disagree: error %q, message %q, detail %q, title %q", p.Error, p.Message, p.Detail, p.Title))
	}
	return errors.Join(errs...)
}
