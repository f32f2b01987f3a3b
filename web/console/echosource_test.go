package console_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// echoSource is an in-memory Runtime whose workers answer each input line
// with "echo: <line>", with every optional operation (create with
// idempotency, input, stop, transcript, profiles, resumable events). It lets
// the browser test drive the console's create, input and stop views through
// the real handlers without the embedded Worker Runtime.
type echoSource struct {
	id registry.RuntimeID

	mu          sync.Mutex
	workers     []registry.Worker // ascending id
	transcripts map[registry.WorkerID][]registry.TranscriptEntry
	keys        map[string]echoKeyed
	events      []registry.Event // every event; cursor "c<index+1>"
	subs        map[*echoStream]struct{}
}

type echoKeyed struct {
	body string
	id   registry.WorkerID
}

var (
	_ registry.Source           = (*echoSource)(nil)
	_ registry.WorkerCreator    = (*echoSource)(nil)
	_ registry.InputSender      = (*echoSource)(nil)
	_ registry.WorkerStopper    = (*echoSource)(nil)
	_ registry.TranscriptReader = (*echoSource)(nil)
	_ registry.ProfileLister    = (*echoSource)(nil)
	_ registry.EventStreamer    = (*echoSource)(nil)
)

func newEchoSource(id registry.RuntimeID) *echoSource {
	return &echoSource{id: id, transcripts: map[registry.WorkerID][]registry.TranscriptEntry{},
		keys: map[string]echoKeyed{}, subs: map[*echoStream]struct{}{}}
}

func (s *echoSource) RuntimeID() registry.RuntimeID { return s.id }

func (s *echoSource) summary() registry.RuntimeSummary {
	limit := 50
	return registry.RuntimeSummary{
		ID: s.id, Label: "Echo test runtime", Kind: "echo_test", Status: registry.Available,
		HostIDs: []registry.HostID{registry.HostID("host-" + s.id)},
		Source: registry.SourceInfo{Kind: registry.SourceEmbeddedWorkerRuntime, Status: registry.SourceActive,
			IdentityAuthority: registry.IdentityAuthorityProjection, Note: "browser test double"},
		Capabilities: registry.Capabilities{CanListHosts: true, CanListWorkers: true, CanGetWorker: true, CanSpawnWorker: true,
			CanStopWorker: true, CanAcceptInput: true, CanStreamEvents: true, CanReadBoundedTranscript: true,
			LocalPodInspection: registry.InspectionUnavailable, WorkspaceScope: registry.WorkspaceScopeCurrent,
			MaxWorkers: &limit, OS: "linux", Arch: "amd64"},
	}
}

func (s *echoSource) Summary(context.Context) (registry.RuntimeSummary, error) {
	return s.summary(), nil
}

func (s *echoSource) Hosts(context.Context) ([]registry.Host, []registry.Diagnostic, error) {
	sum := s.summary()
	return []registry.Host{{ID: sum.HostIDs[0], RuntimeID: s.id, Kind: "echo-host", Label: "echo host",
		Status: registry.Available, Capabilities: sum.Capabilities, ObservedAt: time.Now().UTC()}}, nil, nil
}

