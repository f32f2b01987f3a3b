// Command server serves the Workspace Backend runtime registry API: it wires
// the local compatibility source into the registry and serves the contract over
// HTTP until SIGINT or SIGTERM.
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
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// config is everything the server is told at start-up.
type config struct {
	Listen        string
	WorkspaceID   string
	WorkspaceRoot string
	DataDir       string
	Runtimes      string // the --runtimes file of remote Worker Runtimes (runtimes.go)
	MaxRecords    int
	LogLevel      slog.Level
	// Timeouts of the HTTP server; zero fields take the defaults.
	Timeouts timeouts
}

// envPrefix prefixes the environment variable of each flag:
// --workspace-root is RUNTIME_REGISTRY_WORKSPACE_ROOT.
const envPrefix = "RUNTIME_REGISTRY_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags, each of which may also be set by its environment
// variable; a flag on the command line wins over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "."
	}
	cfg := config{}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.WorkspaceID, "workspace-id", "local:default", "id of the workspace this backend serves")
	fs.StringVar(&cfg.WorkspaceRoot, "workspace-root", cwd, "root of the workspace (compared with each pod's workspace_root)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "Worker/Pod data directory holding pods/ (optional; without it the local runtime is degraded)")
	fs.StringVar(&cfg.Runtimes, "runtimes", "", "YAML file of remote Worker Runtimes (optional; see README)")
	fs.IntVar(&cfg.MaxRecords, "max-records", registry.DefaultMaxRecords, "list cap, 1 to 200")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "Usage: server [flags]\n\nEach flag can also be set by its environment variable, e.g. %s.\n\n", envName("data-dir"))
		fs.PrintDefaults()
	}

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s: %w", envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return config{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.MaxRecords < 1 || cfg.MaxRecords > registry.DefaultMaxRecords {
		return config{}, fmt.Errorf("--max-records must be 1 to %d, not %s", registry.DefaultMaxRecords, strconv.Itoa(cfg.MaxRecords))
	}
	return cfg, nil
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT
// says otherwise: the index of a large store is most of the heap, and without
// a limit the garbage collector lets the heap grow to twice it under load.
// With the limit the collector runs more often instead (BENCHMARKS.md has the
// figures at 100,000 pods). A store much larger than that needs a higher
// GOMEMLIMIT.
const defaultMemoryLimit = 120 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// Timeouts of the HTTP server: a client that sends no headers is dropped, and
// idle keep-alive connections are closed.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	shutdownTimeout   = 15 * time.Second
	maxHeaderBytes    = 64 << 10
)

// timeouts are the HTTP server's timeouts; a zero field means its default
// above. They are not flags: tests shorten them.
type timeouts struct {
	ReadHeader, Read, Write, Idle, Shutdown time.Duration
}

func (t timeouts) withDefaults() timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.ReadHeader, readHeaderTimeout)
	def(&t.Read, readTimeout)
	def(&t.Write, writeTimeout)
	def(&t.Idle, idleTimeout)
	def(&t.Shutdown, shutdownTimeout)
	return t
}

// run serves until ctx is done, then shuts down gracefully, letting in-flight
// requests finish. ready, if not nil, receives the bound address once the
// listener is open.
func run(ctx context.Context, cfg config, logOut io.Writer, ready chan<- net.Addr) error {
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}))

	local := compat.New(compat.Config{
		WorkspaceID:   cfg.WorkspaceID,
		WorkspaceRoot: cfg.WorkspaceRoot,
		DataDir:       cfg.DataDir,
		Logger:        log,
	})
	metrics := handlers.NewMetrics()
	registerIndexMetrics(metrics.Registry, local)
	remotes, err := remoteRuntimes(cfg.Runtimes, os.Getenv, log)
	if err != nil {
		return err
	}
	reg, err := registry.New(registry.Options{
		WorkspaceID: cfg.WorkspaceID,
		MaxRecords:  cfg.MaxRecords,
		Auditor:     registry.Auditors{registry.SlogAuditor{Logger: log}, metrics.Auditor(local.RuntimeID())},
	}, registrySources(local, remotes)...)
	if err != nil {
		return err
	}
	defer startRemotes(ctx, remotes)()
	// The HTTP server (which loads the contract) is built while the index
	// reads the store: neither needs the other until the listener opens.
	type built struct {
		e   *echo.Echo
		err error
	}
	server := make(chan built, 1)
	go func() {
		e, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log, Metrics: metrics})
		server <- built{e, err}
	}()
	// The index is built before the listener opens, so the first request is
	// answered from a complete index; it is closed after the last request.
	started := time.Now()
	if err := local.Start(ctx); err != nil {
		<-server
		return fmt.Errorf("indexing the local pod store: %w", err)
	}
	defer func() { _ = local.Close() }()
	log.Info("local pod store indexed", slog.Int("pods", local.Stats().Pods),
		slog.Bool("watching", local.Stats().Watching), slog.Duration("took", time.Since(started)))
	b := <-server
	if b.err != nil {
		return b.err
	}
	e := b.e
	log.Info("serving", slog.String("workspace_id", cfg.WorkspaceID), slog.Bool("data_dir_configured", cfg.DataDir != ""))
	return serve(ctx, cfg, e, log, ready)
}

// serve listens on cfg.Listen and serves h until ctx is done, then shuts down
// gracefully: the listener closes at once, in-flight requests get up to the
// shutdown timeout to finish.
func serve(ctx context.Context, cfg config, h http.Handler, log *slog.Logger, ready chan<- net.Addr) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	to := cfg.Timeouts.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: to.ReadHeader,
		ReadTimeout:       to.Read,
		WriteTimeout:      to.Write,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", slog.String("listen", ln.Addr().String()))
	if ready != nil {
		ready <- ln.Addr()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), to.Shutdown)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
