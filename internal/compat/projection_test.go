package compat_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

func TestProjection(t *testing.T) {
	type want struct {
		label         string
		role, profile *string
		state         registry.WorkerState
		status        string
		hint          string
	}
	meta := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	snap := func(kv ...any) map[string]any { return meta("resolved_manifest_snapshot", meta(kv...)) }
	name := func(s string) map[string]any { return map[string]any{"name": s} }
	idle := func(label, hint string) want {
		return want{label: label, state: registry.WorkerMetadataOnly, status: "metadata_only", hint: hint}
	}
	withRP := func(w want, role, profile *string) want { w.role, w.profile = role, profile; return w }

	tests := []struct {
		name string
		pod  string
		meta map[string]any
		want want
	}{
		{"plain", "coder", meta("worker_name", "coder"), idle("coder", "coder")},
		{"label drops controls and slashes", "lbl1", meta("worker_name", "a/b\\c\x01\x7f\td\u0085e"), idle("abcde", "lbl1")},
		{"label drops format and separator chars", "lbl6",
			meta("worker_name", "a\u200bb\ufeffc\u00add\U000E0041\U000E007Fe\u2028f\u2029g\u200dh\u2066i\u061cj\u180ek"),
			idle("abcdefghijk", "lbl6")},
		{"display hint drops format chars", "hint\u200b\u2029x", meta(), idle("hintx", "hintx")},
		{"role and profile drop format chars", "rp12", snap("role", "\u200b\ufeff", "role_claim", meta("role", "re\u00adviewer"), "profile", "fa\U000E0020st\u2028"),
			withRP(idle("rp12", "rp12"), ptr("reviewer"), ptr("fast"))},
		{"label drops replacement chars", "lbl2", meta("worker_name", "x\ufffdy"), idle("xy", "lbl2")},
		{"label is cut to 80 runes", "lbl3", meta("worker_name", strings.Repeat("é", 100)), idle(strings.Repeat("é", 80), "lbl3")},
		{"label trims space", "lbl4", meta("worker_name", "  spaced  "), idle("spaced", "lbl4")},
		{"label falls back to dir name", "Dir.Name", meta(), idle("Dir.Name", "Dir.Name")},
		{"label of only controls falls back to dir name", "lbl5", meta("worker_name", "\x01//"), idle("lbl5", "lbl5")},
		{"label falls back to worker", `\\`, meta(), idle("worker", "")},
		{"display hint is sanitized dir name", "Coder Worker\x01", meta("worker_name", "Coder Worker\x01"), idle("Coder Worker", "Coder Worker")},
		{"role and profile strings", "rp1", snap("role", "reviewer", "profile_selector", "fast"),
			withRP(idle("rp1", "rp1"), ptr("reviewer"), ptr("fast"))},
		{"role and profile objects", "rp2", snap("role", name("reviewer"), "profile_selector", name("fast")),
			withRP(idle("rp2", "rp2"), ptr("reviewer"), ptr("fast"))},
		{"role wins over role_claim", "rp3", snap("role", "a", "role_claim", meta("role", "b")),
			withRP(idle("rp3", "rp3"), ptr("a"), nil)},
		{"role_claim string", "rp4", snap("role_claim", meta("role", "claimed")),
			withRP(idle("rp4", "rp4"), ptr("claimed"), nil)},
		{"role_claim object, empty role", "rp5", snap("role", "", "role_claim", meta("role", name("claimed"))),
			withRP(idle("rp5", "rp5"), ptr("claimed"), nil)},
		{"role of only controls falls back to claim", "rp6", snap("role", "\x01 ", "role_claim", meta("role", "c")),
			withRP(idle("rp6", "rp6"), ptr("c"), nil)},
		{"profile_selector wins over profile", "rp7", snap("profile_selector", "sel", "profile", "prof"),
			withRP(idle("rp7", "rp7"), nil, ptr("sel"))},
		{"profile fallback", "rp8", snap("profile", name("prof")),
			withRP(idle("rp8", "rp8"), nil, ptr("prof"))},
		{"role and profile sanitized", "rp9", snap("role", "re/vi\\ewer\x00", "profile", strings.Repeat("p", 90)),
			withRP(idle("rp9", "rp9"), ptr("reviewer"), ptr(strings.Repeat("p", 80)))},
		{"empty names are null", "rp10", snap("role", name(""), "role_claim", nil, "profile_selector", nil, "profile", ""),
			idle("rp10", "rp10")},
		{"null snapshot", "rp11", meta("resolved_manifest_snapshot", nil), idle("rp11", "rp11")},
		{"active with segment", "st1", meta("active", meta("session_id", "s", "segment_id", "g")),
			want{label: "st1", state: registry.WorkerActive, status: "active:segment", hint: "st1"}},
		{"active without segment", "st2", meta("active", meta("session_id", "s")),
			want{label: "st2", state: registry.WorkerActive, status: "active:pending_segment", hint: "st2"}},
		{"active with empty segment", "st3", meta("active", meta("session_id", "s", "segment_id", "")),
			want{label: "st3", state: registry.WorkerActive, status: "active:pending_segment", hint: "st3"}},
		{"active null", "st4", meta("active", nil), idle("st4", "st4")},
		{"unknown fields ignored", "st5", meta("peers", []any{"x"}, "spawned_children", map[string]any{"a": 1}, "extra", true),
			idle("st5", "st5")},
	}

	f := newFixture(t)
	for _, tt := range tests {
		f.pod(tt.pod, tt.meta)
	}
	s := f.source()
	listed := map[registry.WorkerID]registry.Worker{}
	for _, w := range list(t, s).Workers {
		listed[w.ID] = w
	}
	host := compat.HostIDFor("my-workspace")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := compat.WorkerIDFor(tt.pod)
			w, err := s.Worker(context.Background(), id)
			if err != nil {
				t.Fatalf("Worker: %v", err)
			}
			if !reflect.DeepEqual(listed[id], w) {
				t.Errorf("listed and looked-up projections differ:\n%+v\n%+v", listed[id], w)
			}
			got := want{label: w.Label, role: w.Role, profile: w.Profile, state: w.State, status: w.Status, hint: w.Implementation.DisplayHint}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", show(got.label, got.role, got.profile, got.state, got.status, got.hint),
					show(tt.want.label, tt.want.role, tt.want.profile, tt.want.state, tt.want.status, tt.want.hint))
			}
			fixed := registry.Worker{
				ID: id, RuntimeID: compat.RuntimeID, HostID: host,
				Workspace:      registry.WorkerWorkspace{Visibility: "current_workspace", Identity: "runtime_workspace"},
				Implementation: registry.WorkerImplementation{Kind: "local_pod", DisplayHint: w.Implementation.DisplayHint},
				Capabilities:   registry.WorkerCapabilities{CanGetWorker: true, CanStreamEvents: true},
				LastSeenAt:     nil,
				Diagnostics:    []registry.Diagnostic{},
			}
			// A worker_name other than the directory's is stale metadata:
			// the worker itself says so too, beside the list.
			wantDiags := []string{}
			if name, ok := tt.meta["worker_name"].(string); ok && name != tt.pod {
				wantDiags = []string{compat.DiagMetadataStale}
			}
			if got := codes(w.Diagnostics); !slices.Equal(got, wantDiags) {
				t.Errorf("worker diagnostics %v, want %v", got, wantDiags)
			}
			w.Label, w.Role, w.Profile, w.State, w.Status, w.Diagnostics = "", nil, nil, "", "", []registry.Diagnostic{}
			if !reflect.DeepEqual(w, fixed) {
				t.Errorf("fixed fields:\n got %+v\nwant %+v", w, fixed)
			}
		})
	}
}

func show(label string, role, profile *string, state registry.WorkerState, status, hint string) string {
	deref := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return "&" + *p
	}
	return strings.Join([]string{label, deref(role), deref(profile), string(state), status, hint}, " | ")
}

// A display string is never authority: looking a Worker up by its label or
// pod directory name fails as unknown.
func TestLookupByDisplayStringIsUnknown(t *testing.T) {
	f := newFixture(t)
	f.pod("coder", map[string]any{"worker_name": "coder"})
	s := f.source()
	for _, id := range []registry.WorkerID{"coder", "local-worker-coder", registry.WorkerID("local-worker-coder-" + digest("Coder"))} {
		if _, err := s.Worker(context.Background(), id); errCode(err) != registry.CodeUnknownWorker {
			t.Errorf("Worker(%q) = %v, want unknown_worker", id, err)
		}
	}
}
