package handlers

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/workspace-backend/runtime-registry/internal/errchain"
	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/httpkit"
	"github.com/workspace-backend/runtime-registry/internal/httpvalidate"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// ProblemTypePrefix prefixes every problem type URI; the code follows it. One
// code has exactly one type URI.
const ProblemTypePrefix = httpkit.ProblemTypePrefix

// problemKind is how one code is answered.
type problemKind struct {
	status int
	title  string
}

// problemKinds is the one table that maps error codes to HTTP statuses.
var problemKinds = map[registry.Code]problemKind{
	registry.CodeInvalidIdentifier:    {http.StatusBadRequest, "Invalid identifier"},
	registry.CodeInvalidRequest:       {http.StatusBadRequest, "Invalid request"},
	registry.CodeUnknownRuntime:       {http.StatusNotFound, "Unknown runtime"},
	registry.CodeUnknownHost:          {http.StatusNotFound, "Unknown host"},
	registry.CodeUnknownWorker:        {http.StatusNotFound, "Unknown worker"},
	registry.CodeWorkerNotVisible:     {http.StatusForbidden, "Worker not visible"},
	registry.CodeRuntimeUnavailable:   {http.StatusServiceUnavailable, "Runtime unavailable"},
	registry.CodeOperationUnsupported: {http.StatusNotImplemented, "Operation unsupported"},
	registry.CodeNotFound:             {http.StatusNotFound, "Not found"},
	registry.CodeMethodNotAllowed:     {http.StatusMethodNotAllowed, "Method not allowed"},
	registry.CodePayloadTooLarge:      {http.StatusRequestEntityTooLarge, "Payload too large"},
	registry.CodeInternal:             {http.StatusInternalServerError, "Internal server error"},
	registry.CodeUnauthenticated:      {http.StatusUnauthorized, "Unauthenticated"},
	registry.CodeCrossOriginRejected:  {http.StatusForbidden, "Cross-origin request rejected"},
	registry.CodeMisdirectedRequest:   {http.StatusMisdirectedRequest, "Misdirected request"},
	registry.CodeWorkerNotRunning:     {http.StatusConflict, "Worker not running"},
	registry.CodeWorkerBusy:           {http.StatusConflict, "Worker busy"},
	registry.CodeRuntimeAtCapacity:    {http.StatusConflict, "Runtime at capacity"},
	registry.CodeIdempotencyKeyReused: {http.StatusUnprocessableEntity, "Idempotency key reused"},
	registry.CodeTooManyStreams:       {http.StatusServiceUnavailable, "Too many streams"},
}

// StatusOf returns the HTTP status that answers code (500 for an unknown code).
func StatusOf(code registry.Code) int {
	if k, ok := problemKinds[code]; ok {
		return k.status
	}
	return http.StatusInternalServerError
}

// internalDetail is the only detail an internal error ever shows.
const internalDetail = "The server failed to answer this request. The failure has been logged."

// maxFieldLength bounds the field name echoed in a problem.
const maxFieldLength = 200

// problemOf builds the problem document for err. Only an *registry.Error's
// code, ids, field and browser-safe Detail are used; anything else, and the
// cause of an internal error, is logged and never shown.
func problemOf(err error, log *slog.Logger) problemResponse {
	var e *registry.Error
	if !errors.As(err, &e) {
		e = &registry.Error{Code: registry.CodeInternal, Cause: err}
	}
	kind, ok := problemKinds[e.Code]
	if !ok {
		e = &registry.Error{Code: registry.CodeInternal, Cause: err}
		kind = problemKinds[registry.CodeInternal]
	}
	detail := e.Detail
	if e.Code == registry.CodeInternal {
		// The cause's text may carry paths (os errors do), so not even the log
		// gets it: the type chain says where to look.
		log.Error("internal error", slog.String("cause_types", errchain.Types(err)))
		detail = internalDetail
	}
	if detail == "" {
		detail = kind.title + "."
	}
	p := gen.Problem{
		Type:    ProblemTypePrefix + string(e.Code),
		Title:   kind.title,
		Status:  kind.status,
		Detail:  detail,
		Code:    gen.ProblemCode(e.Code),
		Error:   http.StatusText(kind.status),
		Message: detail,
	}
	if e.RuntimeID != "" {
		p.RuntimeId = ptr(string(e.RuntimeID))
	}
	if e.WorkerID != "" {
		p.WorkerId = ptr(string(e.WorkerID))
	}
	if e.HostID != "" {
		p.HostId = ptr(string(e.HostID))
	}
	if e.Field != "" {
		p.Field = ptr(httpvalidate.BoundedText(e.Field, maxFieldLength))
	}
	return problemResponse(p)
}

