package contract_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/contract"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
)

func TestSpecLoadsAndValidates(t *testing.T) {
	doc, err := contract.LoadSpec(t.Context(), repo(t).Path("api/openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	if len(contract.ProblemCodes(doc)) == 0 {
		t.Error("the spec declares no ProblemCode enum")
	}
}

// A spec that kin-openapi rejects must fail LoadSpec.
func TestLoadSpecRejectsAnInvalidSpec(t *testing.T) {
	spec := repo(t).Path("api/openapi.yaml")
	tests := []struct{ name, old, replacement string }{
		{"dangling $ref", "$ref: '#/components/schemas/Health'", "$ref: '#/components/schemas/NoSuchSchema'"},
		{"unknown type", "    Health:\n      type: object", "    Health:\n      type: objet"},
		{"external $ref", "$ref: '#/components/schemas/Health'", "$ref: 'other.yaml#/Health'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			broken := editedCopy(t, spec, t.TempDir(), "openapi.yaml", tc.old, tc.replacement)
			if _, err := contract.LoadSpec(t.Context(), broken); err == nil {
				t.Fatal("LoadSpec accepted a broken spec")
			}
		})
	}
}

func TestProblemTypePrefixIsTheServers(t *testing.T) {
	if handlers.ProblemTypePrefix != contract.ProblemTypePrefix {
		t.Fatalf("server prefix %q, contract prefix %q", handlers.ProblemTypePrefix, contract.ProblemTypePrefix)
	}
}

func TestNoAuthorityBearingNames(t *testing.T) {
	doc, err := contract.LoadSpec(t.Context(), repo(t).Path("api/openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if found := contract.ForbiddenNames(doc); len(found) > 0 {
		t.Fatalf("authority-bearing names in the contract: %v", found)
	}
}

func TestIsAuthorityName(t *testing.T) {
	forbidden := []string{
		"endpoint", "url", "uri", "token", "access_token", "refreshToken", "socket", "socket_path",
		"unixSocket", "session", "session_id", "sessionPath", "X-Session-Id", "callback", "callback_url",
		"onCallback", "data_dir", "dataDir", "workspace_root", "workspaceRoot", "metadata", "metadata_file",
		"metadataPath", "pod_path", "manifest_path", "base_url", "runtimeEndpoint", "api_key", "Authorization",
		"Cookie", "password", "client_secret", "credentials", "host", "port", "listen_address", "repo_dir",
	}
	allowed := []string{
		"runtime_id", "worker_id", "host_id", "host_ids", "workspace_id", "workspace", "workspace_scope",
		"has_workspace_fs", "label", "display_hint", "kind", "status", "state", "source", "note", "code",
		"severity", "message", "detail", "field", "type", "title", "error", "limit", "cursor", "next_cursor",
		"items", "diagnostics", "capabilities", "local_pod_inspection", "supports_worktrees", "os", "arch",
		"ETag", "If-None-Match", "Cache-Control", "mode", "content", "intent", "objective", "purpose", "role",
		"profile", "worker_name", "accepted", "identity_authority", "visibility", "identity",
	}
	for _, n := range forbidden {
		if !contract.IsAuthorityName(n) {
			t.Errorf("IsAuthorityName(%q) = false, want true", n)
		}
	}
	for _, n := range allowed {
		if contract.IsAuthorityName(n) {
			t.Errorf("IsAuthorityName(%q) = true, want false", n)
		}
	}
}

// Each deliberate violation, written into a copy of the contract that still
// validates, must be found.
func TestForbiddenNameCheckCatchesViolations(t *testing.T) {
	spec := repo(t).Path("api/openapi.yaml")
	tests := []struct {
		name, old, replacement, want string
	}{
		{
			"response schema property",
			"          description: Always `ok` when the server answers.\n          enum: [ok]\n",
			"          description: Always `ok` when the server answers.\n          enum: [ok]\n        data_dir:\n          type: string\n          description: leak\n",
			"data_dir",
		},
		{
			"query parameter",
			"    Cursor:\n      name: cursor\n",
			"    Cursor:\n      name: session_id\n",
			"session_id",
		},
		{
			"response header",
			"    PayloadTooLarge:\n      description: The request body is larger than 1 MiB (`payload_too_large`).\n",
			"    PayloadTooLarge:\n      description: The request body is larger than 1 MiB (`payload_too_large`).\n      headers:\n        X-Upstream-Endpoint:\n          description: leak\n          schema:\n            type: string\n",
			"X-Upstream-Endpoint",
		},
		{
			"nested request body property",
			"          description: The role to take (mainly with kind `role`).\n          minLength: 1\n          maxLength: 80\n",
			"          description: The role to take (mainly with kind `role`).\n          minLength: 1\n          maxLength: 80\n        callback_url:\n          type: string\n          description: leak\n",
			"callback_url",
		},
		{
			"camelCase property",
			"      required: [mode]\n      properties:\n",
			"      required: [mode]\n      properties:\n        workspaceRoot:\n          type: string\n          description: leak\n",
			"workspaceRoot",
		},
		{
			"property of an array item",
			"        arch:\n          type: string\n",
			"        socket_path:\n          type: array\n          description: leak\n          items:\n            type: object\n            properties:\n              metadata_file:\n                type: string\n        arch:\n          type: string\n",
			"metadata_file",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			broken := editedCopy(t, spec, t.TempDir(), "openapi.yaml", tc.old, tc.replacement)
			doc, err := contract.LoadSpec(t.Context(), broken)
			if err != nil {
				t.Fatalf("the violating copy must still validate: %v", err)
			}
			found := contract.ForbiddenNames(doc)
			if !slices.ContainsFunc(found, func(f contract.Finding) bool { return f.Name == tc.want }) {
				t.Fatalf("ForbiddenNames missed %q; found %v", tc.want, found)
			}
		})
	}
}

