package remote

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// fault is why a remote Runtime could not answer. Its text is ours: the
// transport's own error texts name the URL, so they are never kept.
type fault int

const (
	faultNone fault = iota
	faultUnreachable
	faultTimeout
	faultAuth
	faultBadResponse
)

// Diagnostic codes of the faults.
const (
	DiagUnreachable = "remote_runtime_unreachable"
	DiagTimeout     = "remote_runtime_timeout"
	DiagAuthFailed  = "remote_runtime_auth_failed"
	DiagBadResponse = "remote_runtime_bad_response"
)

func (f fault) code() string {
	switch f {
	case faultTimeout:
		return DiagTimeout
	case faultAuth:
		return DiagAuthFailed
	case faultBadResponse:
		return DiagBadResponse
	default:
		return DiagUnreachable
	}
}

func (f fault) message() string {
	switch f {
	case faultTimeout:
		return "The remote runtime did not answer in time."
	case faultAuth:
		return "The remote runtime refused this backend's credentials."
	case faultBadResponse:
		return "The remote runtime answered something this backend cannot use."
	default:
		return "The remote runtime cannot be reached."
	}
}

// faultError is the cause kept in a runtime_unavailable error: the fault's
// code only, no transport text.
type faultError struct{ f fault }

func (e *faultError) Error() string { return "remote runtime: " + e.f.code() }

func (s *Source) unavailable(f fault) *registry.Error {
	return registry.RuntimeUnavailable(s.cfg.ID, f.message(), &faultError{f})
}

// classify turns a transport error into a fault.
func classify(err error) fault {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return faultTimeout
	}
	return faultUnreachable
}

// problem is the part of a runtime's problem document this backend reads:
// the code and the field. Its detail and title are never passed on.
type problem struct {
	Code  string `json:"code"`
	Field string `json:"field"`
}

var fieldRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// domainError maps a runtime's 4xx problem to the registry's error of the
// same code, with the registry's own text; ok is false for a code that is
// not a domain code this backend passes on (a bad response).
func domainError(id registry.RuntimeID, worker registry.WorkerID, p problem) (*registry.Error, bool) {
	ref := registry.WorkerRef{RuntimeID: id, WorkerID: worker}
	switch registry.Code(p.Code) {
	case registry.CodeUnknownWorker:
		if worker == "" {
			return nil, false
		}
		return registry.UnknownWorker(ref), true
	case registry.CodeWorkerNotRunning:
		return registry.WorkerNotRunning(ref), true
	case registry.CodeWorkerBusy:
		return registry.WorkerBusy(ref), true
	case registry.CodeRuntimeAtCapacity:
		return registry.RuntimeAtCapacity(id), true
	case registry.CodeIdempotencyKeyReused:
		return registry.IdempotencyKeyReused(id), true
	case registry.CodeInvalidRequest, registry.CodeInvalidIdentifier:
		field := ""
		if fieldRE.MatchString(p.Field) {
			field = p.Field
		}
		detail := "The runtime rejected the request."
		switch {
		case field == "profile":
			detail = "The runtime has no profile of that name."
		case field != "":
			detail = "The runtime rejected the request field " + field + "."
		}
		e := registry.InvalidRequest(field, detail)
		e.RuntimeID = id
		return e, true
	case registry.CodePayloadTooLarge:
		e := registry.InvalidRequest("", "The runtime refused a request this large.")
		e.RuntimeID = id
		return e, true
	}
	return nil, false
}

// maxBody bounds what is read of one answer (a transcript page holds up to
// 1 MiB of content, which JSON escaping may grow several times).
const maxBody = 16 << 20

// readAnswer reads resp's body within maxBody and decides what it is: the
// wanted status decoded into out, a domain error, or a fault.
func (s *Source) readAnswer(resp *http.Response, want int, worker registry.WorkerID, out any) (fault, error) {
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return classify(err), nil
	}
	if len(body) > maxBody {
		return faultBadResponse, nil
	}
	switch {
	case resp.StatusCode == want:
		if out != nil && !isJSON(resp.Header.Get("Content-Type"), "application/json") {
			return faultBadResponse, nil
		}
		if out != nil && json.Unmarshal(body, out) != nil {
			return faultBadResponse, nil
		}
		return faultNone, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return faultAuth, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		var p problem
		if !isJSON(resp.Header.Get("Content-Type"), "application/problem+json") || json.Unmarshal(body, &p) != nil {
			return faultBadResponse, nil
		}
		if e, ok := domainError(s.cfg.ID, worker, p); ok {
			return faultNone, e
		}
		return faultBadResponse, nil
	}
	return faultBadResponse, nil
}

func isJSON(contentType, want string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), want)
}