func ptr[T any](v T) *T { return &v }

// problemResponse is an RFC 9457 problem document. It implements the response
// interface of every operation, so that each handler answers its expected
// errors through the one mapping in problemOf; response validation in the tests
// proves that each operation only answers statuses its contract declares.
type problemResponse gen.Problem

func (p problemResponse) write(w http.ResponseWriter) error {
	return httpkit.WriteProblem(w, p.Status, gen.Problem(p))
}

// The Visit methods make problemResponse an answer of every operation.

func (p problemResponse) VisitGetHealthResponse(w http.ResponseWriter) error      { return p.write(w) }
func (p problemResponse) VisitGetMetricsResponse(w http.ResponseWriter) error     { return p.write(w) }
func (p problemResponse) VisitGetOpenAPISpecResponse(w http.ResponseWriter) error { return p.write(w) }
func (p problemResponse) VisitListRuntimesResponse(w http.ResponseWriter) error   { return p.write(w) }
func (p problemResponse) VisitListHostsResponse(w http.ResponseWriter) error      { return p.write(w) }
func (p problemResponse) VisitListWorkersResponse(w http.ResponseWriter) error    { return p.write(w) }
func (p problemResponse) VisitListHostWorkersResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitGetRuntimeResponse(w http.ResponseWriter) error { return p.write(w) }
func (p problemResponse) VisitListRuntimeHostsResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitListRuntimeWorkersResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitGetWorkerResponse(w http.ResponseWriter) error    { return p.write(w) }
func (p problemResponse) VisitCreateWorkerResponse(w http.ResponseWriter) error { return p.write(w) }
func (p problemResponse) VisitSendWorkerInputResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitStopWorkerResponse(w http.ResponseWriter) error { return p.write(w) }
func (p problemResponse) VisitListRuntimeProfilesResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitGetWorkerTranscriptResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitStreamRuntimeEventsResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitStreamWorkerEventsResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitGetConsoleResponse(w http.ResponseWriter) error      { return p.write(w) }
func (p problemResponse) VisitGetConsoleAssetResponse(w http.ResponseWriter) error { return p.write(w) }

// transportError turns what echo itself reports (no route, wrong method, body
// too large, a binder failure) into a registry error with the matching code.
// Echo's own message is never shown: a binder message can quote the body.
func transportError(he *echo.HTTPError) *registry.Error {
	switch he.Code {
	case http.StatusNotFound:
		return &registry.Error{Code: registry.CodeNotFound, Detail: "No such route."}
	case http.StatusMethodNotAllowed:
		return &registry.Error{Code: registry.CodeMethodNotAllowed, Detail: "The route does not allow this method."}
	case http.StatusRequestEntityTooLarge:
		return payloadTooLarge()
	}
	if he.Code >= 400 && he.Code < 500 {
		return &registry.Error{Code: registry.CodeInvalidRequest, Detail: "The request could not be read."}
	}
	return &registry.Error{Code: registry.CodeInternal, Cause: he}
}

func payloadTooLarge() *registry.Error {
	return &registry.Error{Code: registry.CodePayloadTooLarge, Detail: "The request body is larger than the server accepts."}
}

// ErrorHandler is the echo HTTPErrorHandler: every error that reaches echo (from
// the validator, the binder, the router, a recovered panic) is answered here
// as a problem document.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var he *echo.HTTPError
		var re *registry.Error
		if errors.As(err, &he) && !errors.As(err, &re) {
			err = transportError(he)
		}
		p := problemOf(err, log)
		if werr := p.write(c.Response()); werr != nil {
			log.Debug("writing problem failed", slog.String("reason", "client write"))
		}
	}
}
