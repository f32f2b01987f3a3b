package embedded

import (
	"context"
	"errors"

	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// Events opens the Runtime's event feed after q.Cursor (for one worker when
// q.WorkerID is set). The Runtime replays retained events after a known
// cursor, answers an unknown or trimmed one with one resync event, and
// cuts off a subscriber that falls behind (the stream then ends and the
// client resumes from its last cursor). Errors: unknown_worker,
// runtime_unavailable.
func (s *Source) Events(ctx context.Context, q registry.EventQuery) (registry.EventStream, error) {
	sub, err := s.rt.Subscribe(ctx, workerruntime.SubscribeRequest{Cursor: q.Cursor, WorkerID: string(q.WorkerID)})
	if err != nil {
		return nil, mapError(err, q.WorkerID)
	}
	return &eventStream{s: s, sub: sub}, nil
}

// eventStream adapts a workerruntime.Subscription to registry.EventStream.
type eventStream struct {
	s   *Source
	sub workerruntime.Subscription
}

// Next returns the next event, projected. It returns ctx.Err() when ctx
// ends and registry.ErrStreamEnded when the Runtime cut the subscription
// (it lagged, or the Runtime is closing) or it was closed.
func (es *eventStream) Next(ctx context.Context) (registry.Event, error) {
	for {
		ev, err := es.sub.Next(ctx)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return registry.Event{}, ctx.Err()
		case errors.Is(err, workerruntime.ErrLagged), errors.Is(err, workerruntime.ErrClosed):
			return registry.Event{}, registry.ErrStreamEnded
		default:
			return registry.Event{}, mapError(err, "")
		}
		out, ok := es.s.event(ev)
		if ok {
			return out, nil
		}
	}
}

// Close ends the subscription.
func (es *eventStream) Close() { es.sub.Close() }

// event projects one Runtime event; ok is false for a kind this source
// does not know (skipped rather than mis-sent).
func (s *Source) event(ev workerruntime.Event) (registry.Event, bool) {
	out := registry.Event{Cursor: ev.Cursor, Kind: registry.EventKind(ev.Kind), Ref: ref(registry.WorkerID(ev.WorkerID))}
	switch ev.Kind {
	case workerruntime.EventWorkerUpserted:
		if ev.Worker == nil {
			return registry.Event{}, false
		}
		out.Worker = s.project(*ev.Worker)
	case workerruntime.EventTranscriptAppended:
		if ev.Entry == nil {
			return registry.Event{}, false
		}
		out.Entry = entry(*ev.Entry)
	case workerruntime.EventWorkerRemoved:
	case workerruntime.EventResync:
		out = registry.Event{Kind: registry.EventResync, Reason: ev.Reason}
	default:
		return registry.Event{}, false
	}
	return out, true
}
