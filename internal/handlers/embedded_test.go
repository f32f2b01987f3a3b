package handlers_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/embedded"
	"github.com/workspace-backend/runtime-registry/internal/embedded/embeddedtest"
	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

const embeddedRT = "/api/runtimes/" + string(embedded.RuntimeID)

// embeddedServer is the real echo server over a real embedded Runtime,
// also listening on loopback for the event streams.
type embeddedServer struct {
	*testServer
	base     string
	src      *embedded.Source
	shutdown chan struct{}
}

func newEmbeddedServer(t *testing.T, eopts embeddedtest.Options, sopts handlers.ServerOptions) *embeddedServer {
	t.Helper()
	src, _ := embeddedtest.Open(t, eopts)
	shutdown := make(chan struct{})
	if sopts.Shutdown == nil {
		sopts.Shutdown = shutdown
	}
	s := newTestServerWith(t, registry.Options{WorkspaceID: "local:test"}, sopts, src)
	hs := httptest.NewServer(s.handler)
	// Cleanups run last-in first-out: streams end, the listener closes,
	// then the Runtime closes (registered by embeddedtest.Open before).
	t.Cleanup(hs.Close)
	t.Cleanup(func() {
		select {
		case <-shutdown:
		default:
			close(shutdown)
		}
	})
	return &embeddedServer{testServer: s, base: hs.URL, src: src, shutdown: shutdown}
}

