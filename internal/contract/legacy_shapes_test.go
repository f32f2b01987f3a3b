package contract_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The shapes the existing front end declares for the four existing
// endpoints' answers, field for field, copied from its client (issue 13).
// Every field is required; a field tagged `legacy:"nullable"` may be null,
// every other one must be present and non-null. Extra fields of ours are
// fine: the existing client ignores them.

type legacyList[T any] struct {
	Items []T `json:"items"`
}

type legacyCapabilities struct {
	MaxWorkers int `json:"max_workers"`
}

type legacyRuntime struct {
	RuntimeID    string             `json:"runtime_id"`
	Label        string             `json:"label"`
	Kind         string             `json:"kind"`
	Status       string             `json:"status"`
	HostIDs      []string           `json:"host_ids"`
	Capabilities legacyCapabilities `json:"capabilities"`
	Diagnostics  []legacyDiagnostic `json:"diagnostics"`
}

type legacyHost struct {
	RuntimeID    string             `json:"runtime_id"`
	HostID       string             `json:"host_id"`
	Label        string             `json:"label"`
	Kind         string             `json:"kind"`
	Status       string             `json:"status"`
	ObservedAt   time.Time          `json:"observed_at"`
	LastSeenAt   *time.Time         `json:"last_seen_at" legacy:"nullable"`
	Capabilities legacyCapabilities `json:"capabilities"`
	Diagnostics  []legacyDiagnostic `json:"diagnostics"`
}

type legacyWorkspace struct {
	Visibility string `json:"visibility"`
	Identity   string `json:"identity"`
}

type legacyImplementation struct {
	Kind        string `json:"kind"`
	DisplayHint string `json:"display_hint"`
}

type legacyWorkerCapabilities struct {
	CanAcceptInput           bool `json:"can_accept_input"`
	CanStreamEvents          bool `json:"can_stream_events"`
	CanStop                  bool `json:"can_stop"`
	CanSpawnFollowup         bool `json:"can_spawn_followup"`
	CanReadBoundedTranscript bool `json:"can_read_bounded_transcript"`
}

type legacyWorker struct {
	RuntimeID      string                   `json:"runtime_id"`
	WorkerID       string                   `json:"worker_id"`
	HostID         string                   `json:"host_id"`
	Label          string                   `json:"label"`
	Role           *string                  `json:"role" legacy:"nullable"`
	Profile        *string                  `json:"profile" legacy:"nullable"`
	Workspace      legacyWorkspace          `json:"workspace"`
	State          string                   `json:"state"`
	Status         string                   `json:"status"`
	LastSeenAt     *time.Time               `json:"last_seen_at" legacy:"nullable"`
	Implementation legacyImplementation     `json:"implementation"`
	Capabilities   legacyWorkerCapabilities `json:"capabilities"`
	Diagnostics    []legacyDiagnostic       `json:"diagnostics"`
}

type legacyDiagnostic struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// requireShape fails unless raw (a JSON value) has every field of t's
// shape: present, and non-null unless tagged nullable. It recurses into
// objects and arrays.
func requireShape(raw json.RawMessage, t reflect.Type, where string) []string {
	var missing []string
	switch t.Kind() {
	case reflect.Pointer:
		return requireShape(raw, t.Elem(), where)
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return []string{where + ": not an array"}
		}
		for i, it := range items {
			missing = append(missing, requireShape(it, t.Elem(), fmt.Sprintf("%s[%d]", where, i))...)
		}
		return missing
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return []string{where + ": not an object"}
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			v, ok := obj[name]
			switch {
			case !ok:
				missing = append(missing, where+"."+name+": missing")
			case string(v) == "null":
				if f.Tag.Get("legacy") != "nullable" {
					missing = append(missing, where+"."+name+": null")
				}
			default:
				missing = append(missing, requireShape(v, f.Type, where+"."+name)...)
			}
		}
	}
	return missing
}

// TestExistingEndpointsKeepTheirShape decodes every existing endpoint's
// answer into the existing client's declared shapes and fails on any missing
// or null field, or a field of the wrong type.
func TestExistingEndpointsKeepTheirShape(t *testing.T) {
	h := newSampleHandler(t, sampleDataDir(t))
	get := func(path string) []byte {
		t.Helper()
		req, err := newRequest(t.Context(), http.MethodGet, path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		ex := serve(h, req)
		if ex.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, ex.status, ex.body)
		}
		return ex.body
	}
	check := func(path string, body []byte, item reflect.Type) {
		t.Helper()
		var list struct {
			Items json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		var items []json.RawMessage
		if err := json.Unmarshal(list.Items, &items); err != nil || len(items) == 0 {
			t.Fatalf("GET %s: no items to check (%v)", path, err)
		}
		for _, m := range requireShape(list.Items, reflect.SliceOf(item), "items") {
			t.Errorf("GET %s: %s", path, m)
		}
	}

	runtimes := get("/api/runtimes")
	check("/api/runtimes", runtimes, reflect.TypeFor[legacyRuntime]())
	var typedRuntimes legacyList[legacyRuntime]
	if err := json.Unmarshal(runtimes, &typedRuntimes); err != nil {
		t.Errorf("runtimes do not decode into the existing client's types: %v", err)
	}

	hosts := get("/api/hosts")
	check("/api/hosts", hosts, reflect.TypeFor[legacyHost]())
	var typedHosts legacyList[legacyHost]
	if err := json.Unmarshal(hosts, &typedHosts); err != nil {
		t.Fatalf("hosts do not decode into the existing client's types: %v", err)
	}

	workers := get("/api/workers")
	check("/api/workers", workers, reflect.TypeFor[legacyWorker]())
	var typedWorkers legacyList[legacyWorker]
	if err := json.Unmarshal(workers, &typedWorkers); err != nil {
		t.Errorf("workers do not decode into the existing client's types: %v", err)
	}

	for _, host := range typedHosts.Items {
		path := "/api/hosts/" + host.HostID + "/workers"
		check(path, get(path), reflect.TypeFor[legacyWorker]())
	}

	// The local runtime states its list limit as max_workers, as the
	// existing server did.
	for _, rt := range typedRuntimes.Items {
		if rt.RuntimeID == "local-worker-runtime" && rt.Capabilities.MaxWorkers < 1 {
			t.Errorf("local runtime max_workers = %d, want the list limit", rt.Capabilities.MaxWorkers)
		}
	}
}

// The shape checker itself must fail on a missing field, a null where none
// is allowed, and a nested miss.
func TestRequireShapeCatchesMisses(t *testing.T) {
	tests := []struct {
		name, body string
		want       string
	}{
		{"missing diagnostics", `{"code":"c","severity":"info"}`, "x.message: missing"},
		{"null message", `{"code":"c","severity":"info","message":null}`, "x.message: null"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := requireShape(json.RawMessage(tc.body), reflect.TypeFor[legacyDiagnostic](), "x")
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("got %v, want [%s]", got, tc.want)
			}
		})
	}
	nested := `{"runtime_id":"r","worker_id":"w","host_id":"h","label":"l","role":null,"profile":null,
		"workspace":{"visibility":"v"},"state":"s","status":"s","last_seen_at":null,
		"implementation":{"kind":"k","display_hint":"d"},"diagnostics":[],
		"capabilities":{"can_accept_input":false,"can_stream_events":false,"can_stop":false,"can_read_bounded_transcript":false}}`
	got := requireShape(json.RawMessage(nested), reflect.TypeFor[legacyWorker](), "w")
	want := []string{"w.workspace.identity: missing", "w.capabilities.can_spawn_followup: missing"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %v, want %v", got, want)
	}
}
