// Package wrlocal opens a real Worker Runtime: the SQLite store, the process
// executor and the profiles file, wired together.
package wrlocal

import (
	"context"
	"errors"
	"log/slog"

	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// Config says where a local Runtime keeps its state and finds its profiles.
type Config struct {
	StateDir      string // created 0700 when missing; the DB is <StateDir>/worker-runtime.db
	ProfilesFile  string
	WorkspaceRoot string // must exist (a directory)
	MaxWorkers    int
	Logger        *slog.Logger
}

// Open opens the Runtime. Its errors are start-up errors for an operator.
func Open(ctx context.Context, cfg Config) (*workerruntime.Runtime, error) {
	return nil, errors.New("internal: not built yet")
}
