package handlers_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/embedded"
	"github.com/workspace-backend/runtime-registry/internal/embedded/embeddedtest"
	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// Markers planted in everything the API must never show. Each is unique so a
// hit names what leaked.
const (
	markSession   = "MARK-SESSION-7d1f"
	markSegment   = "MARK-SEGMENT-a9c2"
	markSocket    = "MARK-SOCKET-3e8b"
	markCallback  = "MARK-CALLBACK-51f0"
	markToken     = "MARK-TOKEN-c44e"
	markEndpoint  = "MARK-ENDPOINT-0b7a"
	markDataDir   = "MARK-DATADIR-e2d9"
	markRootDir   = "MARK-ROOT-88aa"
	markOtherRoot = "MARK-OTHERROOT-1c3d"
	markPeer      = "MARK-PEER-f00d"
)

var allMarkers = []string{markSession, markSegment, markSocket, markCallback, markToken, markEndpoint, markDataDir, markRootDir, markOtherRoot, markPeer}

// writePod writes one pod's metadata.json under dataDir.
func writePod(t *testing.T, dataDir, name string, meta map[string]any) {
	t.Helper()
	dir := filepath.Join(dataDir, "pods", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), body, 0o644); err != nil {
		t.Fatal(err)
	}
}

// markedStore builds a pod store in which every field the API must hide holds
// a marker, and the data dir and the workspace root's path hold markers too.
// The workspace root's last element is the host's display label by design, so
// the marker sits in the directories above it.
func markedStore(t *testing.T) (dataDir, root string) {
	base := t.TempDir()
	dataDir = filepath.Join(base, markDataDir, "data")
	root = filepath.Join(base, markRootDir, "workspace", "app")
	private := map[string]any{
		"socket_path":      "/run/" + markSocket + ".sock",
		"callback_address": "http://127.0.0.1:9/" + markCallback,
		"token":            markToken,
		"endpoint":         "http://10.0.0.1/" + markEndpoint,
		"session_path":     "/var/" + markSession + "/session",
	}
	pod := func(name, workspaceRoot string, active map[string]any) map[string]any {
		m := map[string]any{
			"worker_name":      name,
			"workspace_root":   workspaceRoot,
			"spawned_children": []any{markPeer + "-child"},
			"peers":            []any{markPeer, map[string]any{"socket_path": markSocket}},
			"resolved_manifest_snapshot": map[string]any{
				"role": "coder", "profile_selector": map[string]any{"name": "default", "token": markToken},
				"runtime": private,
			},
		}
		for k, v := range private {
			m[k] = v
		}
		if active != nil {
			m["active"] = active
		}
		return m
	}
	writePod(t, dataDir, "active-worker", pod("active-worker", root, map[string]any{"session_id": markSession, "segment_id": markSegment, "socket_path": markSocket}))
	writePod(t, dataDir, "pending-worker", pod("pending-worker", root+"/", map[string]any{"session_id": markSession}))
	writePod(t, dataDir, "idle-worker", pod("idle-worker", root, nil))
	writePod(t, dataDir, "stale-dir", pod("renamed", root, nil))
	writePod(t, dataDir, "foreign-worker", pod("foreign-worker", "/srv/"+markOtherRoot+"/other", map[string]any{"session_id": markSession}))
	writePod(t, dataDir, "rootless-worker", map[string]any{"worker_name": "rootless-worker", "token": markToken})
	// Invalid and unreadable metadata, whose error texts would carry paths.
	if err := os.MkdirAll(filepath.Join(dataDir, "pods", "broken-worker"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "pods", "broken-worker", "metadata.json"), []byte(`{"worker_name": "`+markToken), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "pods", "empty-worker"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dataDir, root
}

func TestNoResponseRevealsPrivateValues(t *testing.T) {
	dataDir, root := markedStore(t)
	src := compat.New(compat.Config{WorkspaceID: "local:leak", WorkspaceRoot: root, DataDir: dataDir})
	s := newTestServer(t, registry.Options{WorkspaceID: "local:leak"}, src)

	rt := string(compat.RuntimeID)
	host := string(compat.HostIDFor("local:leak"))
	targets := []struct{ method, target, body string }{
		{"GET", "/api/runtimes", ""},
		{"GET", "/api/hosts", ""},
		{"GET", "/api/workers", ""},
		{"GET", "/api/hosts/" + host + "/workers", ""},
		{"GET", "/api/runtimes/" + rt, ""},
		{"GET", "/api/runtimes/" + rt + "/hosts", ""},
		{"GET", "/api/runtimes/" + rt + "/workers?limit=1", ""},
		{"GET", "/api/runtimes/" + rt + "/workers?limit=200", ""},
		{"GET", "/api/openapi.json", ""},
	}
	for _, name := range []string{"active-worker", "pending-worker", "idle-worker", "stale-dir", "renamed", "foreign-worker", "rootless-worker", "broken-worker", "empty-worker"} {
		w := string(compat.WorkerIDFor(name))
		targets = append(targets,
			struct{ method, target, body string }{"GET", "/api/runtimes/" + rt + "/workers/" + w, ""},
			struct{ method, target, body string }{"POST", "/api/runtimes/" + rt + "/workers/" + w + "/stop", `{"mode":"force"}`},
			struct{ method, target, body string }{"POST", "/api/runtimes/" + rt + "/workers/" + w + "/input", `{"kind":"user","content":"x"}`},
		)
	}

	// Follow the paged list to the end so every page is swept.
	var page gen.WorkerList
	s.do("GET", "/api/runtimes/"+rt+"/workers?limit=1", "").decode(t, &page)
	for i := 0; page.NextCursor != nil && i < 20; i++ {
		targets = append(targets, struct{ method, target, body string }{"GET", "/api/runtimes/" + rt + "/workers?limit=1&cursor=" + *page.NextCursor, ""})
		s.do("GET", "/api/runtimes/"+rt+"/workers?limit=1&cursor="+*page.NextCursor, "").decode(t, &page)
	}

	statuses := map[int]int{}
	for _, tc := range targets {
		resp := s.do(tc.method, tc.target, tc.body)
		statuses[resp.Status]++
		headers := fmt.Sprint(resp.Header)
		for _, m := range allMarkers {
			if strings.Contains(string(resp.Body), m) || strings.Contains(headers, m) {
				t.Errorf("%s %s reveals %s: %s", tc.method, tc.target, m, resp.Body)
			}
		}
	}
	for _, m := range allMarkers {
		if strings.Contains(s.logs.String(), m) {
			t.Errorf("the log reveals %s", m)
		}
	}
	// The sweep must have seen the interesting answers, or it proves nothing.
	for _, status := range []int{200, 403, 404, 501} {
		if statuses[status] == 0 {
			t.Errorf("the sweep saw no %d response (saw %v)", status, statuses)
		}
	}
}

func TestCompatThroughHTTP(t *testing.T) {
	dataDir, root := markedStore(t)
	src := compat.New(compat.Config{WorkspaceID: "local:x", WorkspaceRoot: root, DataDir: dataDir})
	s := newTestServer(t, registry.Options{WorkspaceID: "local:x"}, src)
	rt := "/api/runtimes/" + string(compat.RuntimeID)

	var list gen.WorkerList
	s.do("GET", "/api/workers", "").decode(t, &list)
	got := map[string]gen.WorkerSummary{}
	for _, w := range list.Items {
		got[w.WorkerId] = w
	}
	active := got[string(compat.WorkerIDFor("active-worker"))]
	if active.Status != "active:segment" || active.State != gen.WorkerStateActive || active.Role == nil || *active.Role != "coder" {
		t.Errorf("active worker = %+v", active)
	}
	if w := got[string(compat.WorkerIDFor("pending-worker"))]; w.Status != "active:pending_segment" {
		t.Errorf("pending worker status %q", w.Status)
	}
	if w := got[string(compat.WorkerIDFor("idle-worker"))]; w.Status != "metadata_only" || w.State != gen.WorkerStateMetadataOnly {
		t.Errorf("idle worker = %+v", w)
	}
	if _, ok := got[string(compat.WorkerIDFor("stale-dir"))]; !ok {
		t.Error("stale pod is not listed under its directory-derived id")
	}
	if len(got) != 4 {
		t.Errorf("listed %d workers, want 4 (active, pending, idle, stale)", len(got))
	}
	codes := map[string]bool{}
	for _, d := range list.Diagnostics {
		codes[d.Code] = true
	}
	for _, want := range []string{"local_pod_metadata_stale", "local_pod_workspace_not_visible", "local_pod_workspace_root_missing", "local_pod_metadata_invalid", "local_pod_metadata_unreadable"} {
		if !codes[want] {
			t.Errorf("no %s diagnostic in %+v", want, list.Diagnostics)
		}
	}

	for _, tc := range []struct {
		target string
		want   gen.ProblemCode
	}{
		{rt + "/workers/" + string(compat.WorkerIDFor("foreign-worker")), gen.ProblemCodeWorkerNotVisible},
		{rt + "/workers/" + string(compat.WorkerIDFor("renamed")), gen.ProblemCodeUnknownWorker},
		{rt + "/workers/" + string(compat.WorkerIDFor("broken-worker")), gen.ProblemCodeUnknownWorker},
	} {
		if p := s.do("GET", tc.target, "").problem(t); p.Code != tc.want {
			t.Errorf("GET %s: %s, want %s", tc.target, p.Code, tc.want)
		}
	}
}

func TestCompatWithoutDataDirIsDegradedAndUnavailable(t *testing.T) {
	src := compat.New(compat.Config{WorkspaceID: "local:x", WorkspaceRoot: t.TempDir()})
	s := newTestServer(t, registry.Options{}, src)
	rt := "/api/runtimes/" + string(compat.RuntimeID)

	var sum gen.RuntimeSummary
	s.do("GET", rt, "").decode(t, &sum)
	if sum.Status != gen.RuntimeStatusDegraded || sum.Capabilities.LocalPodInspection != gen.CapabilitiesLocalPodInspectionUnavailable {
		t.Errorf("summary without data dir = %+v", sum)
	}
	// The reason is the runtime's own diagnostic; the merged list says the
	// runtime was left out.
	if len(sum.Diagnostics) == 0 || sum.Diagnostics[0].Code != "local_pod_registry_unavailable" {
		t.Errorf("summary diagnostics without data dir = %+v", sum.Diagnostics)
	}
	var list gen.WorkerList
	s.do("GET", "/api/workers", "").decode(t, &list)
	if len(list.Items) != 0 || len(list.Diagnostics) == 0 || list.Diagnostics[0].Code != "runtime_unavailable" {
		t.Errorf("list without data dir = %+v", list)
	}
	if p := s.do("GET", rt+"/workers/local-worker-x", "").problem(t); p.Code != gen.ProblemCodeRuntimeUnavailable {
		t.Errorf("lookup without data dir: %s, want runtime_unavailable", p.Code)
	}
}

// Markers of the embedded Runtime's private values: its state dir,
// profiles file and workspace root all sit under markPrivateDir; the
// profiles name a command and an env value the browser must never see.
const (
	markPrivateDir = "MARK-PRIVATEDIR-6b2e"
	markCommand    = "MARK-COMMAND-9d41"
	markEnvValue   = "MARK-ENVVALUE-27c5"
)

const leakProfiles = `default: echo
profiles:
  - name: echo
    label: Echo
    description: Repeats every input line
    command: ["/bin/sh", "-c", "# ` + markCommand + `\nwhile IFS= read -r l; do printf 'echo: %s\n' \"$l\"; done"]
    env: {SECRET: ` + markEnvValue + `}
`

func TestEmbeddedRevealsNoPrivateValues(t *testing.T) {
	dataDir, root := markedStore(t)
	local := compat.New(compat.Config{WorkspaceID: "local:leak", WorkspaceRoot: root, DataDir: dataDir})
	runtimeLogs := &testproc.Buffer{}
	src, dirs := embeddedtest.Open(t, embeddedtest.Options{
		WorkspaceID: "local:leak", MaxWorkers: 1, Profiles: leakProfiles,
		Dir:    filepath.Join(t.TempDir(), markPrivateDir),
		Logger: slog.New(slog.NewJSONHandler(runtimeLogs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	s := newTestServerWith(t, registry.Options{WorkspaceID: "local:leak"}, handlers.ServerOptions{}, local, src)
	hs := httptest.NewServer(s.handler)
	defer hs.Close()
	secrets := append(slices.Clone(allMarkers), markPrivateDir, markCommand, markEnvValue,
		dirs.StateDir, dirs.ProfilesFile, dirs.WorkspaceRoot, "/bin/sh", "worker-runtime.db")

	var seen strings.Builder
	record := func(what string, data []byte, header http.Header) {
		fmt.Fprintf(&seen, "%s\n%s\n%v\n", what, data, header)
	}
	rt := embeddedRT
	stream := openSSE(t, hs.URL, rt+"/events")
	record("stream headers", nil, stream.header())

	created := s.do("POST", rt+"/workers", `{"intent":{"kind":"task","objective":"leak"},"worker_name":"leaky"}`, "Idempotency-Key", "leak-1")
	record("create", created.Body, created.Header)
	var acc gen.CreateWorkerAccepted
	created.decode(t, &acc)
	id := acc.WorkerId
	for _, ev := range stream.until(upsertOf(id, "active")) {
		record("event", ev.Data, nil)
	}
	targets := []struct{ method, target, body string }{
		{"GET", "/api/runtimes", ""},
		{"GET", "/api/hosts", ""},
		{"GET", "/api/workers", ""},
		{"GET", "/api/hosts/" + string(embedded.HostIDFor("local:leak")) + "/workers", ""},
		{"GET", rt, ""},
		{"GET", rt + "/hosts", ""},
		{"GET", rt + "/profiles", ""},
		{"GET", rt + "/workers?limit=1", ""},
		{"GET", rt + "/workers/" + id, ""},
		{"POST", rt + "/workers/" + id + "/input", `{"kind":"user","content":"hello"}`},
		{"POST", rt + "/workers", `{"intent":{"kind":"task"}}`},                     // at capacity
		{"POST", rt + "/workers", `{"intent":{"kind":"task"},"profile":"nope"}`},    // unknown profile
		{"POST", rt + "/workers/nobody/input", `{"kind":"user","content":"x"}`},     // unknown worker
		{"GET", rt + "/workers/nobody/transcript", ""},                              // unknown worker
		{"GET", rt + "/workers/" + id + "/events?cursor=zz-unknown", ""},            // never answered here: see below
		{"POST", rt + "/workers/" + id + "/stop", `{"mode":"graceful"}`},            // stop
		{"POST", rt + "/workers/" + id + "/stop", `{"mode":"force"}`},               // again
		{"POST", rt + "/workers/" + id + "/input", `{"kind":"user","content":"x"}`}, // not running
	}
	statuses := map[int]int{}
	for _, tc := range targets {
		if strings.Contains(tc.target, "/events") {
			continue // streams are read over the real connection
		}
		resp := s.do(tc.method, tc.target, tc.body)
		statuses[resp.Status]++
		record(tc.method+" "+tc.target, resp.Body, resp.Header)
		if strings.Contains(tc.body, "hello") && resp.Status == 202 {
			// The answer must be in before the stop below, however slow the
			// machine: the sweep reads it back from the transcript.
			for _, ev := range stream.until(appendOf(id, "echo: hello")) {
				record("event", ev.Data, nil)
			}
		}
	}
	for _, ev := range stream.until(upsertOf(id, "stopped")) {
		record("event", ev.Data, nil)
	}
	resync := openSSE(t, hs.URL, rt+"/workers/"+id+"/events", "Last-Event-ID", "zz-unknown")
	record("resync", resync.next().Data, nil)
	resync.Close()
	transcript := s.do("GET", rt+"/workers/"+id+"/transcript", "")
	record("transcript", transcript.Body, transcript.Header)
	if !strings.Contains(string(transcript.Body), "echo: hello") {
		t.Errorf("the sweep did not see the worker answer: %s", transcript.Body)
	}
	for _, status := range []int{200, 202, 400, 404, 409} {
		if statuses[status] == 0 {
			t.Errorf("the sweep saw no %d response (saw %v)", status, statuses)
		}
	}
	stream.Close()

	rtLog := runtimeLogs.String()
	for _, m := range secrets {
		if strings.Contains(seen.String(), m) {
			t.Errorf("an answer reveals %q", m)
		}
		if strings.Contains(s.logText(), m) {
			t.Errorf("the server log reveals %q", m)
		}
		if strings.Contains(rtLog, m) {
			t.Errorf("the runtime log reveals %q", m)
		}
	}
}
