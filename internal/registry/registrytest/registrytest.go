// Package registrytest is the one shared test double of a registry.Source:
// an in-memory Runtime whose Workers, hosts, diagnostics and failures a test
// sets at any time. *Source implements the read core only; the wrapper types
// (Creator, InputSender, Stopper, TranscriptReader, ProfileLister,
// EventStreamer, and Full for all of them) add the optional operations, so
// that a test chooses what the registry sees implemented. It is a test
// double, not a Runtime: operations record what they route and echo it.
package registrytest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Method names one Source method, for failure injection and hooks.
type Method string

// The methods of a Source and its optional operations.
const (
	MethodSummary      Method = "Summary"
	MethodHosts        Method = "Hosts"
	MethodWorkers      Method = "Workers"
	MethodWorker       Method = "Worker"
	MethodCreateWorker Method = "CreateWorker"
	MethodSendInput    Method = "SendInput"
	MethodStopWorker   Method = "StopWorker"
	MethodTranscript   Method = "Transcript"
	MethodProfiles     Method = "Profiles"
	MethodEvents       Method = "Events"
)

// ObservedAt is the fixed observation time of every host of the double, so
// that an unchanged list stays byte-identical.
var ObservedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Source is an in-memory Runtime. It is safe for concurrent use; every
// setter may be called while the registry reads it.
type Source struct {
	id   registry.RuntimeID
	host registry.HostID

	mu           sync.Mutex
	workers      map[registry.WorkerID]registry.Worker
	hidden       map[registry.WorkerID]bool
	diags        []registry.Diagnostic
	hostDiags    []registry.Diagnostic
	version      string
	lookup       string
	capabilities registry.Capabilities
	profiles     []registry.Profile
	failures     map[Method]error
	failAll      error
	hook         func(ctx context.Context, m Method) error
	ignoreAfter  bool
	calls        []string
	created      int
	transcripts  map[registry.WorkerID][]registry.TranscriptEntry
	streams      map[*stream]struct{}
	eventSeq     int
}

var (
	_ registry.Source          = (*Source)(nil)
	_ registry.VersionedLookup = (*Source)(nil)
)

// New returns a Source for runtime id with one host ("host-" + id) and the
// Workers named, each made by NewWorker.
func New(id registry.RuntimeID, workerIDs ...registry.WorkerID) *Source {
	s := &Source{
		id:          id,
		host:        registry.HostID("host-" + string(id)),
		workers:     map[registry.WorkerID]registry.Worker{},
		hidden:      map[registry.WorkerID]bool{},
		failures:    map[Method]error{},
		transcripts: map[registry.WorkerID][]registry.TranscriptEntry{},
		streams:     map[*stream]struct{}{},
		profiles:    []registry.Profile{{Name: "default", Label: "Default", Description: "The default profile."}},
		capabilities: registry.Capabilities{
			CanListHosts: true, CanListWorkers: true, CanGetWorker: true,
			// The double claims every operation: the registry must clear
			// what the wrapper in use does not implement.
			CanSpawnWorker: true, CanStopWorker: true, CanAcceptInput: true,
			CanStreamEvents: true, CanReadBoundedTranscript: true,
			LocalPodInspection: registry.InspectionUnavailable,
			WorkspaceScope:     registry.WorkspaceScopeCurrent,
			OS:                 "linux", Arch: "amd64",
		},
	}
	for _, w := range workerIDs {
		s.workers[w] = NewWorker(id, s.host, w)
	}
	return s
}

// NewWorker returns a well-formed Worker of runtime rid on host hid, labelled
// "Worker " + id, claiming every Worker capability.
func NewWorker(rid registry.RuntimeID, hid registry.HostID, id registry.WorkerID) registry.Worker {
	return registry.Worker{
		ID: id, RuntimeID: rid, HostID: hid, Label: "Worker " + string(id),
		State: registry.WorkerActive, Status: "active:running",
		Workspace:      registry.WorkerWorkspace{Visibility: "current_workspace", Identity: "runtime_workspace"},
		Implementation: registry.WorkerImplementation{Kind: registry.ImplementationEmbeddedWorker, DisplayHint: string(id)},
		Capabilities: registry.WorkerCapabilities{CanGetWorker: true, CanStopWorker: true, CanStop: true,
			CanAcceptInput: true, CanStreamEvents: true, CanReadBoundedTranscript: true},
		Diagnostics: []registry.Diagnostic{},
	}
}

