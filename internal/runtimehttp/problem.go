package runtimehttp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/workspace-backend/runtime-registry/internal/errchain"
	gen "github.com/workspace-backend/runtime-registry/internal/gen/workerruntimeapi"
	"github.com/workspace-backend/runtime-registry/internal/httpkit"
	"github.com/workspace-backend/runtime-registry/internal/httpvalidate"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// ProblemTypePrefix prefixes every problem type URI, as in the browser API.
const ProblemTypePrefix = httpkit.ProblemTypePrefix

// Codes this transport answers beside the domain's.
const (
	codeUnauthenticated  = "unauthenticated"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeTooManyStreams   = "too_many_streams"
)

type problemKind struct {
	status int
	title  string
}

// problemKinds is the one table from code to HTTP status and title; the
// titles are the browser API's.
var problemKinds = map[string]problemKind{
	string(httpvalidate.CodeInvalidIdentifier):     {http.StatusBadRequest, "Invalid identifier"},
	string(workerruntime.CodeInvalidRequest):       {http.StatusBadRequest, "Invalid request"},
	codeUnauthenticated:                            {http.StatusUnauthorized, "Unauthenticated"},
	string(workerruntime.CodeUnknownWorker):        {http.StatusNotFound, "Unknown worker"},
	codeNotFound:                                   {http.StatusNotFound, "Not found"},
	codeMethodNotAllowed:                           {http.StatusMethodNotAllowed, "Method not allowed"},
	string(workerruntime.CodeWorkerNotRunning):     {http.StatusConflict, "Worker not running"},
	string(workerruntime.CodeWorkerBusy):           {http.StatusConflict, "Worker busy"},
	string(workerruntime.CodeRuntimeAtCapacity):    {http.StatusConflict, "Runtime at capacity"},
	string(httpvalidate.CodePayloadTooLarge):       {http.StatusRequestEntityTooLarge, "Payload too large"},
	string(workerruntime.CodeIdempotencyKeyReused): {http.StatusUnprocessableEntity, "Idempotency key reused"},
	string(workerruntime.CodeInternal):             {http.StatusInternalServerError, "Internal server error"},
	string(workerruntime.CodeRuntimeUnavailable):   {http.StatusServiceUnavailable, "Runtime unavailable"},
	codeTooManyStreams:                             {http.StatusServiceUnavailable, "Too many streams"},
}

// fixedDetails are the details of codes whose occurrences say nothing more.
var fixedDetails = map[string]string{
	codeUnauthenticated:                            "This runtime requires its bearer token.",
	string(workerruntime.CodeUnknownWorker):        "The runtime has no worker with this worker_id.",
	codeNotFound:                                   "No such route.",
	codeMethodNotAllowed:                           "The route does not allow this method.",
	string(workerruntime.CodeWorkerNotRunning):     "The worker is not running, so it cannot take input.",
	string(workerruntime.CodeWorkerBusy):           "The worker's input queue is full; try again later.",
	string(workerruntime.CodeRuntimeAtCapacity):    "The runtime already runs as many workers as it may.",
	string(workerruntime.CodeIdempotencyKeyReused): "This Idempotency-Key was already used with a different request.",
	string(workerruntime.CodeInternal):             "The server failed to answer this request. The failure has been logged.",
	string(workerruntime.CodeRuntimeUnavailable):   "The runtime cannot answer now.",
	codeTooManyStreams:                             "Too many event streams are open; try again later.",
}

// transportError is an error of this transport itself (authentication, too
// many streams, echo's router).
type transportError struct {
	code string
}

func (e *transportError) Error() string { return e.code }

var (
	errUnauthenticated  = &transportError{codeUnauthenticated}
	errTooManyStreams   = &transportError{codeTooManyStreams}
	errNotFound         = &transportError{codeNotFound}
	errMethodNotAllowed = &transportError{codeMethodNotAllowed}
)

