package compat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// punctuation is what the id algorithm replaces by '-'; swapping one for
// another must still give a different id.
const punctuation = ".-_ /\\:@#!~+=,;()[]{}'\"`"

// FuzzBounded checks the id algorithm: it never panics, its ids are valid,
// at most 120 characters and start with their prefix, the same input always
// gives the same id, distinct inputs give distinct ids, and so do inputs that
// differ only in punctuation.
func FuzzBounded(f *testing.F) {
	for _, s := range []string{
		"", "00001KVWECEQG-Coder.Worker", "a.b", "a_b", "a-b", "---", "ü", "\xff\xfe", "a\nb",
		strings.Repeat("x", 255), strings.Repeat("é", 200), "local:sample", "..", "/etc/passwd",
	} {
		f.Add(s, s+".", uint8(0))
	}
	f.Fuzz(func(t *testing.T, a, b string, pick uint8) {
		for _, prefix := range []string{"local-", "local-worker-"} {
			id := compat.Bounded(prefix, a)
			if !registry.ValidID(id) || len(id) > registry.MaxIDLength || !strings.HasPrefix(id, prefix) {
				t.Fatalf("Bounded(%q, %q) = %q: not a valid bounded id", prefix, a, id)
			}
			if again := compat.Bounded(prefix, a); again != id {
				t.Fatalf("Bounded(%q, %q) is not deterministic: %q then %q", prefix, a, id, again)
			}
			if a != b && compat.Bounded(prefix, b) == id {
				t.Fatalf("Bounded(%q) collides for %q and %q", prefix, a, b)
			}
			// Swap the punctuation at one position for another punctuation
			// character: the readable body stays the same, the id must not.
			if i := strings.IndexAny(a, punctuation); i >= 0 {
				repl := punctuation[int(pick)%len(punctuation)]
				if repl == a[i] {
					repl = punctuation[(int(pick)+1)%len(punctuation)]
				}
				swapped := a[:i] + string(repl) + a[i+1:]
				if compat.Bounded(prefix, swapped) == id {
					t.Fatalf("Bounded(%q) gives the same id to %q and %q", prefix, a, swapped)
				}
			}
		}
		if string(compat.WorkerIDFor(a)) != compat.Bounded("local-worker-", a) || string(compat.HostIDFor(a)) != compat.Bounded("local-", a) {
			t.Fatalf("WorkerIDFor/HostIDFor(%q) disagree with Bounded", a)
		}
	})
}

// Markers planted in the private places of fuzzed metadata. They are upper
// case so that no id (whose body is lower case) can contain them.
const (
	markSession = "ZQSESSIONMARK"
	markSocket  = "ZQSOCKETMARK"
	markPath    = "ZQPATHMARK"
	markData    = "ZQDATADIRMARK"
	markParent  = "ZQPARENTMARK"
)

