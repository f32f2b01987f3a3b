package compat

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// The diagnostic codes of this source (see DESIGN.md, "Local compatibility
// source"). Their messages never carry a path, a pod directory name or a
// session: at most a worker_id, which is itself a safe projection.
const (
	// DiagRegistryUnavailable reports that no data dir is configured.
	DiagRegistryUnavailable = "local_pod_registry_unavailable"
	// DiagRegistryUnreadable reports that <data-dir>/pods is missing or unreadable.
	DiagRegistryUnreadable = "local_pod_registry_unreadable"
	// DiagMetadataUnreadable reports a pod whose metadata.json is missing, not
	// a regular file, behind a symlink, or cannot be read.
	DiagMetadataUnreadable = "local_pod_metadata_unreadable"
	// DiagMetadataInvalid reports a metadata.json over 1 MiB or not valid metadata JSON.
	DiagMetadataInvalid = "local_pod_metadata_invalid"
	// DiagWorkspaceRootMissing reports a pod that names no workspace_root; it is not listed.
	DiagWorkspaceRootMissing = "local_pod_workspace_root_missing"
	// DiagWorkspaceNotVisible reports (as info) how many pods of other workspaces were skipped.
	DiagWorkspaceNotVisible = "local_pod_workspace_not_visible"
	// DiagMetadataStale reports a pod whose metadata disagrees with its
	// directory; it is still listed under the directory-derived id.
	DiagMetadataStale = "local_pod_metadata_stale"
)

const (
	// diagDiagnosticsTruncated is the code the registry uses for its own
	// diagnostics cap; using the same one keeps a cut list recognisable.
	diagDiagnosticsTruncated  = "diagnostics_truncated"
	metadataFileName          = "metadata.json"
	podsDirName               = "pods"
	maxMetadataBytes          = 1 << 20
	metadataUnreadableMessage = "The metadata of local worker %s cannot be read; it is not listed."
)

// storeState is the condition of the store as a whole at scan time.
type storeState int

const (
	storeOK         storeState = iota
	storeNoDataDir             // no data dir configured
	storeUnreadable            // <data-dir>/pods missing or unreadable
)

// entry is what a lookup by worker_id finds.
type entry struct {
	worker registry.Worker
	// visible is false for a pod of another workspace: it exists, so a lookup
	// answers worker_not_visible rather than unknown_worker.
	visible bool
}

// snapshot is the result of one scan. It is never modified after scan
// returns, so it can be shared by concurrent calls (and, later, cached).
type snapshot struct {
	state storeState
	// cause is the raw error behind storeUnreadable; it may hold a path and
	// only ever travels in registry.Error.Cause.
	cause error
	// workers are the listed Workers, ascending by id (byte order).
	workers []registry.Worker
	// byID holds every pod with a usable projection, including those of other
	// workspaces.
	byID  map[registry.WorkerID]entry
	diags []registry.Diagnostic
}

// scanConfig is the part of the Source configuration a scan depends on.
type scanConfig struct {
	dataDir string
	root    string // normalized workspace root; "" matches nothing
	hostID  registry.HostID
	log     *slog.Logger
}