func (s *embeddedServer) create(body string, header ...string) gen.CreateWorkerAccepted {
	s.t.Helper()
	resp := s.do("POST", embeddedRT+"/workers", body, header...)
	if resp.Status != http.StatusAccepted {
		s.t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	var out gen.CreateWorkerAccepted
	resp.decode(s.t, &out)
	return out
}

func eventIDs(evs []sseEvent) []string {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	return ids
}

func TestEmbeddedWorkerThroughHTTP(t *testing.T) {
	s := newEmbeddedServer(t, embeddedtest.Options{MaxWorkers: 2}, handlers.ServerOptions{})

	var runtimes gen.RuntimeList
	s.do("GET", "/api/runtimes", "").decode(t, &runtimes)
	if len(runtimes.Items) != 1 || runtimes.Items[0].RuntimeId != string(embedded.RuntimeID) ||
		!runtimes.Items[0].Capabilities.CanSpawnWorker || runtimes.Items[0].Capabilities.MaxWorkers != 2 ||
		runtimes.Items[0].Source.Kind != gen.SourceKindEmbeddedWorkerRuntime {
		t.Errorf("runtimes %+v", runtimes.Items)
	}
	var profiles gen.ProfileList
	s.do("GET", embeddedRT+"/profiles", "").decode(t, &profiles)
	var names []string
	for _, p := range profiles.Items {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"echo", "quiet", "exits", "stubborn"}) || profiles.Items[0].Label != "Echo" {
		t.Errorf("profiles %+v", profiles.Items)
	}

	all := openSSE(t, s.base, embeddedRT+"/events")

	body := `{"intent":{"kind":"assistant","purpose":"talk"},"profile":"echo","worker_name":"Echo one"}`
	created := s.create(body, "Idempotency-Key", "key-1")
	id := created.WorkerId
	if created.RuntimeId != string(embedded.RuntimeID) || created.Worker.Label != "Echo one" ||
		(created.Worker.State != gen.WorkerStateStarting && created.Worker.State != gen.WorkerStateActive) {
		t.Errorf("created %+v", created)
	}
	// The same key with the same body answers the first worker again; with
	// another body it is 422.
	if again := s.create(body, "Idempotency-Key", "key-1"); again.WorkerId != id {
		t.Errorf("replayed create made %s, want %s", again.WorkerId, id)
	}
	p := s.do("POST", embeddedRT+"/workers", `{"intent":{"kind":"task"}}`, "Idempotency-Key", "key-1").problem(t)
	if p.Code != gen.ProblemCodeIdempotencyKeyReused || p.Status != 422 {
		t.Errorf("reused key: %+v", p)
	}
	all.until(upsertOf(id, "active"))

	worker := openSSE(t, s.base, embeddedRT+"/workers/"+id+"/events")
	resp := s.do("POST", embeddedRT+"/workers/"+id+"/input", `{"kind":"user","content":"hello"}`)
	var ack gen.WorkerInputAccepted
	resp.decode(t, &ack)
	if resp.Status != 202 || !ack.Accepted || ack.Sequence == nil || *ack.Sequence != 1 {
		t.Fatalf("input: %d %s", resp.Status, resp.Body)
	}
	seenWorker := worker.until(appendOf(id, "echo: hello"))
	seenAll := all.until(appendOf(id, "echo: hello"))
	for _, seen := range [][]sseEvent{seenWorker, seenAll} {
		if !slices.ContainsFunc(seen, appendOf(id, "hello")) {
			t.Errorf("the user's input was not streamed: %v", eventIDs(seen))
		}
	}

	var page gen.TranscriptPage
	s.do("GET", embeddedRT+"/workers/"+id+"/transcript?after=0&limit=10", "").decode(t, &page)
	if len(page.Items) != 2 || page.Items[0].Role != gen.TranscriptRoleUser || page.Items[0].Content != "hello" ||
		page.Items[1].Role != gen.TranscriptRoleAssistant || page.Items[1].Content != "echo: hello" ||
		page.FirstSequence != 1 || page.LastSequence != 2 || page.NextAfter != nil {
		t.Errorf("transcript %+v", page)
	}
	s.do("GET", embeddedRT+"/workers/"+id+"/transcript?after=1&limit=1", "").decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].Sequence != 2 {
		t.Errorf("transcript after 1: %+v", page)
	}

	// A second input, then resume the runtime stream after the first event
	// the stream gave: what followed arrives again, in order, with no
	// duplicate and nothing missing (Last-Event-ID, and ?cursor=).
	s.do("POST", embeddedRT+"/workers/"+id+"/input", `{"kind":"system","content":"second"}`)
	seenAll = append(seenAll, all.until(appendOf(id, "echo: second"))...)
	allIDs := eventIDs(seenAll)
	from := allIDs[0]
	for _, hdr := range [][]string{{"Last-Event-ID", from}, nil} {
		path := embeddedRT + "/events"
		if hdr == nil {
			path += "?cursor=" + from
		}
		resumed := openSSE(t, s.base, path, hdr...)
		got := eventIDs(resumed.until(appendOf(id, "echo: second")))
		if !slices.Equal(got, allIDs[1:]) {
			t.Errorf("resumed (%v) after %s:\n got %v\nwant %v", hdr, from, got, allIDs[1:])
		}
		resumed.Close()
	}
	// Last-Event-ID wins over ?cursor=, and an unknown cursor is a resync.
	resync := openSSE(t, s.base, embeddedRT+"/workers/"+id+"/events?cursor="+from, "Last-Event-ID", "zz-unknown")
	if ev := resync.next(); ev.Kind != "resync" || !strings.Contains(string(ev.Data), "cursor_unknown") || ev.ID != "" {
		t.Errorf("unknown cursor: %+v", ev)
	}
	resync.Close()

	// Capacity: max-workers 2.
	quiet := s.create(`{"intent":{"kind":"task"},"profile":"quiet"}`)
	if quiet.Worker.Profile == nil || *quiet.Worker.Profile != "quiet" {
		t.Errorf("quiet worker %+v", quiet.Worker)
	}
	p = s.do("POST", embeddedRT+"/workers", `{"intent":{"kind":"task"}}`).problem(t)
	if p.Code != gen.ProblemCodeRuntimeAtCapacity || p.Status != 409 {
		t.Errorf("third create: %+v", p)
	}
	p = s.do("POST", embeddedRT+"/workers", `{"intent":{"kind":"task"},"profile":"no-such"}`).problem(t)
	if p.Code != gen.ProblemCodeInvalidRequest || p.Field == nil || *p.Field != "profile" {
		t.Errorf("unknown profile: %+v", p)
	}

	// Stop: graceful, again, then force; all 202, and stopped stays stopped.
	for _, mode := range []string{"graceful", "graceful"} {
		var stop gen.StopWorkerAccepted
		resp := s.do("POST", embeddedRT+"/workers/"+id+"/stop", `{"mode":"`+mode+`"}`)
		resp.decode(t, &stop)
		if resp.Status != 202 || string(stop.Mode) != mode || (stop.State != gen.WorkerStateStopping && stop.State != gen.WorkerStateStopped) {
			t.Errorf("stop %s: %d %s", mode, resp.Status, resp.Body)
		}
	}
	worker.until(upsertOf(id, "stopped"))
	var stop gen.StopWorkerAccepted
	s.do("POST", embeddedRT+"/workers/"+id+"/stop", `{"mode":"force"}`).decode(t, &stop)
	if stop.State != gen.WorkerStateStopped || stop.Status == nil || *stop.Status != "stopped:requested" {
		t.Errorf("force after graceful: %+v", stop)
	}
	p = s.do("POST", embeddedRT+"/workers/"+id+"/input", `{"kind":"user","content":"late"}`).problem(t)
	if p.Code != gen.ProblemCodeWorkerNotRunning || p.Status != 409 || p.WorkerId == nil || *p.WorkerId != id {
		t.Errorf("input to a stopped worker: %+v", p)
	}
	var w gen.WorkerSummary
	s.do("GET", embeddedRT+"/workers/"+id, "").decode(t, &w)
	if w.State != gen.WorkerStateStopped || w.Capabilities.CanAcceptInput || w.Capabilities.CanStop || w.LastSeenAt == nil ||
		w.Implementation.Kind != gen.WorkerImplementationKindEmbeddedWorker || w.Implementation.DisplayHint != "Echo" {
		t.Errorf("stopped worker %+v", w)
	}
	// A force stop of the quiet worker, and the merged list shows both.
	s.do("POST", embeddedRT+"/workers/"+quiet.WorkerId+"/stop", `{"mode":"force"}`)
	all.until(upsertOf(quiet.WorkerId, "stopped"))
	var list gen.WorkerList
	s.do("GET", "/api/workers", "").decode(t, &list)
	if len(list.Items) != 2 || list.Items[0].WorkerId != id || list.Items[1].Status != "stopped:cancelled" {
		t.Errorf("workers %+v", list.Items)
	}
	// Now there is room again, once the Runtime has retired the stopped
	// workers (just after their stopped record is committed and streamed).
	var third gen.CreateWorkerAccepted
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		resp := s.do("POST", embeddedRT+"/workers", `{"intent":{"kind":"task"},"profile":"exits"}`)
		if resp.Status == http.StatusAccepted {
			resp.decode(t, &third)
			break
		}
		if p := resp.problem(t); p.Code != gen.ProblemCodeRuntimeAtCapacity || time.Now().After(deadline) {
			t.Fatalf("create after the stops: %+v", p)
		}
	}
	all.until(upsertOf(third.WorkerId, "stopped"))
	s.do("GET", embeddedRT+"/workers/"+third.WorkerId, "").decode(t, &w)
	if w.Status != "stopped:exited" {
		t.Errorf("a worker that exits 0: %s", w.Status)
	}
}