// HostID returns the Source's one host.
func (s *Source) HostID() registry.HostID { return s.host }

// Add adds or replaces Worker id, made by NewWorker, with label.
func (s *Source) Add(id registry.WorkerID, label string) {
	w := NewWorker(s.id, s.host, id)
	w.Label = label
	s.Put(w)
}

// Put adds or replaces w exactly as given (ids included).
func (s *Source) Put(w registry.Worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workers[w.ID] = w
}

// Remove removes Worker id.
func (s *Source) Remove(id registry.WorkerID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.workers, id)
}

// Hide makes the Source's own scoping hide Worker id: Worker answers
// worker_not_visible for it (lists still return it).
func (s *Source) Hide(id registry.WorkerID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hidden[id] = true
}

// SetDiagnostics sets the diagnostics of every Workers page.
func (s *Source) SetDiagnostics(ds ...registry.Diagnostic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.diags = ds
}

// SetHostDiagnostics sets the diagnostics Hosts returns.
func (s *Source) SetHostDiagnostics(ds ...registry.Diagnostic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostDiags = ds
}

// SetVersion sets the Version of every Workers page ("" for none).
func (s *Source) SetVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = v
}

// SetLookupVersion sets the version of every lookup by id ("" for none, the
// default). The double keeps the promise only as far as its caller does: a
// test that changes a Worker without changing the version sees the old one
// from a cache, which is what it is for.
func (s *Source) SetLookupVersion(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookup = v
}

// SetCapabilities sets the capabilities the summary and host claim.
func (s *Source) SetCapabilities(c registry.Capabilities) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capabilities = c
}

// SetProfiles sets what Profiles returns.
func (s *Source) SetProfiles(ps ...registry.Profile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles = ps
}

// IgnoreAfter makes Workers misbehave: it ignores WorkerQuery.After and
// always answers from the first Worker, saying More when more exist.
func (s *Source) IgnoreAfter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreAfter = true
}

// FailWith makes the methods named (every method when none is named)
// return err; a nil err clears the failure.
func (s *Source) FailWith(err error, methods ...Method) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(methods) == 0 {
		s.failAll = err
		clear(s.failures)
		return
	}
	for _, m := range methods {
		if err == nil {
			delete(s.failures, m)
		} else {
			s.failures[m] = err
		}
	}
}

