package compat

import (
	"bytes"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// podMetadata is the part of a pod's metadata.json this source understands.
// Fields whose JSON type is fixed are typed, so that a wrong type fails the
// decode (and the pod is reported invalid) instead of being guessed at; the
// fields that are known but not projected are kept raw and never inspected.
type podMetadata struct {
	WorkerName string `json:"worker_name"`
	// Active is nil when the pod has no active session (absent or null).
	Active        *activeSession `json:"active"`
	WorkspaceRoot string         `json:"workspace_root"`
	// SpawnedChildren and Peers are private to the local Worker system: they
	// are never projected, so their shape is not checked either.
	SpawnedChildren json.RawMessage   `json:"spawned_children"`
	Peers           json.RawMessage   `json:"peers"`
	Manifest        *manifestSnapshot `json:"resolved_manifest_snapshot"`
}

// activeSession is the "active" object. SessionID is decoded only so that a
// wrong type is caught; it is private and never projected.
type activeSession struct {
	SessionID string `json:"session_id"`
	SegmentID string `json:"segment_id"`
}

// manifestSnapshot holds the display fields of resolved_manifest_snapshot.
type manifestSnapshot struct {
	Role            nameRef    `json:"role"`
	RoleClaim       *roleClaim `json:"role_claim"`
	ProfileSelector nameRef    `json:"profile_selector"`
	Profile         nameRef    `json:"profile"`
}

type roleClaim struct {
	Role nameRef `json:"role"`
}

// nameRef is a manifest name that the local Worker system writes either as a
// plain string or as an object {"name": "..."}; null or absent is empty.
type nameRef string

var errNameRef = errors.New("compat: a name must be a string or an object with a string name")

// UnmarshalJSON accepts a string, {"name": string} or null, and rejects every
// other JSON type so the pod is reported invalid rather than misread.
func (n *nameRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errNameRef
	}
	switch b[0] {
	case 'n':
		// null: encoding/json asks Unmarshalers to treat it as a no-op.
		if string(b) != "null" {
			return errNameRef
		}
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = nameRef(s)
		return nil
	case '{':
		var o struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*n = nameRef(o.Name)
		return nil
	default:
		return errNameRef
	}
}

// errNotObject reports metadata whose top level is not a JSON object (null
// decodes into a struct without error and would otherwise pass as empty).
var errNotObject = errors.New("compat: metadata is not a JSON object")

// parseMetadata decodes one metadata.json. Any error means the pod is invalid.
func parseMetadata(data []byte) (*podMetadata, error) {
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, errNotObject
	}
	var m podMetadata
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// maxDisplayRunes bounds every display string, as the contract does.
const maxDisplayRunes = 80

// sanitizeDisplay makes a store string safe to show: control characters,
// format characters (Unicode Cf: bidirectional-text controls, zero-width
// characters, U+FEFF, the soft hyphen, the tag characters U+E0000–E007F, …),
// line and paragraph separators (Zl, Zp), '/' and '\' (so a display string
// never looks like a path) and invalid UTF-8 are dropped, surrounding white
// space is trimmed, and at most 80 code points are kept.
func sanitizeDisplay(s string) string {
	if displaySafe(s) {
		// Nothing to change: keep the string itself, no copy (the index
		// holds one per pod).
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		// Invalid bytes decode as RuneError; encoding/json has already turned
		// those inside JSON strings into a literal U+FFFD. Neither says
		// anything worth showing, so both are dropped.
		if r == utf8.RuneError {
			continue
		}
		if hiddenRune(r) || r == '/' || r == '\\' {
			continue
		}
		b.WriteRune(r)
	}
	out := strings.TrimSpace(b.String())
	if utf8.RuneCountInString(out) > maxDisplayRunes {
		n := 0
		for i := range out {
			if n == maxDisplayRunes {
				out = strings.TrimSpace(out[:i])
				break
			}
			n++
		}
	}
	return out
}

// hiddenRune reports whether r is a code point a display string never
// keeps: a control character, a format character (Cf: invisible, yet it can
// reorder, join, hide or tag text, so a label reads as something it is not;
// the bidi controls U+202A–202E and U+2066–2069 are among them) or a line or
// paragraph separator (Zl, Zp: a line break that is not a control character).
func hiddenRune(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Bidi_Control)
}

// displaySafe reports whether sanitizeDisplay would return s unchanged:
// printable ASCII other than '/' and '\', no surrounding space, at most 80
// bytes. Anything else takes the slow path.
func displaySafe(s string) bool {
	if len(s) > maxDisplayRunes || (len(s) > 0 && (s[0] == ' ' || s[len(s)-1] == ' ')) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}

