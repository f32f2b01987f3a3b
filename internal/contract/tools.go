package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// OasdiffModule is the pinned oasdiff command that judges breaking changes.
const OasdiffModule = "github.com/oasdiff/oasdiff@v1.37.0"

// Repo locates the files the checks work on. Every path is absolute or
// relative to Root; tests point single fields at temporary broken copies.
type Repo struct {
	// Root is the repository root (holding go.mod).
	Root string
	// Spec is the contract, normally api/openapi.yaml.
	Spec string
	// GoConfig is the oapi-codegen configuration, normally oapi-codegen.yaml.
	GoConfig string
	// GoGenerated is the committed Go code generated from Spec.
	GoGenerated string
	// ClientDir is the TypeScript client package (with its node_modules).
	ClientDir string
	// TSGenerated is the committed TypeScript schema generated from Spec.
	TSGenerated string
	// LintConfig is the Redocly configuration, normally redocly.yaml.
	LintConfig string
	// Released is the folder of released contract snapshots.
	Released string
	// Changelog is CHANGELOG.md.
	Changelog string
	// SnapshotPrefix names this contract's snapshots in Released:
	// <prefix>-v<N>.yaml ("openapi" for the browser contract).
	SnapshotPrefix string
	// ChangelogPrefix is what precedes a release's version in its CHANGELOG
	// heading ("" for the browser contract: "## 0.2.0"; "worker-runtime "
	// for the process contract: "## worker-runtime 0.1.0").
	ChangelogPrefix string
}

// DefaultRepo is the layout of this repository under root.
func DefaultRepo(root string) Repo {
	return Repo{
		Root:        root,
		Spec:        "api/openapi.yaml",
		GoConfig:    "oapi-codegen.yaml",
		GoGenerated: "internal/gen/api.gen.go",
		ClientDir:   "clients/typescript",
		TSGenerated: "clients/typescript/src/schema.d.ts",
		LintConfig:  "redocly.yaml",
		Released:    "api/released",
		Changelog:   "CHANGELOG.md",

		SnapshotPrefix: "openapi",
	}
}

// WorkerRuntimeRepo is the layout of the worker-runtime process contract
// (api/worker-runtime.yaml) under root: its own generated Go package, no
// TypeScript client, its own released snapshots and CHANGELOG headings.
func WorkerRuntimeRepo(root string) Repo {
	r := DefaultRepo(root)
	r.Spec = "api/worker-runtime.yaml"
	r.GoConfig = "oapi-codegen-worker-runtime.yaml"
	r.GoGenerated = "internal/gen/workerruntimeapi/api.gen.go"
	r.TSGenerated = ""
	r.SnapshotPrefix = "worker-runtime"
	r.ChangelogPrefix = "worker-runtime "
	return r
}

// snapshotPrefixes are the contracts whose snapshots share the Released
// folder; a file named for none of them is refused.
var snapshotPrefixes = []string{"openapi", "worker-runtime"}

// Path resolves p against Root.
func (r Repo) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Root, p)
}

func (r Repo) nodeBin(name string) string {
	return filepath.Join(r.Path(r.ClientDir), "node_modules", ".bin", name)
}

// run runs name with args in dir and returns its combined output; a non-zero
// exit is an error that carries the output.
func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	text := stripBanner(out.String())
	if err != nil {
		return text, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, text)
	}
	return text, nil
}

// stripBanner drops the boxed Node.js end-of-life banner Redocly prints.
func stripBanner(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "║") || strings.HasPrefix(t, "╔") || strings.HasPrefix(t, "╚") {
			continue
		}
		b.WriteString(line)
	}
	return strings.TrimSpace(b.String())
}

// Lint runs Redocly CLI on the spec with the lint configuration and fails if
// Redocly reports an error (recommended-strict makes every rule an error).
func (r Repo) Lint(ctx context.Context) (string, error) {
	return run(ctx, r.Root, r.nodeBin("redocly"), "lint", "--format", "codeframe",
		"--max-problems", "50", "--config", r.Path(r.LintConfig), r.Path(r.Spec))
}

