// Command worker-runtime serves one Worker Runtime over HTTP
// (api/worker-runtime.yaml) to a trusted Workspace Backend: it opens the
// Runtime's store in --state-dir, runs Workers of the operator's --profiles,
// checks a bearer token on every /v1 route, and on SIGINT or SIGTERM stops
// listening, ends its event streams and stops its Workers before it exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/runtimehttp"
	"github.com/workspace-backend/runtime-registry/internal/serveutil"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/wrlocal"
)

// version is the build's version, answered in GET /v1/runtime; release
// builds set it with -ldflags "-X main.version=...".
var version = "dev"

// config is everything the process is told at start-up.
type config struct {
	Listen        string
	StateDir      string
	Profiles      string
	WorkspaceRoot string
	Label         string
	MaxWorkers    int
	TokenFile     string
	LogLevel      slog.Level
	// token is the token file's trimmed content (never logged).
	token string
}

// envPrefix prefixes the environment variable of each flag:
// --state-dir is WORKER_RUNTIME_STATE_DIR.
const envPrefix = "WORKER_RUNTIME_"

func envName(flagName string) string { return serveutil.EnvName(envPrefix, flagName) }

// usageError is a configuration the process refuses: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// parseConfig reads flags, each of which may also be set by its environment
// variable (a flag on the command line wins), checks them, and reads the
// token file. Every error is a usageError with one line of text.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "."
	}
	cfg := config{}
	fs := flag.NewFlagSet("worker-runtime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8181", "address to listen on (host:port)")
	fs.StringVar(&cfg.StateDir, "state-dir", "", "directory of the Runtime's database (required; created 0700 when missing)")
	fs.StringVar(&cfg.Profiles, "profiles", "", "the operator's profiles file, YAML (required)")
	fs.StringVar(&cfg.WorkspaceRoot, "workspace-root", cwd, "directory Workers start in")
	fs.StringVar(&cfg.Label, "label", "Worker runtime", "display name answered in GET /v1/runtime")
	fs.IntVar(&cfg.MaxWorkers, "max-workers", 64, "most live Workers at once")
	fs.StringVar(&cfg.TokenFile, "token-file", "", "file holding the bearer token (trimmed); required unless listening on loopback")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "Usage: worker-runtime --state-dir DIR --profiles FILE [flags]\n\nEach flag can also be set by its environment variable, e.g. %s.\n\n", envName("state-dir"))
		fs.PrintDefaults()
	}
	if name, err := serveutil.ApplyEnv(fs, getenv, envName); err != nil {
		return config{}, &usageError{fmt.Sprintf("%s: invalid value", name)}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, &usageError{err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return config{}, &usageError{fmt.Sprintf("unexpected arguments: %q", fs.Args())}
	case cfg.StateDir == "":
		return config{}, &usageError{"--state-dir is required"}
	case cfg.Profiles == "":
		return config{}, &usageError{"--profiles is required"}
	case cfg.MaxWorkers < 1:
		return config{}, &usageError{"--max-workers must be 1 or more"}
	case len(cfg.Label) > 80:
		return config{}, &usageError{"--label must be at most 80 characters"}
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return config{}, &usageError{"--listen must be host:port"}
	}
	if cfg.TokenFile != "" {
		raw, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return config{}, &usageError{"--token-file cannot be read"}
		}
		cfg.token = strings.TrimSpace(string(raw))
		if cfg.token == "" {
			return config{}, &usageError{"--token-file is empty"}
		}
		if strings.ContainsAny(cfg.token, " \t\r\n") {
			return config{}, &usageError{"--token-file must hold one token without spaces"}
		}
	} else if !serveutil.IsLoopbackHost(host) {
		return config{}, &usageError{"refusing to listen on a non-loopback address without --token-file"}
	}
	return cfg, nil
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker-runtime:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker-runtime:", err)
		os.Exit(1)
	}
}

// Timeouts of the HTTP server. Event streams lift the write deadline.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	shutdownTimeout   = 10 * time.Second
	closeTimeout      = 15 * time.Second
	maxHeaderBytes    = 64 << 10
)

// run opens the Runtime and serves it until ctx is done, then shuts down in
// order: the listener closes and event streams end, in-flight requests
// finish, then every Worker is stopped (Runtime.Close) and the store closed.
func run(ctx context.Context, cfg config, logOut io.Writer) error {
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}))
	rt, err := wrlocal.Open(ctx, wrlocal.Config{
		StateDir:      cfg.StateDir,
		ProfilesFile:  cfg.Profiles,
		WorkspaceRoot: cfg.WorkspaceRoot,
		MaxWorkers:    cfg.MaxWorkers,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	shutdown := make(chan struct{})
	closeRuntime := func() error {
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		return rt.Close(cctx)
	}
	e, err := runtimehttp.NewServer(rt, runtimehttp.Options{
		Token: cfg.token, Label: cfg.Label, Version: version, Logger: log, Shutdown: shutdown,
	})
	if err != nil {
		return errors.Join(err, closeRuntime())
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return errors.Join(fmt.Errorf("listening on %s: %w", cfg.Listen, err), closeRuntime())
	}
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", slog.String("listen", ln.Addr().String()), slog.Bool("token", cfg.token != ""),
		slog.String("version", version))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return errors.Join(err, closeRuntime())
	case <-ctx.Done():
	}
	log.Info("shutting down")
	close(shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		shutErr = errors.Join(shutErr, err)
	}
	closeErr := closeRuntime()
	log.Info("stopped")
	return errors.Join(shutErr, closeErr)
}