// optionalDisplay returns the first of names that is non-empty once
// sanitized, or nil: an empty role or profile is reported as null. Equal
// values share one *string (roles and profiles repeat across thousands of
// pods); the Workers that hold them are never modified.
func optionalDisplay(names ...nameRef) *string {
	for _, n := range names {
		if s := sanitizeDisplay(string(n)); s != "" {
			return intern(s)
		}
	}
	return nil
}

// interned holds the shared *string of each role and profile seen, up to
// maxInterned distinct values (beyond that each Worker gets its own).
var interned = struct {
	sync.Mutex
	m map[string]*string
}{m: map[string]*string{}}

const maxInterned = 4096

func intern(s string) *string {
	interned.Lock()
	defer interned.Unlock()
	if p, ok := interned.m[s]; ok {
		return p
	}
	p := &s
	if len(interned.m) < maxInterned {
		interned.m[s] = p
	}
	return p
}

// normalizeRoot makes two spellings of a workspace root comparable without
// touching the filesystem: '\' becomes '/' and trailing '/' are removed (the
// root directory itself stays "/"). Symlinks are deliberately not resolved:
// resolving would make visibility depend on the live filesystem layout.
func normalizeRoot(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	if t := strings.TrimRight(p, "/"); t != "" || p == "" {
		return t
	}
	return "/"
}

// hostLabel is the display label of the host: the last element of the
// workspace root, or "workspace" when there is none.
func hostLabel(workspaceRoot string) string {
	root := normalizeRoot(workspaceRoot)
	if root == "" {
		return "workspace"
	}
	base := sanitizeDisplay(path.Base(root))
	if base == "" || base == "/" || base == "." {
		return "workspace"
	}
	return base
}

// Worker statuses of the local projection.
const (
	statusActiveSegment        = "active:segment"
	statusActivePendingSegment = "active:pending_segment"
	statusMetadataOnly         = "metadata_only"
)

// project builds the compact projection of one pod (see entry): only display
// strings are taken from the metadata; the id comes from the pod directory
// name.
func project(podName string, m *podMetadata) *entry {
	hint := sanitizeDisplay(podName)
	label := sanitizeDisplay(m.WorkerName)
	if label == "" || label == hint {
		label = hint // one string for both
	}
	if label == "" {
		label = "worker"
	}
	e := &entry{id: WorkerIDFor(podName), hint: hint, status: stMetadataOnly}
	if label != hint {
		e.label = label
	}
	if m.Manifest != nil {
		var claimed nameRef
		if m.Manifest.RoleClaim != nil {
			claimed = m.Manifest.RoleClaim.Role
		}
		e.role = optionalDisplay(m.Manifest.Role, claimed)
		e.profile = optionalDisplay(m.Manifest.ProfileSelector, m.Manifest.Profile)
	}
	if m.Active != nil {
		e.status = stActivePendingSegment
		if m.Active.SegmentID != "" {
			e.status = stActiveSegment
		}
	}
	return e
}

// workerStatus is the state and status of a projected pod, in one byte.
type workerStatus uint8

const (
	stMetadataOnly workerStatus = iota
	stActivePendingSegment
	stActiveSegment
)

// noDiagnostics is the Diagnostics of a Worker without any: empty, never nil,
// and shared (capacity 0, so an append copies).
var noDiagnostics = []registry.Diagnostic{}

// worker builds the browser-safe Worker of e on the host hostID. It
// allocates nothing: every string and slice it holds is e's (and immutable).
func (e *entry) worker(hostID registry.HostID) registry.Worker {
	w := registry.Worker{
		ID:        e.id,
		RuntimeID: RuntimeID,
		HostID:    hostID,
		Label:     e.labelOrHint(),
		Role:      e.role,
		Profile:   e.profile,
		State:     registry.WorkerMetadataOnly,
		Status:    statusMetadataOnly,
		Workspace: registry.WorkerWorkspace{
			Visibility: registry.WorkspaceScopeCurrent,
			Identity:   "runtime_workspace",
		},
		Implementation: registry.WorkerImplementation{
			Kind:        registry.ImplementationLocalPod,
			DisplayHint: e.hint,
		},
		// The backend can read a local pod's metadata and stream its changes
		// (from the index) but has no route to its process: stop, input,
		// transcript and follow-up spawns all stay false.
		Capabilities: registry.WorkerCapabilities{CanGetWorker: true, CanStreamEvents: true},
		// A local pod does not say when it was last seen.
		LastSeenAt:  nil,
		Diagnostics: noDiagnostics,
	}
	if e.diag != nil {
		w.Diagnostics = e.diag[:]
	}
	switch e.status {
	case stActivePendingSegment:
		w.State, w.Status = registry.WorkerActive, statusActivePendingSegment
	case stActiveSegment:
		w.State, w.Status = registry.WorkerActive, statusActiveSegment
	}
	return w
}
