package handlers

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strconv"

	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/web/console"
)

// ConsoleCSP is the Content-Security-Policy of every console response: only
// this origin's scripts, styles and connections, no inline script or style,
// never framed.
const ConsoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// hashedAsset matches the names the console build gives its files
// (app-<hash>.js): their content never changes under that name, so browsers
// may keep them for a year.
var hashedAsset = regexp.MustCompile(`^[a-z]+-[0-9a-f]{8,64}\.(js|css|png)$`)

// assetTypes are the media types the contract declares for console assets.
var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".png": "image/png",
}

// consoleFiles is the built console this server serves: the option given to
// NewServer, else the files embedded from web/console/dist.
func (h *Handlers) consoleFiles() fs.FS {
	if h.console != nil {
		return h.console
	}
	return console.Files()
}

// consoleHeaders sets the headers every console answer carries, the 404
// problem included.
func consoleHeaders(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ConsoleCSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// consoleFile is one console file as an answer to either console operation.
type consoleFile struct {
	body         []byte
	contentType  string
	cacheControl string
}

func (f consoleFile) write(w http.ResponseWriter) error {
	consoleHeaders(w)
	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", f.cacheControl)
	hdr.Set("Content-Length", strconv.Itoa(len(f.body)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(f.body)
	return err
}

// VisitGetConsoleResponse writes the console page.
func (f consoleFile) VisitGetConsoleResponse(w http.ResponseWriter) error { return f.write(w) }

// VisitGetConsoleAssetResponse writes one console asset.
func (f consoleFile) VisitGetConsoleAssetResponse(w http.ResponseWriter) error { return f.write(w) }

// consoleProblem is a problem answer that carries the console's headers.
type consoleProblem struct{ problemResponse }

// VisitGetConsoleResponse writes the problem.
func (p consoleProblem) VisitGetConsoleResponse(w http.ResponseWriter) error {
	consoleHeaders(w)
	return p.write(w)
}

// VisitGetConsoleAssetResponse writes the problem.
func (p consoleProblem) VisitGetConsoleAssetResponse(w http.ResponseWriter) error {
	consoleHeaders(w)
	return p.write(w)
}

// GetConsole serves the console's page (`no-cache`: it names the current
// hashed assets). The `?token=` exchange for a cookie happens before routing
// when the server has an access token; here the token is not used.
func (h *Handlers) GetConsole(context.Context, gen.GetConsoleRequestObject) (gen.GetConsoleResponseObject, error) {
	body, err := fs.ReadFile(h.consoleFiles(), "index.html")
	if err != nil {
		// A server built without the console's files is a build defect.
		return consoleProblem{h.problem(&registry.Error{Code: registry.CodeInternal, Cause: errors.New("console: index.html is not embedded")})}, nil
	}
	return consoleFile{body: body, contentType: "text/html; charset=utf-8", cacheControl: "no-cache"}, nil
}

// GetConsoleAsset serves one built console file by name: a content-hashed
// name is cached for a year, anything else is revalidated; an unknown name
// (and index.html, which is served at /) is 404 not_found.
func (h *Handlers) GetConsoleAsset(_ context.Context, req gen.GetConsoleAssetRequestObject) (gen.GetConsoleAssetResponseObject, error) {
	name := req.Asset
	typ, known := assetTypes[path.Ext(name)]
	if !known || !fs.ValidPath(name) || name == "index.html" {
		return h.noAsset(), nil
	}
	body, err := fs.ReadFile(h.consoleFiles(), name)
	if err != nil {
		return h.noAsset(), nil
	}
	cache := "no-cache"
	if hashedAsset.MatchString(name) {
		cache = "public, max-age=31536000, immutable"
	}
	return consoleFile{body: body, contentType: typ, cacheControl: cache}, nil
}

func (h *Handlers) noAsset() consoleProblem {
	return consoleProblem{h.problem(&registry.Error{Code: registry.CodeNotFound, Detail: "No such console asset."})}
}
