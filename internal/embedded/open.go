package embedded

import (
	"context"
	"log/slog"

	"github.com/workspace-backend/runtime-registry/internal/workerruntime/wrlocal"
)

// OpenConfig says where the embedded Runtime keeps its state and finds its
// profiles, and which workspace it serves.
type OpenConfig struct {
	// WorkspaceID names the workspace served; the host id is derived from it.
	WorkspaceID string
	// StateDir holds the Runtime's database; it is created (0700) when missing.
	StateDir string
	// ProfilesFile is the operator's profiles file (YAML).
	ProfilesFile string
	// WorkspaceRoot is the directory workers start in; it must exist.
	WorkspaceRoot string
	// MaxWorkers bounds the live workers; 0 means the Runtime's default (64).
	MaxWorkers int
	// Logger receives the Runtime's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Open opens the local Runtime (profiles, store with crash recovery,
// process executor) and returns the Source over it. Its errors are
// start-up errors for an operator (they may name the profiles file and the
// directories, never an env value); the caller Closes the Source.
func Open(ctx context.Context, cfg OpenConfig) (*Source, error) {
	rt, err := wrlocal.Open(ctx, wrlocal.Config{
		StateDir:      cfg.StateDir,
		ProfilesFile:  cfg.ProfilesFile,
		WorkspaceRoot: cfg.WorkspaceRoot,
		MaxWorkers:    cfg.MaxWorkers,
		Logger:        cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return New(rt, Config{WorkspaceID: cfg.WorkspaceID}), nil
}
