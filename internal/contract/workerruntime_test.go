package contract_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/workspace-backend/runtime-registry/internal/contract"
	"github.com/workspace-backend/runtime-registry/internal/runtimehttp"
)

// The worker-runtime process contract (api/worker-runtime.yaml) gets the
// same checks as the browser contract.

func runtimeRepo(t testing.TB) contract.Repo { return contract.WorkerRuntimeRepo(repoRoot(t)) }

func loadRuntimeSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := contract.LoadSpec(t.Context(), runtimeRepo(t).Path("api/worker-runtime.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestWorkerRuntimeSpecLoadsAndValidates(t *testing.T) {
	doc := loadRuntimeSpec(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	if doc.Components.SecuritySchemes["bearerAuth"] == nil {
		t.Error("no bearerAuth security scheme")
	}
	// Every schema is closed.
	for name, ref := range doc.Components.Schemas {
		v := ref.Value
		if v.Type.Is("object") && (v.AdditionalProperties.Has == nil || *v.AdditionalProperties.Has) && len(v.Properties) > 0 {
			t.Errorf("schema %s is not closed (additionalProperties: false)", name)
		}
	}
}

// Same problem codes, and the same Problem shape, as the browser contract.
func TestWorkerRuntimeProblemsMatchTheBrowsers(t *testing.T) {
	rt := loadRuntimeSpec(t)
	browser, err := contract.LoadSpec(t.Context(), repo(t).Path("api/openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := contract.ProblemCodes(rt), contract.ProblemCodes(browser); !slices.Equal(a, b) {
		t.Errorf("problem codes differ:\n runtime %v\n browser %v", a, b)
	}
	rp, bp := rt.Components.Schemas["Problem"].Value, browser.Components.Schemas["Problem"].Value
	if !slices.Equal(rp.Required, bp.Required) {
		t.Errorf("Problem.required differs: %v vs %v", rp.Required, bp.Required)
	}
	for name := range bp.Properties {
		if rp.Properties[name] == nil {
			t.Errorf("the runtime's Problem lacks %s", name)
		}
	}
	for name := range rp.Properties {
		if bp.Properties[name] == nil {
			t.Errorf("the runtime's Problem has %s, the browser's does not", name)
		}
	}
	if runtimehttp.ProblemTypePrefix != contract.ProblemTypePrefix {
		t.Errorf("runtime prefix %q, contract prefix %q", runtimehttp.ProblemTypePrefix, contract.ProblemTypePrefix)
	}
}

func TestWorkerRuntimeHasNoAuthorityBearingNames(t *testing.T) {
	if found := contract.ForbiddenNames(loadRuntimeSpec(t)); len(found) > 0 {
		t.Fatalf("authority-bearing names in the worker-runtime contract: %v", found)
	}
}

// A response field that names an address or a token is caught.
func TestWorkerRuntimeForbiddenNameCheckCatchesViolations(t *testing.T) {
	spec := runtimeRepo(t).Path("api/worker-runtime.yaml")
	for _, name := range []string{"listen_address", "token_file", "state_dir"} {
		t.Run(name, func(t *testing.T) {
			broken := editedCopy(t, spec, t.TempDir(), "worker-runtime.yaml",
				"        instance_id:\n          $ref: '#/components/schemas/Identifier'\n",
				"        instance_id:\n          $ref: '#/components/schemas/Identifier'\n        "+name+":\n          type: string\n          description: leak\n")
			doc, err := contract.LoadSpec(t.Context(), broken)
			if err != nil {
				t.Fatalf("the violating copy must still validate: %v", err)
			}
			if found := contract.ForbiddenNames(doc); !slices.ContainsFunc(found, func(f contract.Finding) bool { return f.Name == name }) {
				t.Fatalf("missed %s; found %v", name, found)
			}
		})
	}
}

func TestWorkerRuntimeSnapshotsAndChangelog(t *testing.T) {
	r := runtimeRepo(t)
	snaps, err := r.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if snaps[0].Release != 0 || !strings.HasSuffix(snaps[0].Path, "worker-runtime-v0.yaml") {
		t.Errorf("the first release is %+v", snaps[0])
	}
	if err := r.CheckChangelog(snaps); err != nil {
		t.Fatal(err)
	}
	// The browser contract's snapshots are not mixed in.
	for _, s := range snaps {
		if strings.Contains(s.Path, "openapi-v") {
			t.Errorf("a browser snapshot was taken for the runtime's: %s", s.Path)
		}
	}
}

func TestWorkerRuntimeSpecLintsClean(t *testing.T) {
	requireTools(t)
	t.Parallel()
	if out, err := runtimeRepo(t).Lint(t.Context()); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "valid") {
		t.Fatalf("unexpected Redocly output:\n%s", out)
	}
}

func TestWorkerRuntimeGeneratedCodeIsReproducible(t *testing.T) {
	requireTools(t)
	t.Parallel()
	if err := runtimeRepo(t).Drift(t.Context(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	// And a hand edit is caught.
	r := runtimeRepo(t)
	r.GoGenerated = editedCopy(t, r.Path(r.GoGenerated), t.TempDir(), "api.gen.go", "package workerruntimeapi\n", "package workerruntimeapi\n\n// hand edit\n")
	if err := r.Drift(t.Context(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "differs from what the spec generates") {
		t.Fatalf("drift not caught: %v", err)
	}
}

func TestWorkerRuntimeNoBreakingChangeSinceTheLastRelease(t *testing.T) {
	requireTools(t)
	t.Parallel()
	r := runtimeRepo(t)
	if out, err := r.Breaking(t.Context(), newestRuntimeSnapshot(t, r), r.Spec); err != nil {
		t.Fatalf("api/worker-runtime.yaml breaks its released contract:\n%v", err)
	} else {
		t.Log(out)
	}
	// A removed route is caught.
	rev := editedCopy(t, r.Path(r.Spec), t.TempDir(), "worker-runtime.yaml", "  /v1/runtime:\n", "  /v1/runtime-renamed:\n")
	if _, err := r.Breaking(t.Context(), newestRuntimeSnapshot(t, r), rev); err == nil {
		t.Fatal("oasdiff passed a removed route")
	}
}

func newestRuntimeSnapshot(t *testing.T, r contract.Repo) string {
	t.Helper()
	if err := oasdiffBuilt(); err != nil {
		t.Fatal(err)
	}
	snaps, err := r.Snapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return snaps[len(snaps)-1].Path
}
