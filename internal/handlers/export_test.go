package handlers

import (
	"net/http"
	"slices"

	"github.com/workspace-backend/runtime-registry/api"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// NewServerFullValidation is NewServer with the validation fast path off:
// every request goes through kin-openapi.
func NewServerFullValidation(reg *registry.Registry, opts ServerOptions) (http.Handler, error) {
	return newServer(reg, opts, func(v *requestValidator) { v.fast = nil })
}

// NewServerCountingFastPath is NewServer that calls onFast for every request
// its fast path admits.
func NewServerCountingFastPath(reg *registry.Registry, opts ServerOptions, onFast func()) (http.Handler, error) {
	return newServer(reg, opts, func(v *requestValidator) { v.onFast = onFast })
}

// FastPathOperationIDs are the ids of the contract's operations that have a
// validation fast path, sorted.
func FastPathOperationIDs() ([]string, error) {
	doc, err := api.Load()
	if err != nil {
		return nil, err
	}
	doc.Servers = nil
	clearSecurity(doc)
	v := newRequestValidator(doc, nil, DefaultMaxBodyBytes)
	var ids []string
	for op := range v.fast {
		ids = append(ids, op.OperationID)
	}
	slices.Sort(ids)
	return ids, nil
}

// NewServerUncheckedHeaders is NewServer with a broken fast path that
// admits any header value: the equivalence property must catch it.
func NewServerUncheckedHeaders(reg *registry.Registry, opts ServerOptions) (http.Handler, error) {
	return newServer(reg, opts, func(v *requestValidator) {
		for _, fp := range v.fast {
			fp.headers = nil
		}
	})
}

// NewServerUnboundedQueries is NewServer with a broken fast path that
// forgets the bounds of integer query parameters: the equivalence property
// must catch it.
func NewServerUnboundedQueries(reg *registry.Registry, opts ServerOptions) (http.Handler, error) {
	return newServer(reg, opts, func(v *requestValidator) {
		for _, fp := range v.fast {
			for name, q := range fp.query {
				q.min, q.max = nil, nil
				fp.query[name] = q
			}
		}
	})
}