// GenerateGo runs the pinned oapi-codegen (the go.mod tool) on the spec with
// the configuration, writing to out instead of the configured output.
func (r Repo) GenerateGo(ctx context.Context, out string) error {
	raw, err := os.ReadFile(r.Path(r.GoConfig))
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("parsing %s: %w", r.GoConfig, err)
	}
	cfg["output"] = out
	redirected, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgFile := out + ".oapi-codegen.yaml"
	if err := os.WriteFile(cfgFile, redirected, 0o600); err != nil {
		return err
	}
	defer func() { _ = os.Remove(cfgFile) }()
	_, err = run(ctx, r.Root, "go", "tool", "oapi-codegen", "-config", cfgFile, r.Path(r.Spec))
	return err
}

// GenerateTypeScript runs the pinned openapi-typescript on the spec, writing
// to out.
func (r Repo) GenerateTypeScript(ctx context.Context, out string) error {
	_, err := run(ctx, r.Path(r.ClientDir), r.nodeBin("openapi-typescript"), r.Path(r.Spec), "-o", out)
	return err
}

// Drift regenerates the Go and TypeScript code from the spec into tmpDir and
// compares it byte for byte with the committed files. It never writes to the
// working tree, so uncommitted work is safe. The error names each drifted
// file and its first differing line.
func (r Repo) Drift(ctx context.Context, tmpDir string) error {
	goOut := filepath.Join(tmpDir, "api.gen.go")
	tsOut := filepath.Join(tmpDir, "schema.d.ts")
	if err := r.GenerateGo(ctx, goOut); err != nil {
		return err
	}
	if r.TSGenerated == "" {
		// A contract without a TypeScript client (the worker-runtime one).
		return CompareFiles(r.Path(r.GoGenerated), goOut)
	}
	if err := r.GenerateTypeScript(ctx, tsOut); err != nil {
		return err
	}
	return errors.Join(
		CompareFiles(r.Path(r.GoGenerated), goOut),
		CompareFiles(r.Path(r.TSGenerated), tsOut),
	)
}