// SetHook sets a function that runs first in every call; a non-nil error
// it returns is the call's error. It may block or panic, to test how the
// registry copes.
func (s *Source) SetHook(hook func(ctx context.Context, m Method) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// BlockForever makes the methods named (every method when none is named)
// block, ignoring their context, as a hung Runtime would, until release is
// called or the test ends. The blocked calls then return
// runtime_unavailable. release may be called more than once.
func (s *Source) BlockForever(tb testing.TB, methods ...Method) (release func()) {
	tb.Helper()
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	tb.Cleanup(release)
	s.SetHook(func(_ context.Context, m Method) error {
		if len(methods) == 0 || slices.Contains(methods, m) {
			<-ch
			return registry.RuntimeUnavailable(s.id, "", nil)
		}
		return nil
	})
	return release
}

// Calls returns what the operations routed, in order, as
// "method:worker_id:detail" lines.
func (s *Source) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// enter runs the hook and the failure injection for m.
func (s *Source) enter(ctx context.Context, m Method) error {
	s.mu.Lock()
	hook, err := s.hook, s.failAll
	if e, ok := s.failures[m]; ok {
		err = e
	}
	s.mu.Unlock()
	if hook != nil {
		if herr := hook(ctx, m); herr != nil {
			return herr
		}
	}
	return err
}

// RuntimeID returns the Source's runtime_id.
func (s *Source) RuntimeID() registry.RuntimeID { return s.id }

// Summary projects the double: available, one host, the claimed
// capabilities.
func (s *Source) Summary(ctx context.Context) (registry.RuntimeSummary, error) {
	if err := s.enter(ctx, MethodSummary); err != nil {
		return registry.RuntimeSummary{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return registry.RuntimeSummary{
		ID: s.id, Label: "Test " + string(s.id), Kind: "test", Status: registry.Available,
		HostIDs: []registry.HostID{s.host},
		Source: registry.SourceInfo{Kind: registry.SourceEmbeddedWorkerRuntime, Status: registry.SourceActive,
			IdentityAuthority: registry.IdentityAuthorityProjection, Note: "test double"},
		Capabilities: s.capabilities,
		Diagnostics:  []registry.Diagnostic{},
	}, nil
}

// Hosts returns the one host and the host diagnostics.
func (s *Source) Hosts(ctx context.Context) ([]registry.Host, []registry.Diagnostic, error) {
	if err := s.enter(ctx, MethodHosts); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return []registry.Host{{
		ID: s.host, RuntimeID: s.id, Kind: "test-host", Label: "Test host", Status: registry.Available,
		Capabilities: s.capabilities, ObservedAt: ObservedAt, Diagnostics: []registry.Diagnostic{},
	}}, slices.Clone(s.hostDiags), nil
}

// Workers returns one page in ascending id order.
func (s *Source) Workers(ctx context.Context, q registry.WorkerQuery) (registry.WorkerPage, error) {
	if err := s.enter(ctx, MethodWorkers); err != nil {
		return registry.WorkerPage{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	page := registry.WorkerPage{Diagnostics: slices.Clone(s.diags), Version: s.version}
	for _, id := range slices.Sorted(maps.Keys(s.workers)) {
		w := s.workers[id]
		if (!s.ignoreAfter && id <= q.After) || (q.HostID != "" && q.HostID != w.HostID) {
			continue
		}
		if len(page.Workers) == q.Limit {
			page.More = true
			break
		}
		page.Workers = append(page.Workers, w)
	}
	return page, nil
}

// Worker returns Worker id: unknown_worker when there is none,
// worker_not_visible when Hide hid it.
func (s *Source) Worker(ctx context.Context, id registry.WorkerID) (registry.Worker, error) {
	if err := s.enter(ctx, MethodWorker); err != nil {
		return registry.Worker{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := registry.WorkerRef{RuntimeID: s.id, WorkerID: id}
	w, ok := s.workers[id]
	switch {
	case !ok:
		return registry.Worker{}, registry.UnknownWorker(ref)
	case s.hidden[id]:
		return registry.Worker{}, registry.WorkerNotVisible(ref)
	}
	return w, nil
}

// VersionedWorker is Worker plus the version SetLookupVersion set.
func (s *Source) VersionedWorker(ctx context.Context, id registry.WorkerID) (registry.Worker, string, error) {
	w, err := s.Worker(ctx, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return w, s.lookup, err
}

func (s *Source) record(call string) {
	s.calls = append(s.calls, call)
}

func (s *Source) createWorker(ctx context.Context, req registry.CreateWorkerRequest) (registry.Worker, error) {
	if err := s.enter(ctx, MethodCreateWorker); err != nil {
		return registry.Worker{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created++
	id := registry.WorkerID("created-" + strconv.Itoa(s.created))
	w := NewWorker(s.id, s.host, id)
	w.State, w.Status = registry.WorkerStarting, "starting"
	if req.WorkerName != "" {
		w.Label = req.WorkerName
	}
	s.workers[id] = w
	s.record("create:" + string(id) + ":" + req.Profile)
	s.publish(registry.Event{Kind: registry.EventWorkerUpserted, Ref: w.Ref(), Worker: w})
	return w, nil
}

func (s *Source) sendInput(ctx context.Context, id registry.WorkerID, in registry.WorkerInput) (registry.InputAck, error) {
	if err := s.enter(ctx, MethodSendInput); err != nil {
		return registry.InputAck{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := registry.WorkerRef{RuntimeID: s.id, WorkerID: id}
	if _, ok := s.workers[id]; !ok {
		return registry.InputAck{}, registry.UnknownWorker(ref)
	}
	entries := s.transcripts[id]
	e := registry.TranscriptEntry{Sequence: int64(len(entries) + 1), Role: string(in.Kind), Content: in.Content, At: ObservedAt}
	s.transcripts[id] = append(entries, e)
	s.record("input:" + string(id) + ":" + in.Content)
	s.publish(registry.Event{Kind: registry.EventTranscriptAppended, Ref: ref, Entry: e})
	return registry.InputAck{Ref: ref, Accepted: true, Sequence: e.Sequence}, nil
}

func (s *Source) stopWorker(ctx context.Context, id registry.WorkerID, mode registry.StopMode) (registry.StopAck, error) {
	if err := s.enter(ctx, MethodStopWorker); err != nil {
		return registry.StopAck{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := registry.WorkerRef{RuntimeID: s.id, WorkerID: id}
	w, ok := s.workers[id]
	if !ok {
		return registry.StopAck{}, registry.UnknownWorker(ref)
	}
	w.State, w.Status = registry.WorkerStopping, "stopping"
	s.workers[id] = w
	s.record("stop:" + string(id) + ":" + string(mode))
	s.publish(registry.Event{Kind: registry.EventWorkerUpserted, Ref: ref, Worker: w})
	return registry.StopAck{Ref: ref, Mode: mode, State: w.State, Status: w.Status}, nil
}

func (s *Source) transcript(ctx context.Context, id registry.WorkerID, q registry.TranscriptQuery) (registry.TranscriptPage, error) {
	if err := s.enter(ctx, MethodTranscript); err != nil {
		return registry.TranscriptPage{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := registry.WorkerRef{RuntimeID: s.id, WorkerID: id}
	if _, ok := s.workers[id]; !ok {
		return registry.TranscriptPage{}, registry.UnknownWorker(ref)
	}
	entries := s.transcripts[id]
	page := registry.TranscriptPage{Ref: ref, Items: []registry.TranscriptEntry{}}
	if len(entries) > 0 {
		page.FirstSequence, page.LastSequence = entries[0].Sequence, entries[len(entries)-1].Sequence
	}
	for _, e := range entries {
		if e.Sequence <= q.After {
			continue
		}
		if len(page.Items) == q.Limit {
			page.NextAfter = page.Items[len(page.Items)-1].Sequence
			break
		}
		page.Items = append(page.Items, e)
	}
	return page, nil
}

func (s *Source) listProfiles(ctx context.Context) ([]registry.Profile, error) {
	if err := s.enter(ctx, MethodProfiles); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.profiles), nil
}

// Hostile texts: a hostile Source puts them in its errors; none of them may
// reach a browser.
const (
	HostileURL     = "http://10.9.8.7:4444/internal/admin"
	HostileToken   = "sk-HOSTILE-TOKEN-0123456789"
	HostileRuntime = "other-runtime-id"
)

// HostileError returns an *registry.Error of code whose every text and id
// carries a URL, a token and another Runtime's id: its Detail, Field,
// runtime, worker and host ids, and its Cause.
func HostileError(code registry.Code) error {
	leak := HostileURL + "?token=" + HostileToken + "&runtime=" + HostileRuntime
	return &registry.Error{
		Code:      code,
		RuntimeID: HostileRuntime,
		WorkerID:  registry.WorkerID(HostileToken),
		HostID:    registry.HostID(HostileRuntime),
		Field:     leak,
		Detail:    "upstream " + leak + " failed",
		Cause:     errors.New("dial " + leak),
	}
}

// Leaks reports whether text holds any hostile text.
func Leaks(text string) bool {
	for _, h := range []string{HostileURL, "10.9.8.7", HostileToken, HostileRuntime} {
		if strings.Contains(text, h) {
			return true
		}
	}
	return false
}