// problemOf builds the problem for err: the one place errors become HTTP.
// A domain error shows its code, worker id and field, and its Detail only
// for invalid_request (the domain's details are client-safe); anything
// unknown is internal and only its type chain is logged.
func problemOf(err error, workerID string, log *slog.Logger) problemResponse {
	code, field, detail := string(workerruntime.CodeInternal), "", ""
	var (
		de *workerruntime.Error
		ve *httpvalidate.Error
		te *transportError
	)
	switch {
	case errors.As(err, &te):
		code = te.code
	case errors.As(err, &ve):
		code, field, detail = string(ve.Code), ve.Field, ve.Detail
	case errors.As(err, &de):
		code, field = string(de.Code), de.Field
		if de.Code == workerruntime.CodeInvalidRequest {
			detail = domainDetail(de)
		}
	}
	kind, ok := problemKinds[code]
	if !ok {
		code, kind = string(workerruntime.CodeInternal), problemKinds[string(workerruntime.CodeInternal)]
	}
	if code == string(workerruntime.CodeInternal) {
		log.Error("internal error", slog.String("cause_types", errchain.Types(err)))
	}
	if detail == "" {
		detail = fixedDetails[code]
	}
	if detail == "" {
		detail = kind.title + "."
	}
	p := gen.Problem{
		Type: ProblemTypePrefix + code, Title: kind.title, Status: kind.status, Detail: detail,
		Code: gen.ProblemCode(code), Error: http.StatusText(kind.status), Message: detail,
	}
	if field != "" {
		f := httpvalidate.BoundedText(field, 200)
		p.Field = &f
	}
	if workerID != "" && code != string(httpvalidate.CodeInvalidIdentifier) {
		p.WorkerId = &workerID
	}
	return problemResponse(p)
}

// domainDetail is the text of an invalid_request from the domain.
func domainDetail(e *workerruntime.Error) string {
	d := httpvalidate.BoundedText(e.Detail, 300)
	switch {
	case e.Field != "" && d != "":
		return fmt.Sprintf("The field %q is invalid: %s.", httpvalidate.BoundedText(e.Field, 64), strings.TrimSuffix(d, "."))
	case e.Field != "":
		return fmt.Sprintf("The field %q is invalid.", httpvalidate.BoundedText(e.Field, 64))
	case d != "":
		return d
	}
	return "Invalid request."
}

// problemResponse is an RFC 9457 problem document; it answers every operation.
type problemResponse gen.Problem

func (p problemResponse) write(w http.ResponseWriter) error {
	if p.Code == codeUnauthenticated {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	return httpkit.WriteProblem(w, p.Status, gen.Problem(p))
}

// The Visit methods make problemResponse an answer of every operation.

func (p problemResponse) VisitGetHealthResponse(w http.ResponseWriter) error      { return p.write(w) }
func (p problemResponse) VisitGetOpenAPISpecResponse(w http.ResponseWriter) error { return p.write(w) }
func (p problemResponse) VisitGetRuntimeResponse(w http.ResponseWriter) error     { return p.write(w) }
func (p problemResponse) VisitListWorkersResponse(w http.ResponseWriter) error    { return p.write(w) }
func (p problemResponse) VisitCreateWorkerResponse(w http.ResponseWriter) error   { return p.write(w) }
func (p problemResponse) VisitGetWorkerResponse(w http.ResponseWriter) error      { return p.write(w) }
func (p problemResponse) VisitSendWorkerInputResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitStopWorkerResponse(w http.ResponseWriter) error { return p.write(w) }
func (p problemResponse) VisitGetWorkerTranscriptResponse(w http.ResponseWriter) error {
	return p.write(w)
}
func (p problemResponse) VisitStreamEventsResponse(w http.ResponseWriter) error { return p.write(w) }

// echoError maps what echo itself reports (no route, wrong method, a binder
// failure) to our errors; echo's message is never shown.
func echoError(he *echo.HTTPError) error {
	switch he.Code {
	case http.StatusNotFound:
		return errNotFound
	case http.StatusMethodNotAllowed:
		return errMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return httpvalidate.PayloadTooLarge()
	}
	if he.Code >= 400 && he.Code < 500 {
		return &httpvalidate.Error{Code: httpvalidate.CodeInvalidRequest, Detail: "The request could not be read."}
	}
	return fmt.Errorf("echo: status %d", he.Code)
}

// errorHandler is echo's HTTPErrorHandler: every error that reaches echo is
// answered here as a problem document.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var he *echo.HTTPError
		if errors.As(err, &he) {
			err = echoError(he)
		}
		_ = problemOf(err, "", log).write(c.Response())
	}
}