// CompareFiles returns nil if the committed file and the freshly generated
// one are identical, and otherwise an error naming the first differing line.
func CompareFiles(committed, generated string) error {
	want, err := os.ReadFile(generated)
	if err != nil {
		return err
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		return fmt.Errorf("%s: %w (run `make generate`)", committed, err)
	}
	if bytes.Equal(got, want) {
		return nil
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	i := 0
	for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
		i++
	}
	line := func(ls []string) string {
		if i < len(ls) {
			return strconv.Quote(truncate(ls[i], 160))
		}
		return "(end of file)"
	}
	return fmt.Errorf("%s differs from what the spec generates (run `make generate`): first difference at line %d\n  committed: %s\n  generated: %s",
		committed, i+1, line(gl), line(wl))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// BuildOasdiff builds the pinned oasdiff once into the Go build cache (`go run`
// caches the executable), so that later Breaking calls, even concurrent ones,
// only link it. The first build takes about a minute on a cold cache.
func (r Repo) BuildOasdiff(ctx context.Context) error {
	_, err := run(ctx, r.Root, "go", "run", OasdiffModule, "--version")
	return err
}

// Breaking runs oasdiff between the base (released) and the revised spec and
// fails on any ERR-level breaking change.
func (r Repo) Breaking(ctx context.Context, base, revision string) (string, error) {
	return run(ctx, r.Root, "go", "run", OasdiffModule, "breaking", "--fail-on", "ERR",
		"--allow-external-refs=false", "--color", "never", r.Path(base), r.Path(revision))
}

// Snapshot is one released contract in the Released folder.
type Snapshot struct {
	// Release is N of openapi-v<N>.yaml: the release's sequence number.
	Release int
	// Path is the snapshot's file.
	Path string
	// Version is the snapshot's info.version.
	Version string
}

var snapshotName = regexp.MustCompile(`^([a-z][a-z-]*)-v(0|[1-9][0-9]*)\.yaml$`)

// Snapshots lists this contract's released snapshots (<SnapshotPrefix>-v<N>.yaml)
// in release order, each loaded and validated. It fails if a file in the
// folder is named for no known contract, does not validate, or if
// info.version does not increase from one release to the next.
func (r Repo) Snapshots(ctx context.Context) ([]Snapshot, error) {
	entries, err := os.ReadDir(r.Path(r.Released))
	if err != nil {
		return nil, err
	}
	prefix := r.SnapshotPrefix
	if prefix == "" {
		prefix = "openapi"
	}
	var snaps []Snapshot
	for _, e := range entries {
		m := snapshotName.FindStringSubmatch(e.Name())
		if m == nil || !slices.Contains(snapshotPrefixes, m[1]) {
			return nil, fmt.Errorf("%s: a released snapshot must be named <contract>-v<N>.yaml, <contract> one of %s", e.Name(), strings.Join(snapshotPrefixes, ", "))
		}
		if m[1] != prefix {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		path := filepath.Join(r.Path(r.Released), e.Name())
		doc, err := LoadSpec(ctx, path)
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, Snapshot{Release: n, Path: path, Version: doc.Info.Version})
	}
	if len(snaps) == 0 {
		return nil, fmt.Errorf("%s holds no released snapshot", r.Released)
	}
	slices.SortFunc(snaps, func(a, b Snapshot) int { return a.Release - b.Release })
	for i := 1; i < len(snaps); i++ {
		if compareVersions(snaps[i-1].Version, snaps[i].Version) >= 0 {
			return nil, fmt.Errorf("release %d has info.version %s, not above release %d's %s",
				snaps[i].Release, snaps[i].Version, snaps[i-1].Release, snaps[i-1].Version)
		}
	}
	return snaps, nil
}

// CheckChangelog fails unless the changelog has a "## <version>" heading for
// every snapshot.
func (r Repo) CheckChangelog(snaps []Snapshot) error {
	raw, err := os.ReadFile(r.Path(r.Changelog))
	if err != nil {
		return err
	}
	headings := map[string]bool{}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "## "+r.ChangelogPrefix); ok {
			headings[strings.Fields(v + " ")[0]] = true
		}
	}
	var errs []error
	for _, s := range snaps {
		if !headings[s.Version] {
			errs = append(errs, fmt.Errorf("%s has no \"## %s%s\" entry for released snapshot %s", r.Changelog, r.ChangelogPrefix, s.Version, filepath.Base(s.Path)))
		}
	}
	return errors.Join(errs...)
}

// compareVersions compares dotted numeric versions ("0.1.0" < "0.2.0" <
// "0.10.0"); a non-numeric part compares as text.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		xi, xerr := strconv.Atoi(x)
		yi, yerr := strconv.Atoi(y)
		switch {
		case xerr == nil && yerr == nil && xi != yi:
			return xi - yi
		case (xerr != nil || yerr != nil) && x != y:
			return strings.Compare(x, y)
		}
	}
	return 0
}

// TypeCheck runs `tsc --noEmit` on the TypeScript client package.
func (r Repo) TypeCheck(ctx context.Context) (string, error) {
	return r.TypeCheckProject(ctx, r.Path(r.ClientDir))
}

// TypeCheckProject runs the client package's `tsc --noEmit` on the TypeScript
// project (a folder with a tsconfig.json, or the file itself).
func (r Repo) TypeCheckProject(ctx context.Context, project string) (string, error) {
	return run(ctx, r.Path(r.ClientDir), r.nodeBin("tsc"), "--noEmit", "-p", project)
}

// BuildClient compiles the TypeScript client package into its dist/.
func (r Repo) BuildClient(ctx context.Context) (string, error) {
	return run(ctx, r.Path(r.ClientDir), r.nodeBin("tsc"), "-p", ".")
}
