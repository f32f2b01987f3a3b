package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/getkin/kin-openapi/openapi3filter"
)

// The console's page and assets are declared as plain strings; kin-openapi
// has no decoder for their media types, so the response checks read them as
// such (the strings are not otherwise constrained).
func init() {
	for _, typ := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(typ, openapi3filter.FileBodyDecoder)
	}
}

// ConsoleDir is the browser console's package, relative to the repository
// root: its sources, build.mjs, node_modules (pinned esbuild) and the
// committed build in dist/.
const ConsoleDir = "web/console"

// ConsoleDrift rebuilds the browser console into tmpDir with the pinned
// esbuild and compares the result with the committed dist/: the same file
// names (the hashes name the content) and the same bytes. It never writes to
// the working tree. The error names each difference and says how to fix it.
func (r Repo) ConsoleDrift(ctx context.Context, tmpDir string) error {
	dir := r.Path(ConsoleDir)
	if _, err := run(ctx, dir, "node", "build.mjs", tmpDir); err != nil {
		return err
	}
	return CompareDirs(filepath.Join(dir, "dist"), tmpDir)
}

// CompareDirs returns nil when the committed directory holds exactly the
// files of the built one with the same contents, and otherwise an error
// naming every missing, extra or differing file.
func CompareDirs(committed, built string) error {
	names := func(dir string) ([]string, error) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		slices.Sort(out)
		return out, nil
	}
	want, err := names(built)
	if err != nil {
		return err
	}
	got, err := names(committed)
	if err != nil {
		return fmt.Errorf("%s: %w (run `make console`)", committed, err)
	}
	var errs []error
	for _, n := range want {
		if !slices.Contains(got, n) {
			errs = append(errs, fmt.Errorf("%s lacks %s, which the sources build to (run `make console`)", committed, n))
			continue
		}
		a, err := os.ReadFile(filepath.Join(committed, n))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(built, n))
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			errs = append(errs, fmt.Errorf("%s differs from what the sources build to (run `make console`)", filepath.Join(committed, n)))
		}
	}
	for _, n := range got {
		if !slices.Contains(want, n) {
			errs = append(errs, fmt.Errorf("%s is not part of the current build (run `make console`)", filepath.Join(committed, n)))
		}
	}
	return errors.Join(errs...)
}
