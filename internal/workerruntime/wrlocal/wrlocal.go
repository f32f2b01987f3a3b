// Package wrlocal opens a real Worker Runtime: the SQLite store, the process
// executor and the profiles file, wired together.
package wrlocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/procexec"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/sqlitestore"
)

// DBFile is the database's file name inside the state directory.
const DBFile = "worker-runtime.db"

// Config says where a local Runtime keeps its state and finds its profiles.
type Config struct {
	StateDir      string // created 0700 when missing; the DB is <StateDir>/worker-runtime.db
	ProfilesFile  string
	WorkspaceRoot string // must exist (a directory)
	MaxWorkers    int
	Logger        *slog.Logger
}

// Open loads the profiles, checks the workspace root, creates the state
// directory (0700) when missing, opens the store (migrations, crash
// recovery) and the executor, and returns the Runtime; the caller Closes
// it. Its errors are start-up errors for an operator: they may name the
// profiles file and the directories, never an env value.
func Open(ctx context.Context, cfg Config) (*workerruntime.Runtime, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("worker runtime: a state directory is required")
	}
	if cfg.ProfilesFile == "" {
		return nil, errors.New("worker runtime: a profiles file is required")
	}
	if cfg.WorkspaceRoot == "" {
		return nil, errors.New("worker runtime: a workspace root is required")
	}
	if cfg.MaxWorkers < 0 {
		return nil, errors.New("worker runtime: max workers must be 0 (default) or more")
	}
	profiles, err := workerruntime.LoadProfiles(cfg.ProfilesFile)
	if err != nil {
		return nil, fmt.Errorf("worker runtime: %w", err)
	}
	root, err := filepath.Abs(cfg.WorkspaceRoot)
	if err != nil {
		return nil, fmt.Errorf("worker runtime: workspace root %s: %w", cfg.WorkspaceRoot, err)
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("worker runtime: workspace root %s: %w", root, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("worker runtime: workspace root %s is not a directory", root)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("worker runtime: state directory %s: %w", cfg.StateDir, err)
	}
	store, err := sqlitestore.Open(ctx, filepath.Join(cfg.StateDir, DBFile), sqlitestore.Options{})
	if err != nil {
		return nil, fmt.Errorf("worker runtime: store in %s: %w", cfg.StateDir, err)
	}
	exec := procexec.New()
	rt, err := workerruntime.Open(ctx, workerruntime.Options{
		Store:         store,
		Executor:      exec,
		Profiles:      profiles,
		WorkspaceRoot: root,
		MaxWorkers:    cfg.MaxWorkers,
		Logger:        cfg.Logger,
	})
	if err != nil {
		_ = exec.Close()
		_ = store.Close()
		return nil, fmt.Errorf("worker runtime: %w", err)
	}
	return rt, nil
}