func TestEventStreamLimitAndShutdown(t *testing.T) {
	s := newEmbeddedServer(t, embeddedtest.Options{}, handlers.ServerOptions{MaxStreams: 2})
	// A stream of an unknown worker is a problem, not a stream.
	if p := s.do("GET", embeddedRT+"/workers/nobody/events", "").problem(t); p.Code != gen.ProblemCodeUnknownWorker {
		t.Errorf("stream of an unknown worker: %+v", p)
	}
	first := openSSE(t, s.base, embeddedRT+"/events")
	second := openSSE(t, s.base, embeddedRT+"/events")
	p := s.do("GET", embeddedRT+"/events", "").problem(t)
	if p.Code != gen.ProblemCodeTooManyStreams || p.Status != 503 {
		t.Errorf("a third stream: %+v", p)
	}
	if m := s.do("GET", "/metrics", ""); !bytes.Contains(m.Body, []byte("runtime_registry_event_streams_open 2")) {
		t.Error("the open-streams gauge does not count the streams")
	}
	first.Close()
	// The server notices the client left on its own time: wait (hang guard
	// only) until the slot is free again.
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		if m := s.do("GET", "/metrics", ""); bytes.Contains(m.Body, []byte("runtime_registry_event_streams_open 1\n")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed stream's slot was never released")
		}
	}
	third := openSSE(t, s.base, embeddedRT+"/events")
	// The server's shutdown ends every open stream.
	close(s.shutdown)
	second.waitEnd()
	third.waitEnd()
	if m := s.do("GET", "/metrics", ""); !bytes.Contains(m.Body, []byte("runtime_registry_event_streams_open 0")) {
		t.Error("ended streams are still counted")
	}
}

