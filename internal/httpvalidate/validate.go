// Package httpvalidate checks HTTP requests against an OpenAPI contract
// before any handler runs: ids first, then unknown query parameters (which
// kin-openapi does not reject by itself), then kin-openapi's request
// validation, with the body read once within a limit. Its failures are typed
// (*Error with a problem code) and carry browser-safe details built from the
// parameter name, field path and schema reason, never kin-openapi's own
// texts (they quote schemas and values). It is transport plumbing shared by
// the servers of this repository; it knows no domain.
package httpvalidate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
)

// Code is the problem code of a validation failure.
type Code string

// The codes a Validator answers.
const (
	CodeInvalidIdentifier Code = "invalid_identifier"
	CodeInvalidRequest    Code = "invalid_request"
	CodePayloadTooLarge   Code = "payload_too_large"
)

// Error is one validation failure. Field names the parameter or body field to
// blame ("" when none); Detail is safe to show a client.
type Error struct {
	Code   Code
	Field  string
	Detail string
}

// Error returns the code and detail.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Detail }

func invalidRequest(field, detail string) *Error {
	return &Error{Code: CodeInvalidRequest, Field: field, Detail: detail}
}

func invalidIdentifier(name string) *Error {
	return &Error{Code: CodeInvalidIdentifier, Field: name,
		Detail: name + " must be 1 to 120 characters of A-Z a-z 0-9 _ : -."}
}

// PayloadTooLarge is the failure of a body over the limit.
func PayloadTooLarge() *Error {
	return &Error{Code: CodePayloadTooLarge, Detail: "The request body is larger than the server accepts."}
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9_:-]{1,120}$`)

// Validator checks requests against one contract. Every path parameter of
// the contracts it serves is an id of the id alphabet.
type Validator struct {
	router       routers.Router
	maxBodyBytes int64
	routes       *Routes
	auth         openapi3filter.AuthenticationFunc
}

// New builds a Validator for doc (whose Servers must already be cleared) with
// a body limit. Authentication is not checked here (a middleware in front
// does it): the contract declares it for clients. It fails if doc cannot be
// routed.
func New(doc *openapi3.T, maxBodyBytes int64) (*Validator, error) {
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("httpvalidate: routing the contract: %w", err)
	}
	v := &Validator{router: router, maxBodyBytes: maxBodyBytes, routes: NewRoutes(doc), auth: openapi3filter.NoopAuthenticationFunc}
	return v, nil
}

// EchoPath turns a contract path template into echo's: {id} becomes :id.
func EchoPath(p string) string {
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

// Middleware validates the request; an invalid one is answered by echo's
// error handler with the *Error and never reaches a handler. A request that
// matches no operation passes on to echo's router (not found, method not
// allowed).
func (v *Validator) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if err := v.bufferBody(req); err != nil {
			return err
		}
		route, pathParams, err := v.routes.Find(v.router, c)
		if err != nil {
			values := c.ParamValues()
			for i, name := range c.ParamNames() {
				if i < len(values) && values[i] == "" {
					return invalidIdentifier(name)
				}
			}
			if req.Method == http.MethodOptions && c.Get(echo.ContextKeyHeaderAllow) != nil {
				return echo.ErrMethodNotAllowed
			}
			return next(c)
		}
		for _, name := range c.ParamNames() {
			if id, ok := pathParams[name]; ok && !idRE.MatchString(id) {
				return invalidIdentifier(name)
			}
		}
		if err := v.rejectUnknownQuery(route.Operation, req); err != nil {
			return err
		}
		input := &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: pathParams,
			Route:      route,
			Options: &openapi3filter.Options{
				KeepValidatedValue:  true,
				SkipSettingDefaults: true,
				AuthenticationFunc:  v.auth,
			},
		}
		if err := openapi3filter.ValidateRequest(req.Context(), input); err != nil {
			return RequestErrorOf(err)
		}
		return next(c)
	}
}

// bufferBody reads the body once, within the limit, so that both the
// validator and the binder can read it.
func (v *Validator) bufferBody(req *http.Request) error {
	if req.ContentLength > v.maxBodyBytes {
		return PayloadTooLarge()
	}
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, v.maxBodyBytes+1))
	_ = req.Body.Close()
	if err != nil {
		return invalidRequest("", "The request body could not be read.")
	}
	if int64(len(body)) > v.maxBodyBytes {
		return PayloadTooLarge()
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return nil
}

func (v *Validator) rejectUnknownQuery(op *openapi3.Operation, req *http.Request) error {
	if req.URL.RawQuery == "" {
		return nil
	}
	if name, detail, ok := v.routes.UnknownQuery(op, req.URL.Query()); !ok {
		return invalidRequest(name, detail)
	}
	return nil
}

// RequestErrorOf turns a kin-openapi validation failure into a client-safe
// *Error. It builds the detail itself from the parameter name, the field path
// and the schema reason: kin-openapi's own error texts quote schemas and
// values. A path parameter that fails is invalid_identifier when it is an id
// (IsIDParam), invalid_request otherwise.
func RequestErrorOf(err error) *Error {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return invalidRequest("", "The request does not match the API contract.")
	}
	reason := schemaReason(re.Err)
	switch {
	case re.Parameter != nil && re.Parameter.In == openapi3.ParameterInPath && IsIDParam(re.Parameter.Name):
		return invalidIdentifier(re.Parameter.Name)
	case re.Parameter != nil:
		if reason == "" {
			reason = "it has the wrong type"
		}
		return invalidRequest(re.Parameter.Name, fmt.Sprintf("The %s parameter %q is invalid: %s.", re.Parameter.In, re.Parameter.Name, reason))
	case re.RequestBody != nil:
		return bodyError(re, reason)
	}
	return invalidRequest("", "The request does not match the API contract.")
}

func bodyError(re *openapi3filter.RequestError, reason string) *Error {
	var se *openapi3.SchemaError
	if errors.As(re.Err, &se) {
		field := strings.Join(se.JSONPointer(), ".")
		if field == "" {
			return invalidRequest("", "The request body is invalid: "+reason+".")
		}
		return invalidRequest(field, fmt.Sprintf("The request body field %q is invalid: %s.", BoundedText(field, 64), reason))
	}
	var pe *openapi3filter.ParseError
	switch {
	case errors.As(re.Err, &pe):
		return invalidRequest("", "The request body is not valid JSON.")
	case strings.Contains(re.Reason, "header Content-Type"):
		return invalidRequest("", "The request body must be application/json.")
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return invalidRequest("", "A request body is required.")
	}
	return invalidRequest("", "The request body is invalid.")
}

// schemaReason is the reason of the first schema error in err, or "".
// kin-openapi keeps values out of SchemaError.Reason; it is bounded anyway.
func schemaReason(err error) string {
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		return BoundedText(se.Reason, 200)
	}
	return ""
}

// IsIDParam tells the id path parameters (runtime_id, worker_id, host_id)
// from the others (the console's asset name).
func IsIDParam(name string) bool { return strings.HasSuffix(name, "_id") }

// BoundedText makes client-supplied text safe to echo: valid UTF-8, at most n
// runes.
func BoundedText(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
