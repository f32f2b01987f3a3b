// Package console holds the browser console's built files (dist/, written by
// `node build.mjs` from src/ and committed), embedded so that the server binary
// serves the console without Node. `make contract` checks that dist/ is what
// the sources build to.
package console

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Files returns the built console: index.html and the content-hashed assets
// it names, at the root of the returned file system.
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// fs.Sub fails only for an invalid path; "dist" is a constant.
		panic(err)
	}
	return sub
}
