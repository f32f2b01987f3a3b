package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultSourceTimeout is how long a merged list or a host lookup waits for
// each Source when Options.SourceTimeout is zero.
const DefaultSourceTimeout = 2 * time.Second

// answer is what one Source gave a fan-out: a value, or a sanitised error.
// late is true when the Source did not answer before the deadline (its
// goroutine may still be running; its answer will be dropped).
type answer[T any] struct {
	v    T
	err  error
	late bool
}

// failed reports whether the Source gave no usable answer.
func (a answer[T]) failed() bool { return a.late || a.err != nil }

// fanOut calls call on every Source concurrently, each under the registry's
// source timeout, and returns their answers in the order of sources. It
// returns when every Source has answered, the timeout has passed or ctx has
// ended, whichever comes first: a Source that ignores its context is left
// behind (its goroutine ends when the Source returns, and its answer is
// dropped into a buffered channel nobody reads). A panic in a Source is an
// internal error of that Source alone.
func fanOut[T any](ctx context.Context, r *Registry, sources []Source, op Operation, call func(context.Context, Source) (T, error)) []answer[T] {
	out := make([]answer[T], len(sources))
	if len(sources) == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, r.sourceTimeout)
	defer cancel()
	type result struct {
		i   int
		v   T
		err error
	}
	// Buffered for every Source, so that a late one never blocks on send.
	results := make(chan result, len(sources))
	for i, s := range sources {
		go func() {
			res := result{i: i}
			defer func() {
				if p := recover(); p != nil {
					r.log.LogAttrs(context.Background(), slog.LevelError, "runtime source panicked",
						slog.String("runtime_id", string(s.RuntimeID())),
						slog.String("panic_type", fmt.Sprintf("%T", p)))
					res.err = &Error{Code: CodeInternal, Cause: errors.New("runtime source panicked")}
				}
				results <- res
			}()
			res.v, res.err = call(ctx, s)
		}()
	}
	answered := make([]bool, len(sources))
	take := func(res result) {
		answered[res.i] = true
		out[res.i].v = res.v
		if res.err != nil {
			s := sources[res.i]
			if ctx.Err() != nil && !isDomainError(res.err) {
				// The Source gave up because our deadline passed: late.
				out[res.i].late = true
				return
			}
			out[res.i].err = r.sanitise(res.err, route{runtime: s.RuntimeID(), op: op})
		}
	}
	for pending := len(sources); pending > 0; pending-- {
		select {
		case res := <-results:
			take(res)
		case <-ctx.Done():
			// Take what arrived together with the deadline, then give up.
		drain:
			for {
				select {
				case res := <-results:
					take(res)
				default:
					break drain
				}
			}
			for i, ok := range answered {
				if !ok {
					out[i].late = true
				}
			}
			return out
		}
	}
	return out
}

// isDomainError reports whether err is an *Error a Source made on purpose
// (anything but internal).
func isDomainError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code != CodeInternal
}

// unavailableDiagnostic is the one list diagnostic for a Source that failed
// or was late in a merged list: it could not do what, and so outcome.
func unavailableDiagnostic(id RuntimeID, late bool, what, outcome string) Diagnostic {
	msg := fmt.Sprintf("Runtime %s could not %s; %s.", id, what, outcome)
	if late {
		msg = fmt.Sprintf("Runtime %s did not %s in time; %s.", id, what, outcome)
	}
	return Diagnostic{Code: string(CodeRuntimeUnavailable), Severity: SeverityWarning, Message: msg}
}

// Outcomes of unavailableDiagnostic.
const (
	leftOut           = "it is left out"
	listedUnavailable = "it is listed as unavailable"
)

// Describer is a Source that can say what it is without asking its Runtime.
// The registry uses it to list a Runtime whose Summary failed or was late.
// Describe must not block.
type Describer interface {
	Describe() Description
}

// Description is what a Source says about itself without asking its
// Runtime.
type Description struct {
	// Label is the Runtime's display name.
	Label string
	// Kind is the Runtime kind (1 to 64 of a-z, 0-9, '_' and '-').
	Kind string
	// SourceKind says what kind of Runtime the Source fronts.
	SourceKind SourceKind
}

// unknownKind is the kind of a Runtime that did not describe itself.
const unknownKind = "unknown"

// unavailableSummary is the summary of a Runtime that could not describe
// itself: what the registry knows of it (its runtime_id, and its Description
// if the Source has one), status unavailable, and why. A Source without a
// Describer is shown as remote_http: local Sources answer from memory, so
// the one that fails or is late is the remote kind.
func unavailableSummary(s Source, late bool) RuntimeSummary {
	id := s.RuntimeID()
	d := describe(s)
	reason := "The runtime cannot answer now."
	if late {
		reason = "The runtime did not answer in time."
	}
	return RuntimeSummary{
		ID:      id,
		Label:   d.Label,
		Kind:    d.Kind,
		Status:  Unavailable,
		HostIDs: []HostID{},
		Source: SourceInfo{
			Kind:              d.SourceKind,
			Status:            SourceActive,
			IdentityAuthority: IdentityAuthorityProjection,
			Note:              "The runtime is registered but did not describe itself.",
		},
		Capabilities: Capabilities{
			LocalPodInspection: InspectionUnavailable,
			WorkspaceScope:     WorkspaceScopeCurrent,
			OS:                 unknownKind,
			Arch:               unknownKind,
		},
		Diagnostics: []Diagnostic{{Code: string(CodeRuntimeUnavailable), Severity: SeverityWarning, Message: reason}},
	}
}

// describe asks a Describer, keeping only what fits the contract; a
// panicking Describer counts as none.
func describe(s Source) (d Description) {
	def := Description{Label: string(s.RuntimeID()), Kind: unknownKind, SourceKind: SourceRemoteHTTP}
	ds, ok := s.(Describer)
	if !ok {
		return def
	}
	defer func() {
		if recover() != nil {
			d = def
		}
	}()
	d = ds.Describe()
	if d.Label == "" || len(d.Label) > 200 {
		d.Label = def.Label
	}
	if !validKind(d.Kind) {
		d.Kind = def.Kind
	}
	switch d.SourceKind {
	case SourceLocalCompatibility, SourceEmbeddedWorkerRuntime, SourceRemoteHTTP:
	default:
		d.SourceKind = def.SourceKind
	}
	return d
}

// validKind reports whether k is 1 to 64 of a-z, 0-9, '_' and '-'.
func validKind(k string) bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