func (s *echoSource) Workers(_ context.Context, q registry.WorkerQuery) (registry.WorkerPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var page registry.WorkerPage
	for _, w := range s.workers {
		if w.ID <= q.After || (q.HostID != "" && q.HostID != w.HostID) {
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

func (s *echoSource) find(id registry.WorkerID) int {
	return slices.IndexFunc(s.workers, func(w registry.Worker) bool { return w.ID == id })
}

func (s *echoSource) Worker(_ context.Context, id registry.WorkerID) (registry.Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.find(id); i >= 0 {
		return s.workers[i], nil
	}
	return registry.Worker{}, registry.UnknownWorker(registry.WorkerRef{RuntimeID: s.id, WorkerID: id})
}

func (s *echoSource) Profiles(context.Context) ([]registry.Profile, error) {
	return []registry.Profile{
		{Name: "echo", Label: "Echo", Description: "Repeats every input line"},
		{Name: "quiet", Label: "Quiet", Description: "Says nothing"},
	}, nil
}

func (s *echoSource) CreateWorker(_ context.Context, req registry.CreateWorkerRequest) (registry.Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body := fmt.Sprintf("%+v", registry.CreateWorkerRequest{Intent: req.Intent, Profile: req.Profile, WorkerName: req.WorkerName})
	if req.IdempotencyKey != "" {
		if k, ok := s.keys[req.IdempotencyKey]; ok {
			if k.body != body {
				return registry.Worker{}, registry.IdempotencyKeyReused(s.id)
			}
			return s.workers[s.find(k.id)], nil
		}
	}
	profile := req.Profile
	if profile == "" {
		profile = "echo"
	}
	if profile != "echo" && profile != "quiet" {
		return registry.Worker{}, registry.InvalidRequest("profile", "No such profile.")
	}
	label := req.WorkerName
	if label == "" {
		label = profile + " worker"
	}
	now := time.Now().UTC()
	w := registry.Worker{
		ID: registry.WorkerID(fmt.Sprintf("echo-%04d", len(s.workers)+1)), RuntimeID: s.id, HostID: registry.HostID("host-" + s.id),
		Label: label, Profile: &profile, State: registry.WorkerActive, Status: "active:running",
		Workspace:      registry.WorkerWorkspace{Visibility: "current_workspace", Identity: "runtime_workspace"},
		Implementation: registry.WorkerImplementation{Kind: registry.ImplementationEmbeddedWorker, DisplayHint: "echo"},
		Capabilities: registry.WorkerCapabilities{CanGetWorker: true, CanStopWorker: true, CanStop: true, CanAcceptInput: true,
			CanStreamEvents: true, CanReadBoundedTranscript: true},
		LastSeenAt: &now,
	}
	s.workers = append(s.workers, w)
	if req.IdempotencyKey != "" {
		s.keys[req.IdempotencyKey] = echoKeyed{body: body, id: w.ID}
	}
	s.publish(registry.Event{Kind: registry.EventWorkerUpserted, Ref: w.Ref(), Worker: w})
	return w, nil
}

func (s *echoSource) SendInput(_ context.Context, id registry.WorkerID, in registry.WorkerInput) (registry.InputAck, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := registry.WorkerRef{RuntimeID: s.id, WorkerID: id}
	i := s.find(id)
	if i < 0 {
		return registry.InputAck{}, registry.UnknownWorker(ref)
	}
	if s.workers[i].State != registry.WorkerActive {
		return registry.InputAck{}, registry.WorkerNotRunning(ref)
	}
	seq := s.appendEntry(id, string(in.Kind), in.Content)
	if s.workers[i].Profile != nil && *s.workers[i].Profile == "echo" {
		for line := range strings.Lines(in.Content) {
			s.appendEntry(id, registry.RoleAssistant, "echo: "+strings.TrimRight(line, "\n"))
		}
	}
	return registry.InputAck{Ref: ref, Accepted: true, Sequence: seq}, nil
}

func (s *echoSource) appendEntry(id registry.WorkerID, role, content string) int64 {
	t := s.transcripts[id]
	e := registry.TranscriptEntry{Sequence: int64(len(t) + 1), Role: role, Content: content, At: time.Now().UTC()}
	s.transcripts[id] = append(t, e)
	s.publish(registry.Event{Kind: registry.EventTranscriptAppended, Ref: registry.WorkerRef{RuntimeID: s.id, WorkerID: id}, Entry: e})
	return e.Sequence
}

func (s *echoSource) StopWorker(_ context.Context, id registry.WorkerID, mode registry.StopMode) (registry.StopAck, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := registry.WorkerRef{RuntimeID: s.id, WorkerID: id}
	i := s.find(id)
	if i < 0 {
		return registry.StopAck{}, registry.UnknownWorker(ref)
	}
	w := &s.workers[i]
	if w.State != registry.WorkerStopped {
		w.State, w.Status = registry.WorkerStopped, "stopped:requested"
		w.Capabilities.CanAcceptInput = false
		s.publish(registry.Event{Kind: registry.EventWorkerUpserted, Ref: ref, Worker: *w})
	}
	return registry.StopAck{Ref: ref, Mode: mode, State: w.State, Status: w.Status}, nil
}

func (s *echoSource) Transcript(_ context.Context, id registry.WorkerID, q registry.TranscriptQuery) (registry.TranscriptPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := registry.WorkerRef{RuntimeID: s.id, WorkerID: id}
	if s.find(id) < 0 {
		return registry.TranscriptPage{}, registry.UnknownWorker(ref)
	}
	t := s.transcripts[id]
	page := registry.TranscriptPage{Ref: ref}
	if len(t) > 0 {
		page.FirstSequence, page.LastSequence = 1, int64(len(t))
	}
	for _, e := range t {
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

// publish records an event and hands it to every subscriber; a subscriber
// whose buffer is full is cut off (it resumes from its cursor). Callers hold mu.
func (s *echoSource) publish(e registry.Event) {
	e.Cursor = "c" + strconv.Itoa(len(s.events)+1)
	s.events = append(s.events, e)
	for sub := range s.subs {
		if !sub.wants(e) {
			continue
		}
		select {
		case sub.ch <- e:
		default:
			delete(s.subs, sub)
			close(sub.ch)
		}
	}
}

func (s *echoSource) Events(_ context.Context, q registry.EventQuery) (registry.EventStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.WorkerID != "" && s.find(q.WorkerID) < 0 {
		return nil, registry.UnknownWorker(registry.WorkerRef{RuntimeID: s.id, WorkerID: q.WorkerID})
	}
	sub := &echoStream{src: s, worker: q.WorkerID, ch: make(chan registry.Event, 1024)}
	if q.Cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(q.Cursor, "c"))
		if err != nil || !strings.HasPrefix(q.Cursor, "c") || n < 0 || n > len(s.events) {
			sub.ch <- registry.Event{Kind: registry.EventResync, Reason: registry.ResyncCursorUnknown}
		} else {
			for _, e := range s.events[n:] {
				if sub.wants(e) {
					sub.ch <- e
				}
			}
		}
	}
	s.subs[sub] = struct{}{}
	return sub, nil
}

// echoStream is one subscriber of an echoSource.
type echoStream struct {
	src    *echoSource
	worker registry.WorkerID
	ch     chan registry.Event
	once   sync.Once
}

func (st *echoStream) wants(e registry.Event) bool {
	return st.worker == "" || e.Ref.WorkerID == st.worker
}

func (st *echoStream) Next(ctx context.Context) (registry.Event, error) {
	select {
	case e, ok := <-st.ch:
		if !ok {
			return registry.Event{}, registry.ErrStreamEnded
		}
		return e, nil
	case <-ctx.Done():
		return registry.Event{}, ctx.Err()
	}
}

func (st *echoStream) Close() {
	st.once.Do(func() {
		st.src.mu.Lock()
		defer st.src.mu.Unlock()
		if _, ok := st.src.subs[st]; ok {
			delete(st.src.subs, st)
			close(st.ch)
		}
	})
}