func TestSnapshotsAndChangelog(t *testing.T) {
	r := repo(t)
	snaps, err := r.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if snaps[0].Release != 0 || filepath.Base(snaps[0].Path) != "openapi-v0.yaml" {
		t.Errorf("the first release is %+v, want openapi-v0.yaml", snaps[0])
	}
	if err := r.CheckChangelog(snaps); err != nil {
		t.Fatal(err)
	}
}

// A snapshot without a CHANGELOG entry, a badly named snapshot, and a release
// whose version does not increase are each refused.
func TestSnapshotRulesCatchViolations(t *testing.T) {
	r := repo(t)
	v0 := r.Path("api/released/openapi-v0.yaml")

	t.Run("release without changelog entry", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, v0, dir)
		// 0.99.0 has no CHANGELOG entry.
		editedCopy(t, v0, dir, "openapi-v1.yaml", "  version: 0.1.0\n", "  version: 0.99.0\n")
		broken := r
		broken.Released = dir
		snaps, err := broken.Snapshots(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := broken.CheckChangelog(snaps); err == nil {
			t.Fatal("a release without a CHANGELOG entry was accepted")
		}
	})
	t.Run("badly named snapshot", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, v0, dir)
		editedCopy(t, v0, dir, "openapi-latest.yaml", "  version: 0.1.0\n", "  version: 0.2.0\n")
		broken := r
		broken.Released = dir
		if _, err := broken.Snapshots(t.Context()); err == nil {
			t.Fatal("a badly named snapshot was accepted")
		}
	})
	t.Run("version does not increase", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, v0, dir)
		copyFile(t, v0, dir)
		editedCopy(t, v0, dir, "openapi-v1.yaml", "  version: 0.1.0\n", "  version: 0.1.0\n")
		broken := r
		broken.Released = dir
		if _, err := broken.Snapshots(t.Context()); err == nil {
			t.Fatal("a release with the same version was accepted")
		}
	})
}