// scan reads the store once and projects it. It depends only on cfg and the
// filesystem, which is what lets an index with revalidation be put in front
// of it later.
func scan(cfg scanConfig) *snapshot {
	snap := &snapshot{byID: map[registry.WorkerID]entry{}}
	if cfg.dataDir == "" {
		snap.state = storeNoDataDir
		snap.diags = []registry.Diagnostic{unavailableDiagnostic()}
		return snap
	}
	podsDir := filepath.Join(cfg.dataDir, podsDirName)
	ents, err := os.ReadDir(podsDir)
	if err != nil {
		reason := "unreadable"
		if errors.Is(err, fs.ErrNotExist) {
			reason = "missing"
		}
		cfg.log.Debug("local pod store unreadable", "reason", reason)
		snap.state = storeUnreadable
		snap.cause = err
		snap.diags = []registry.Diagnostic{unreadableDiagnostic()}
		return snap
	}

	var warnings []registry.Diagnostic
	hidden := 0
	for _, de := range ents {
		name := de.Name()
		id := WorkerIDFor(name)
		warn := func(code, reason, format string) {
			cfg.log.Debug("local pod not listed", "worker_id", string(id), "reason", reason)
			warnings = append(warnings, registry.Diagnostic{
				Code: code, Severity: registry.SeverityWarning, Message: fmt.Sprintf(format, id),
			})
		}
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			// A symlinked pod directory could point anywhere: it is never
			// followed, but it looks like a pod, so say it was skipped.
			warn(DiagMetadataUnreadable, "pod_dir_symlink", metadataUnreadableMessage)
			continue
		case !de.IsDir():
			// Stray files next to the pods are not pods.
			continue
		}
		m, prob := readPod(podsDir, name)
		if prob != nil {
			warn(prob.code, prob.reason, prob.message)
			continue
		}
		if m.WorkspaceRoot == "" {
			warn(DiagWorkspaceRootMissing, "workspace_root_missing",
				"Local worker %s names no workspace; it is not listed.")
			continue
		}
		w := project(name, m, cfg.hostID)
		if cfg.root == "" || normalizeRoot(m.WorkspaceRoot) != cfg.root {
			// Counted, not named: another workspace's workers are not this
			// caller's business beyond the fact that some were skipped.
			cfg.log.Debug("local pod not listed", "worker_id", string(id), "reason", "other_workspace")
			hidden++
			snap.byID[id] = entry{worker: w, visible: false}
			continue
		}
		if m.WorkerName != "" && m.WorkerName != name {
			cfg.log.Debug("local pod metadata stale", "worker_id", string(id), "reason", "worker_name_mismatch")
			warnings = append(warnings, registry.Diagnostic{
				Code: DiagMetadataStale, Severity: registry.SeverityWarning,
				Message: fmt.Sprintf("The metadata of local worker %s disagrees with its directory; it is listed under the directory-derived id.", id),
			})
		}
		snap.byID[id] = entry{worker: w, visible: true}
		snap.workers = append(snap.workers, w)
	}
	slices.SortFunc(snap.workers, func(a, b registry.Worker) int { return cmp.Compare(a.ID, b.ID) })

	diags := warnings
	if hidden > 0 {
		msg := "1 local worker of another workspace is not listed."
		if hidden > 1 {
			msg = fmt.Sprintf("%d local workers of other workspaces are not listed.", hidden)
		}
		diags = append(diags, registry.Diagnostic{Code: DiagWorkspaceNotVisible, Severity: registry.SeverityInfo, Message: msg})
	}
	snap.diags = capDiagnostics(diags)
	return snap
}

// capDiagnostics keeps a store full of broken pods from producing unbounded
// diagnostics on every page. It cuts the way the registry does, so the
// registry's own cap sees an already-marked list and leaves it as is.
func capDiagnostics(ds []registry.Diagnostic) []registry.Diagnostic {
	if len(ds) <= registry.MaxDiagnostics {
		return ds
	}
	out := slices.Clone(ds[:registry.MaxDiagnostics-1])
	return append(out, registry.Diagnostic{
		Code: diagDiagnosticsTruncated, Severity: registry.SeverityInfo,
		Message: fmt.Sprintf("More diagnostics were found; only the first %d are shown.", registry.MaxDiagnostics-1),
	})
}

func unavailableDiagnostic() registry.Diagnostic {
	return registry.Diagnostic{Code: DiagRegistryUnavailable, Severity: registry.SeverityWarning,
		Message: "No local pod data directory is configured; local workers cannot be listed."}
}

func unreadableDiagnostic() registry.Diagnostic {
	return registry.Diagnostic{Code: DiagRegistryUnreadable, Severity: registry.SeverityWarning,
		Message: "The local pod store is missing or cannot be read; local workers cannot be listed."}
}

// podProblem says why one pod could not be read. message is a format with one
// %s for the worker id; cause may hold a path and is never shown or logged.
type podProblem struct {
	code    string
	reason  string
	message string
	cause   error
}

func unreadable(reason string, cause error) *podProblem {
	return &podProblem{code: DiagMetadataUnreadable, reason: reason, message: metadataUnreadableMessage, cause: cause}
}

func invalid(reason string, cause error) *podProblem {
	return &podProblem{code: DiagMetadataInvalid, reason: reason,
		message: "The metadata of local worker %s is not valid; it is not listed.", cause: cause}
}

// readPod reads and decodes the metadata of the pod directory name under
// podsDir. It never follows a symlink, never blocks on a special file and
// never reads more than 1 MiB + 1 byte.
func readPod(podsDir, name string) (*podMetadata, *podProblem) {
	data, prob := readMetadataFile(filepath.Join(podsDir, name))
	if prob != nil {
		return nil, prob
	}
	m, err := parseMetadata(data)
	if err != nil {
		return nil, invalid("json", err)
	}
	return m, nil
}
