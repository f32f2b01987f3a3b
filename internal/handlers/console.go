package handlers

import (
	"context"

	"github.com/workspace-backend/runtime-registry/internal/gen"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// The browser console is not built into this server yet: its routes are in
// the contract and answer not_found until web/console lands.

// GetConsole answers not_found: no console is built in.
func (h *Handlers) GetConsole(context.Context, gen.GetConsoleRequestObject) (gen.GetConsoleResponseObject, error) {
	return h.problem(&registry.Error{Code: registry.CodeNotFound, Detail: "No console is built into this server."}), nil
}

// GetConsoleAsset answers not_found: no console is built in.
func (h *Handlers) GetConsoleAsset(context.Context, gen.GetConsoleAssetRequestObject) (gen.GetConsoleAssetResponseObject, error) {
	return h.problem(&registry.Error{Code: registry.CodeNotFound, Detail: "No such asset."}), nil
}