// FuzzMetadataProjection writes fuzzed metadata under a fuzzed pod name in a
// real store and reads it through the Source and the Registry. Nothing may
// panic; every listed Worker must be a safe projection (valid ids, display
// strings sanitized and bounded); listing and lookup must agree; and no
// planted session id, socket, path or data directory may come out, in a
// Worker, a diagnostic, an error or a log line. With plant set, a metadata
// object gets the markers written into its private fields first.
func FuzzMetadataProjection(f *testing.F) {
	seeds := []string{
		`{"worker_name":"w","workspace_root":"ROOT"}`,
		`{"worker_name":"w","workspace_root":"ROOT","active":{"session_id":"s","segment_id":"g"}}`,
		`{"workspace_root":"ROOT","resolved_manifest_snapshot":{"role":{"name":"r"},"profile_selector":"p","role_claim":{"role":"c"}}}`,
		`{"workspace_root":"ROOT/","worker_name":"a/b\\c\u0000\u202e"}`,
		`{"workspace_root":"/elsewhere"}`,
		`{"workspace_root":7}`, `null`, `[]`, `{`, ``, `{"workspace_root":"ROOT","workspace_root":"/other"}`,
		`{"workspace_root":"ROOT","peers":` + strings.Repeat("[", 20000) + `}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), "pod", true)
		f.Add([]byte(s), "Pod.Name with\nnewline", false)
	}
	f.Fuzz(func(t *testing.T, doc []byte, pod string, plant bool) {
		if pod == "" || pod == "." || pod == ".." || len(pod) > 255 || strings.ContainsAny(pod, "/\x00") {
			return // not a directory name the filesystem can hold
		}
		base := t.TempDir()
		root := filepath.Join(base, markParent, "project")
		dataDir := filepath.Join(base, markData)
		if err := os.MkdirAll(filepath.Join(dataDir, "pods", pod), 0o755); err != nil {
			return // a name this filesystem refuses
		}
		doc = bytes.ReplaceAll(doc, []byte("ROOT"), []byte(root))
		// What the fuzzer wrote itself may be shown; only the rest is private.
		public := decodedStrings(doc) + pod
		if plant {
			doc = plantMarkers(doc)
		}
		if err := os.WriteFile(filepath.Join(dataDir, "pods", pod, "metadata.json"), doc, 0o644); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		src := compat.New(compat.Config{WorkspaceID: "ws", WorkspaceRoot: root, DataDir: dataDir, Logger: log})
		reg, err := registry.New(registry.Options{WorkspaceID: "ws", Auditor: registry.SlogAuditor{Logger: log}}, src)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var out bytes.Buffer
		emit := func(v any) {
			data, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			out.Write(data)
		}
		list := reg.Workers(ctx)
		emit(list)
		id := compat.WorkerIDFor(pod)
		listed := false
		for _, w := range list.Items {
			checkSafeWorker(t, w)
			listed = listed || w.ID == id
		}
		w, err := reg.Worker(ctx, registry.WorkerRef{RuntimeID: compat.RuntimeID, WorkerID: id})
		switch code := registry.ErrorCode(err); {
		case listed && err != nil:
			t.Fatalf("listed worker %s: lookup answers %v", id, err)
		case !listed && code != registry.CodeUnknownWorker && code != registry.CodeWorkerNotVisible:
			t.Fatalf("unlisted worker %s: lookup answers %v, want unknown_worker or worker_not_visible", id, err)
		}
		emit(w)
		if err != nil {
			var e *registry.Error
			if !errors.As(err, &e) {
				t.Fatalf("untyped error %T", err)
			}
			out.WriteString(e.Error())
			out.WriteString(e.Detail)
		}
		hosts := reg.Hosts(ctx)
		emit(hosts)
		rt, _ := reg.Runtime(ctx, compat.RuntimeID)
		emit(rt)
		for _, d := range list.Diagnostics {
			if strings.ContainsAny(d.Message, "/\\") {
				t.Fatalf("diagnostic %q holds a path", d.Message)
			}
		}
		private := []string{markData, markParent, base}
		if plant {
			private = append(private, markSession, markSocket, markPath)
		}
		for _, m := range private {
			if strings.Contains(public, m) {
				continue // the fuzzer wrote it where it may be shown
			}
			if bytes.Contains(out.Bytes(), []byte(m)) {
				t.Fatalf("marker %q leaked into the output: %s", m, out.Bytes())
			}
			if bytes.Contains(logs.Bytes(), []byte(m)) {
				t.Fatalf("marker %q leaked into the logs: %s", m, logs.Bytes())
			}
		}
	})
}

// plantMarkers writes the markers into the private fields of a metadata
// object (overwriting what the fuzzer put there) and leaves anything else as
// it is. Anything but an object is returned unchanged.
func plantMarkers(doc []byte) []byte {
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil || m == nil {
		return doc
	}
	active := map[string]any{"session_id": markSession, "session_path": "/" + markPath + "/session"}
	if a, ok := m["active"].(map[string]any); ok {
		if seg, ok := a["segment_id"].(string); ok && seg != "" {
			active["segment_id"] = seg
		}
	}
	m["active"] = active
	m["peers"] = []any{map[string]any{"socket": "/run/" + markSocket + ".sock", "session_id": markSession}}
	m["spawned_children"] = []any{map[string]any{"path": "/" + markPath, "session_id": markSession}}
	m["socket_path"] = "/run/" + markSocket
	if snap, ok := m["resolved_manifest_snapshot"].(map[string]any); ok {
		snap["session_dir"] = "/" + markPath
	}
	out, err := json.Marshal(m)
	if err != nil {
		return doc
	}
	return out
}

// decodedStrings joins every key and string value of doc once decoded (so
// that JSON escapes are resolved), or is empty when doc is not JSON: it is
// what the fuzzer itself put where the projection may show it.
func decodedStrings(doc []byte) string {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return ""
	}
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			b.WriteString(x + "\x00")
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for k, e := range x {
				b.WriteString(k + "\x00")
				walk(e)
			}
		}
	}
	walk(v)
	return b.String()
}

// checkSafeWorker fails the test if a listed Worker is not a safe projection.
func checkSafeWorker(t *testing.T, w registry.Worker) {
	t.Helper()
	if !registry.ValidID(string(w.ID)) || !registry.ValidID(string(w.HostID)) || w.RuntimeID != compat.RuntimeID {
		t.Fatalf("worker ids invalid: %+v", w)
	}
	display := []string{w.Label, w.Implementation.DisplayHint}
	if w.Role != nil {
		display = append(display, *w.Role)
	}
	if w.Profile != nil {
		display = append(display, *w.Profile)
	}
	for _, s := range display {
		if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 80 || strings.ContainsAny(s, "/\\") || strings.ContainsFunc(s, unsafeRune) {
			t.Fatalf("display string %q of %s is not sanitized", s, w.ID)
		}
	}
	if w.Label == "" {
		t.Fatalf("empty label: %+v", w)
	}
}

// unsafeRune is a code point a display string must not hold: controls,
// format characters (Cf) and line/paragraph separators (Zl, Zp).
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Bidi_Control, unicode.Cf, unicode.Zl, unicode.Zp)
}
