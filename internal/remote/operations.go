package remote

import (
	"context"
	"errors"
	"net/http"

	gen "github.com/workspace-backend/runtime-registry/internal/gen/workerruntimeapi"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

func (s *Source) badResponse() error {
	s.recordFailure(faultBadResponse)
	return s.unavailable(faultBadResponse)
}

// Workers answers one page of the Runtime's Workers (ascending id). While
// the upstream event stream is connected and nothing has moved since, the
// page is answered from memory, with a Version; otherwise it is read from
// the Runtime (listcache.go says why a kept page is stale at most by the
// event stream's delivery latency).
func (s *Source) Workers(ctx context.Context, q registry.WorkerQuery) (registry.WorkerPage, error) {
	if q.HostID != "" && q.HostID != s.hostID {
		return registry.WorkerPage{Workers: []registry.Worker{}}, nil
	}
	limit := q.Limit
	if limit < 1 || limit > 200 {
		limit = 200
	}
	if f, down := s.down(); down {
		return registry.WorkerPage{}, s.unavailable(f)
	}
	key := listKey{after: string(q.After), limit: limit}
	pos := s.relay.pos.Load()
	if cacheable(pos) {
		if page, ok := s.lists.get(key, pos); ok {
			return page, nil
		}
	}
	params := &gen.ListWorkersParams{Limit: &limit}
	if q.After != "" {
		after := string(q.After)
		params.Cursor = &after
	}
	var list gen.WorkerList
	if err := s.do(ctx, false, "", http.StatusOK, &list, func(ctx context.Context) (*http.Response, error) {
		return s.client.ListWorkers(ctx, params)
	}); err != nil {
		return registry.WorkerPage{}, err
	}
	if len(list.Items) > limit {
		return registry.WorkerPage{}, s.badResponse()
	}
	page := registry.WorkerPage{Workers: make([]registry.Worker, 0, len(list.Items)), More: list.NextCursor != nil}
	for _, w := range list.Items {
		rw, ok := s.workerIn(w)
		if !ok {
			return registry.WorkerPage{}, s.badResponse()
		}
		page.Workers = append(page.Workers, rw)
	}
	if cacheable(pos) && s.relay.pos.Load() == pos {
		// Nothing moved while the request was out: keep it (listcache.go).
		page.Version = s.versionOf(pos)
		s.lists.put(key, pos, page)
	}
	return page, nil
}

// Worker answers one Worker: unknown_worker when the Runtime has none.
func (s *Source) Worker(ctx context.Context, id registry.WorkerID) (registry.Worker, error) {
	var w gen.Worker
	if err := s.do(ctx, false, id, http.StatusOK, &w, func(ctx context.Context) (*http.Response, error) {
		return s.client.GetWorker(ctx, string(id))
	}); err != nil {
		return registry.Worker{}, err
	}
	rw, ok := s.workerIn(w)
	if !ok || rw.ID != id {
		return registry.Worker{}, s.badResponse()
	}
	return rw, nil
}

// CreateWorker creates a Worker. The Idempotency-Key goes to the Runtime,
// which enforces it; without one from the browser the backend makes one,
// and a create whose answer was lost (a timeout, a reset) is sent once
// more with the same key, so it never makes two Workers.
func (s *Source) CreateWorker(ctx context.Context, req registry.CreateWorkerRequest) (registry.Worker, error) {
	key := req.IdempotencyKey
	if key == "" {
		key = newIdempotencyKey()
	}
	params := &gen.CreateWorkerParams{IdempotencyKey: &key}
	body := createOut(req)
	var (
		w   gen.Worker
		err error
	)
	for attempt := 0; attempt < 2; attempt++ {
		err = s.do(ctx, false, "", http.StatusAccepted, &w, func(ctx context.Context) (*http.Response, error) {
			return s.client.CreateWorker(ctx, params, body)
		})
		var fe *faultError
		if err == nil || ctx.Err() != nil || !errors.As(err, &fe) || (fe.f != faultTimeout && fe.f != faultUnreachable) {
			break
		}
	}
	// Answered or not, the Runtime may have committed it: kept pages go.
	s.relay.bump()
	if err != nil {
		return registry.Worker{}, err
	}
	rw, ok := s.workerIn(w)
	if !ok {
		return registry.Worker{}, s.badResponse()
	}
	return rw, nil
}

// SendInput queues one input for a Worker.
func (s *Source) SendInput(ctx context.Context, id registry.WorkerID, in registry.WorkerInput) (registry.InputAck, error) {
	var ack gen.WorkerInputAccepted
	body := gen.WorkerInputRequest{Kind: gen.WorkerInputKind(in.Kind), Content: in.Content}
	err := s.do(ctx, false, id, http.StatusAccepted, &ack, func(ctx context.Context) (*http.Response, error) {
		return s.client.SendWorkerInput(ctx, string(id), body)
	})
	s.relay.bump() // an input moves the worker's updated_at: kept pages go
	if err != nil {
		return registry.InputAck{}, err
	}
	if ack.Sequence < 1 {
		return registry.InputAck{}, s.badResponse()
	}
	return registry.InputAck{Ref: registry.WorkerRef{RuntimeID: s.cfg.ID, WorkerID: id}, Accepted: ack.Accepted, Sequence: ack.Sequence}, nil
}

// StopWorker stops a Worker (idempotent on the Runtime).
func (s *Source) StopWorker(ctx context.Context, id registry.WorkerID, mode registry.StopMode) (registry.StopAck, error) {
	var ack gen.StopWorkerAccepted
	body := gen.StopWorkerRequest{Mode: gen.StopMode(mode)}
	err := s.do(ctx, false, id, http.StatusAccepted, &ack, func(ctx context.Context) (*http.Response, error) {
		return s.client.StopWorker(ctx, string(id), body)
	})
	s.relay.bump() // kept pages go
	if err != nil {
		return registry.StopAck{}, err
	}
	state, ok := workerState(ack.State)
	if !ok || !statusRE.MatchString(ack.Status) {
		return registry.StopAck{}, s.badResponse()
	}
	return registry.StopAck{Ref: registry.WorkerRef{RuntimeID: s.cfg.ID, WorkerID: id}, Mode: mode, State: state, Status: ack.Status}, nil
}

// Transcript answers one page of a Worker's transcript.
func (s *Source) Transcript(ctx context.Context, id registry.WorkerID, q registry.TranscriptQuery) (registry.TranscriptPage, error) {
	params := &gen.GetWorkerTranscriptParams{}
	if q.After > 0 {
		params.After = &q.After
	}
	if q.Limit > 0 {
		params.Limit = &q.Limit
	}
	var page gen.TranscriptPage
	if err := s.do(ctx, false, id, http.StatusOK, &page, func(ctx context.Context) (*http.Response, error) {
		return s.client.GetWorkerTranscript(ctx, string(id), params)
	}); err != nil {
		return registry.TranscriptPage{}, err
	}
	out, ok := transcriptIn(registry.WorkerRef{RuntimeID: s.cfg.ID, WorkerID: id}, page)
	if !ok || page.WorkerId != string(id) {
		return registry.TranscriptPage{}, s.badResponse()
	}
	return out, nil
}

// Profiles lists the Runtime's profiles, the default first (a fresh read of
// GET /v1/runtime, which also refreshes the summary).
func (s *Source) Profiles(ctx context.Context) ([]registry.Profile, error) {
	info, err := s.fetchInfo(ctx, false)
	if err != nil {
		return nil, err
	}
	return profilesIn(info), nil
}