func TestEmbeddedUnknownAndInvalid(t *testing.T) {
	s := newEmbeddedServer(t, embeddedtest.Options{}, handlers.ServerOptions{})
	tests := []struct {
		name, method, target, body string
		header                     []string
		code                       gen.ProblemCode
		field                      string
	}{
		{"unknown worker", "GET", embeddedRT + "/workers/nobody", "", nil, gen.ProblemCodeUnknownWorker, ""},
		{"transcript of unknown worker", "GET", embeddedRT + "/workers/nobody/transcript", "", nil, gen.ProblemCodeUnknownWorker, ""},
		{"input to unknown worker", "POST", embeddedRT + "/workers/nobody/input", `{"kind":"user","content":"x"}`, nil, gen.ProblemCodeUnknownWorker, ""},
		{"stop of unknown worker", "POST", embeddedRT + "/workers/nobody/stop", `{"mode":"force"}`, nil, gen.ProblemCodeUnknownWorker, ""},
		{"transcript limit", "GET", embeddedRT + "/workers/nobody/transcript?limit=201", "", nil, gen.ProblemCodeInvalidRequest, "limit"},
		{"bad idempotency key", "POST", embeddedRT + "/workers", `{"intent":{"kind":"task"}}`, []string{"Idempotency-Key", "a b"}, gen.ProblemCodeInvalidRequest, "Idempotency-Key"},
		{"bad cursor", "GET", embeddedRT + "/events?cursor=a.b", "", nil, gen.ProblemCodeInvalidRequest, "cursor"},
		{"input too long", "POST", embeddedRT + "/workers/nobody/input", `{"kind":"user","content":"` + strings.Repeat("x", 70<<10) + `"}`, nil, gen.ProblemCodeInvalidRequest, "content"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			p := s.do(tc.method, tc.target, tc.body, tc.header...).problem(t)
			if p.Code != tc.code || (tc.field != "" && (p.Field == nil || *p.Field != tc.field)) {
				t.Errorf("%s %s: %+v", tc.method, tc.target, p)
			}
		})
	}
}

// TestAuditNeverLogsInput checks that the audit line of an input names the
// operation and ids, never the content.
func TestAuditNeverLogsInput(t *testing.T) {
	s := newEmbeddedServer(t, embeddedtest.Options{}, handlers.ServerOptions{})
	events := openSSE(t, s.base, embeddedRT+"/events")
	created := s.create(`{"intent":{"kind":"task"},"profile":"quiet"}`)
	events.until(upsertOf(created.WorkerId, "active"))
	const secret = "MARK-INPUT-CONTENT-5e1a"
	if resp := s.do("POST", embeddedRT+"/workers/"+created.WorkerId+"/input", `{"kind":"user","content":"`+secret+`"}`); resp.Status != 202 {
		t.Fatalf("input: %d %s", resp.Status, resp.Body)
	}
	s.do("POST", embeddedRT+"/workers/"+created.WorkerId+"/stop", `{"mode":"force"}`)
	logs := s.logText()
	if strings.Contains(logs, secret) {
		t.Error("the log holds an input's content")
	}
	var ops []string
	for line := range strings.Lines(logs) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "audit" {
			op, _ := m["operation"].(string)
			worker, _ := m["worker_id"].(string)
			ops = append(ops, op+":"+strconv.Quote(worker))
		}
	}
	for _, want := range []string{"create_worker", "send_input", "stop_worker"} {
		if !slices.Contains(ops, want+":"+strconv.Quote(created.WorkerId)) {
			t.Errorf("no audit line for %s in %v", want, ops)
		}
	}
}
