package main

import (
	"context"
	"log/slog"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/remote"
)

// remoteRuntimes loads the --runtimes file (none when path is "") and
// builds one registry source per remote Worker Runtime, in file order. The
// file's errors name the entry and field, never a URL or token.
func remoteRuntimes(path string, getenv func(string) string, log *slog.Logger) ([]*remote.Source, error) {
	if path == "" {
		return nil, nil
	}
	cfg, err := remote.LoadConfig(path, getenv)
	if err != nil {
		return nil, err
	}
	log.Info("remote runtimes configured", slog.Any("runtime_ids", cfg))
	return remote.Open(cfg, remote.Options{Logger: log, HostID: compat.Bounded}), nil
}

// startRemotes starts every remote source (a first probe each, in
// parallel; an unreachable one is listed unavailable, never fatal) and
// returns the function that closes them at shutdown.
func startRemotes(ctx context.Context, sources []*remote.Source) func() {
	done := make(chan struct{}, len(sources))
	for _, s := range sources {
		go func() { _ = s.Start(ctx); done <- struct{}{} }()
	}
	for range sources {
		<-done
	}
	return func() {
		for _, s := range sources {
			_ = s.Close(context.Background())
		}
	}
}

// registrySources appends the remote sources to the backend's own.
func registrySources(out []registry.Source, remotes []*remote.Source) []registry.Source {
	for _, s := range remotes {
		out = append(out, s)
	}
	return out
}
