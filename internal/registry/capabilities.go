package registry

// Capability flags are derived, not trusted: a flag that says a Runtime or
// Worker can do something is kept only when its Source implements the
// operation behind it. A Source may report less than it implements, never
// more.

// operations is the set of optional operations a Source implements.
type operations struct {
	create, input, stop, transcript, events bool
}

func operationsOf(s Source) operations {
	_, create := s.(WorkerCreator)
	_, input := s.(InputSender)
	_, stop := s.(WorkerStopper)
	_, transcript := s.(TranscriptReader)
	_, events := s.(EventStreamer)
	return operations{create: create, input: input, stop: stop, transcript: transcript, events: events}
}

// clampCapabilities clears the Runtime or host flags s cannot back.
func clampCapabilities(s Source, c Capabilities) Capabilities {
	ops := operationsOf(s)
	c.CanSpawnWorker = c.CanSpawnWorker && ops.create
	c.CanAcceptInput = c.CanAcceptInput && ops.input
	c.CanStopWorker = c.CanStopWorker && ops.stop
	c.CanReadBoundedTranscript = c.CanReadBoundedTranscript && ops.transcript
	c.CanStreamEvents = c.CanStreamEvents && ops.events
	return c
}

// clampWorkerCapabilities clears the Worker flags s cannot back and keeps
// can_stop equal to can_stop_worker.
func clampWorkerCapabilities(ops operations, c WorkerCapabilities) WorkerCapabilities {
	c.CanStopWorker = (c.CanStopWorker || c.CanStop) && ops.stop
	c.CanStop = c.CanStopWorker
	c.CanAcceptInput = c.CanAcceptInput && ops.input
	c.CanReadBoundedTranscript = c.CanReadBoundedTranscript && ops.transcript
	c.CanStreamEvents = c.CanStreamEvents && ops.events
	// No Source can route a follow-up spawn yet.
	c.CanSpawnFollowup = false
	return c
}

// clampWorker clamps w's flags and forces its runtime_id to s's: a Source
// cannot present a Worker as another Runtime's.
func clampWorker(s Source, w Worker) Worker {
	w.Capabilities = clampWorkerCapabilities(operationsOf(s), w.Capabilities)
	w.RuntimeID = s.RuntimeID()
	return w
}

// clampWorkers returns ws with every Worker's flags clamped and runtime_id
// forced to s's. Pages are shared read-only with their Source, so ws is
// copied only when something actually has to change.
func clampWorkers(s Source, ws []Worker) []Worker {
	ops := operationsOf(s)
	id := s.RuntimeID()
	for i := range ws {
		if ws[i].RuntimeID != id || clampWorkerCapabilities(ops, ws[i].Capabilities) != ws[i].Capabilities {
			out := make([]Worker, len(ws))
			copy(out, ws)
			for j := i; j < len(out); j++ {
				out[j].Capabilities = clampWorkerCapabilities(ops, out[j].Capabilities)
				out[j].RuntimeID = id
			}
			return out
		}
	}
	return ws
}

// clampHosts returns a copy of hs with flags clamped and runtime_id forced
// to s's.
func clampHosts(s Source, hs []Host) []Host {
	out := make([]Host, len(hs))
	for i, h := range hs {
		h.Capabilities = clampCapabilities(s, h.Capabilities)
		h.RuntimeID = s.RuntimeID()
		out[i] = h
	}
	return out
}

// clampSummary clamps the summary's flags and forces its runtime_id to s's.
func clampSummary(s Source, sum RuntimeSummary) RuntimeSummary {
	sum.Capabilities = clampCapabilities(s, sum.Capabilities)
	sum.ID = s.RuntimeID()
	if sum.Diagnostics == nil {
		sum.Diagnostics = []Diagnostic{}
	}
	return sum
}
