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
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/serveutil"
)

// config is everything the server is told at start-up.
type config struct {
	Listen        string
	WorkspaceID   string
	WorkspaceRoot string
	DataDir       string
	Runtimes      string // the --runtimes file of remote Worker Runtimes (runtimes.go)
	// IndexCache is the local pod index's cache file ("" when off): the
	// --index-cache flag, or compat-index.cache in --state-dir by default.
	IndexCache string
	MaxRecords int
	LogLevel   slog.Level
	// SourceTimeout bounds each Runtime's answer in a merged list.
	SourceTimeout time.Duration
	// AllowedHosts are the extra Host values answered (comma-separated
	// host[:port]) beside the loopback names and the listen address.
	AllowedHosts string
	// AccessTokenFile holds the access token; AccessToken is what it held.
	AccessTokenFile string
	AccessToken     string
	// MaxConns bounds the open connections.
	MaxConns int
	// Timeouts of the HTTP server; zero fields take the defaults.
	Timeouts timeouts
	// Runtime configures the embedded Worker Runtime and the event streams.
	Runtime runtimeConfig
}

// envPrefix prefixes the environment variable of each flag:
// --workspace-root is RUNTIME_REGISTRY_WORKSPACE_ROOT.
const envPrefix = "RUNTIME_REGISTRY_"

func envName(flagName string) string { return serveutil.EnvName(envPrefix, flagName) }

// parseConfig reads flags, each of which may also be set by its environment
// variable; a flag on the command line wins over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "."
	}
	cfg := config{}
	var indexCache string
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.WorkspaceID, "workspace-id", "local:default", "id of the workspace this backend serves")
	fs.StringVar(&cfg.WorkspaceRoot, "workspace-root", cwd, "root of the workspace (compared with each pod's workspace_root)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "Worker/Pod data directory holding pods/ (optional; without it the local runtime is degraded)")
	fs.StringVar(&cfg.Runtimes, "runtimes", "", "YAML file of remote Worker Runtimes (optional; see README)")
	fs.StringVar(&indexCache, "index-cache", "", `file the local pod index is kept in between runs, so that a restart only stats each pod (default: `+indexCacheName+` in --state-dir when that is set, else none; "off" turns it off)`)
	fs.IntVar(&cfg.MaxRecords, "max-records", registry.DefaultMaxRecords, "list cap, 1 to 200")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	fs.DurationVar(&cfg.SourceTimeout, "source-timeout", registry.DefaultSourceTimeout, "how long a merged list waits for each runtime (e.g. 2s)")
	fs.StringVar(&cfg.AllowedHosts, "allowed-hosts", "", "extra Host header values to answer, comma-separated host[:port] (localhost, 127.0.0.1 and [::1] with the listening port, and the listen address, are always allowed)")
	fs.StringVar(&cfg.AccessTokenFile, "access-token-file", "", "file holding the access token that every /api/* and /metrics request must carry (required to listen on a non-loopback address)")
	fs.IntVar(&cfg.MaxConns, "max-conns", defaultMaxConns, "most connections open at once")
	cfg.Runtime.register(fs)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "Usage: server [flags]\n\nEach flag can also be set by its environment variable, e.g. %s.\n\n", envName("data-dir"))
		fs.PrintDefaults()
	}

	if name, err := serveutil.ApplyEnv(fs, getenv, envName); err != nil {
		return config{}, fmt.Errorf("%s: %w", name, err)
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
	if cfg.SourceTimeout <= 0 {
		return config{}, fmt.Errorf("--source-timeout must be positive, not %s", cfg.SourceTimeout)
	}
	if err := cfg.Runtime.validate(); err != nil {
		return config{}, err
	}
	cfg.IndexCache = indexCachePath(indexCache, cfg.Runtime.StateDir)
	if cfg.MaxConns < 1 {
		return config{}, fmt.Errorf("--max-conns must be at least 1, not %d", cfg.MaxConns)
	}
	if _, err := allowedHosts(cfg, nil); err != nil {
		return config{}, err
	}
	if cfg.AccessTokenFile != "" {
		tok, err := readAccessToken(cfg.AccessTokenFile)
		if err != nil {
			return config{}, err
		}
		cfg.AccessToken = tok
	}
	if cfg.AccessToken == "" && !isLoopback(cfg.Listen) {
		return config{}, fmt.Errorf("refusing to listen on %s, which is not a loopback address, without an access token: set --access-token-file (or %s)",
			cfg.Listen, envName("access-token-file"))
	}
	return cfg, nil
}

// indexCacheName is the index cache's file name in --state-dir.
const indexCacheName = "compat-index.cache"

// indexCachePath is the index cache file for the --index-cache value
// and the --state-dir stateDir: the flag's file; "off" for none; by default
// indexCacheName in the state dir (the directory the server already keeps
// its state in, created 0700), none without one.
func indexCachePath(value, stateDir string) string {
	switch {
	case value == "off":
		return ""
	case value != "":
		return value
	case stateDir != "":
		return filepath.Join(stateDir, indexCacheName)
	}
	return ""
}

// defaultMaxConns is the default of --max-conns. Beyond it, new connections
// wait in the listen backlog until one closes, so that idle keep-alive
// connections cannot use up the process's file descriptors (the pod index
// needs some too). Raise the fd limit (ulimit -n) above it.
const defaultMaxConns = 1024

// readAccessToken reads the access token from path: the file's content
// without surrounding white space. Its error names neither the path nor the
// token.
func readAccessToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("--access-token-file: cannot read the file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if err := handlers.ValidAccessToken(tok); err != nil {
		return "", fmt.Errorf("--access-token-file: %w", err)
	}
	return tok, nil
}

// isLoopback reports whether the listen address only accepts connections
// from this machine: localhost or a loopback IP. An empty host listens on
// every interface.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	return serveutil.IsLoopbackHost(host)
}

// allowedHosts is the Host allow-list: localhost, 127.0.0.1 and [::1] with
// the listening port, the listen address as given and as bound, and the
// --allowed-hosts entries. bound is the listener's address (nil: only check
// the entries).
func allowedHosts(cfg config, bound net.Addr) ([]string, error) {
	var hosts []string
	for e := range strings.SplitSeq(cfg.AllowedHosts, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if strings.ContainsAny(e, "/@?# ") || strings.HasPrefix(e, ":") {
			return nil, fmt.Errorf("--allowed-hosts: %q is not host[:port]", e)
		}
		hosts = append(hosts, e)
	}
	if bound == nil {
		return hosts, nil
	}
	_, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return nil, err
	}
	hosts = append(hosts, net.JoinHostPort("localhost", port), net.JoinHostPort("127.0.0.1", port),
		net.JoinHostPort("::1", port), cfg.Listen, bound.String())
	return hosts, nil
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT
// says otherwise. It is a safety net, not a setting the server depends on:
// the index of 100,000 pods holds about 40 MiB, so the heap stays far below
// it at default GOGC (a limit close to the heap makes the collector run more
// often and costs throughput: 120 MiB cost about 40 % at 100,000 pods when
// the index held twice as much). A store much larger than that needs a
// higher GOMEMLIMIT.
const defaultMemoryLimit = 256 << 20

// defaultGCPercent is the collector's target (GOGC) unless GOGC says
// otherwise. The heap is mostly the index, which lives as long as the
// process, and the garbage of a request is small: at Go's default of 100 the
// heap grows to twice the index between collections, so a 100,000-pod store
// peaked at about 120 MiB RSS; at 50 it peaks at about 95 MiB. The collector
// runs twice as often for the same garbage, a few per cent of CPU
// (BENCHMARKS.md, issue 12).
const defaultGCPercent = 50

// startupGCPercent is the collector's target while the local index is
// built (its first scan and the sweep that adds its watches): a burst of
// garbage on a live set that is still growing, which set the process's peak
// RSS (about 8 MiB less at 100,000 pods at 25 than at 50, for a few
// collections more during start-up).
const startupGCPercent = 25

// steadyGC, when set (main sets it unless GOGC is given), is called once
// the local index has finished its start-up sweeps.
var steadyGC func()

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(startupGCPercent)
		steadyGC = func() { debug.SetGCPercent(defaultGCPercent) }
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
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("server stopped", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

// Timeouts of the HTTP server: a client that sends no headers is dropped, and
// idle keep-alive connections are closed soon, since each holds one of the
// --max-conns slots.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 15 * time.Second
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
	log, logs := newLogger(logOut, cfg.LogLevel)
	// Deferred first, so it runs last: after the last log line.
	defer func() { _ = logs.Close() }()

	local := compat.New(compat.Config{
		WorkspaceID:   cfg.WorkspaceID,
		WorkspaceRoot: cfg.WorkspaceRoot,
		DataDir:       cfg.DataDir,
		ListLimit:     cfg.MaxRecords,
		Logger:        log,
		IndexCache:    cfg.IndexCache,
	})
	// The index reads (or, with its cache, stats) the store while the other
	// runtimes open and the HTTP server is built: on a cold page cache both
	// wait for the disk, not for each other. Every return waits for it, and
	// closes it once it is no longer needed; one that returns before the
	// index is built cuts its scan short (its context only bounds the
	// first scan).
	started := time.Now()
	indexCtx, cancelIndex := context.WithCancel(ctx)
	indexed := make(chan error, 1)
	go func() { indexed <- local.Start(indexCtx) }()
	var indexErr error
	waited := false
	waitIndex := func() error {
		if !waited {
			indexErr, waited = <-indexed, true
		}
		return indexErr
	}
	defer func() {
		cancelIndex()
		if waitIndex() == nil {
			_ = local.Close()
		}
	}()
	metrics := handlers.NewMetrics()
	registerIndexMetrics(metrics.Registry, local)
	registerLogMetrics(metrics.Registry, logs)
	sources := []registry.Source{local}
	emb, err := openEmbedded(ctx, cfg, log, metrics.Registry)
	if err != nil {
		return err
	}
	// Closed after the HTTP server has stopped (serve returned), so no
	// request still uses it; its workers get the graceful stop sequence.
	defer closeEmbedded(emb, log)
	if emb != nil {
		sources = append(sources, emb)
	}
	remotes, err := remoteRuntimes(cfg.Runtimes, os.Getenv, log)
	if err != nil {
		return err
	}
	sources = registrySources(sources, remotes)
	runtimeIDs := make([]registry.RuntimeID, len(sources))
	for i, s := range sources {
		runtimeIDs[i] = s.RuntimeID()
	}
	reg, err := registry.New(registry.Options{SourceTimeout: cfg.SourceTimeout, Logger: log,
		WorkspaceID: cfg.WorkspaceID,
		MaxRecords:  cfg.MaxRecords,
		Auditor:     registry.Auditors{registry.SlogAuditor{Logger: log}, metrics.Auditor(runtimeIDs...)},
	}, sources...)
	if err != nil {
		return err
	}
	defer startRemotes(ctx, remotes)()
	// The listener opens first (the Host allow-list needs its port), but
	// nothing is served until the index is built: early connections wait.
	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	hosts, err := allowedHosts(cfg, ln.Addr())
	if err != nil {
		_ = ln.Close()
		return err
	}
	// The HTTP server (which loads the contract) is built while the index
	// reads the store: neither needs the other until serving begins.
	type built struct {
		h   http.Handler
		err error
	}
	server := make(chan built, 1)
	go func() {
		h, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log, Metrics: metrics,
			AllowedHosts: hosts, AccessToken: cfg.AccessToken,
			MaxStreams: cfg.Runtime.MaxStreams, Shutdown: streamsShutdown(ctx)})
		server <- built{h, err}
	}()
	// The index is built before serving begins, so the first request is
	// answered from a complete index; it is closed after the last request.
	if err := waitIndex(); err != nil {
		<-server
		_ = ln.Close()
		return fmt.Errorf("indexing the local pod store: %w", err)
	}
	settled, stopSettle := context.WithCancel(ctx)
	defer stopSettle()
	go afterStartUp(settled, local, steadyGC)
	st := local.Stats()
	log.Info("local pod store indexed", slog.Int("pods", st.Pods), slog.Bool("watching", st.Watching),
		slog.Int("from_index_cache", st.CacheSeeded), slog.Uint64("read", st.Reads), slog.Duration("took", time.Since(started)))
	b := <-server
	if b.err != nil {
		_ = ln.Close()
		return b.err
	}
	log.Info("serving", slog.String("workspace_id", cfg.WorkspaceID), slog.Bool("data_dir_configured", cfg.DataDir != ""),
		slog.Bool("access_token", cfg.AccessToken != ""), slog.Bool("embedded_runtime", emb != nil))
	return serve(ctx, cfg, ln, b.h, log, ready)
}

// listen opens the listener on cfg.Listen, bounded to cfg.MaxConns open
// connections (the default when 0).
func listen(cfg config) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	n := cfg.MaxConns
	if n <= 0 {
		n = defaultMaxConns
	}
	return newLimitListener(ln, n), nil
}

// serve serves h on ln until ctx is done, then shuts down gracefully: the
// listener closes at once, request bodies still arriving are cut, and
// in-flight requests get up to the shutdown timeout to finish; connections
// still open then are closed. A shutdown that had to close connections is
// still a clean stop (nil).
func serve(ctx context.Context, cfg config, ln net.Listener, h http.Handler, log *slog.Logger, ready chan<- net.Addr) error {
	to := cfg.Timeouts.withDefaults()
	bodies := newBodyCutter()
	srv := &http.Server{
		Handler:           bodies.wrap(h),
		ReadHeaderTimeout: to.ReadHeader,
		ReadTimeout:       to.Read,
		WriteTimeout:      to.Write,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext:       withConn,
		// "OPTIONS *" reaches the handler, which answers it with a problem.
		DisableGeneralOptionsHandler: true,
	}
	srv.RegisterOnShutdown(bodies.cut)
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
		log.Warn("shutdown timed out: closing the connections still open", slog.Duration("timeout", to.Shutdown))
		if err := srv.Close(); err != nil {
			log.Warn("closing connections", slog.String("error_type", fmt.Sprintf("%T", err)))
		}
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// afterStartUp calls steady (when not nil) once the local index has done
// its start-up sweeps (the first scan and the one that adds its watches), it
// is not indexing at all, five minutes have passed, or ctx ends.
func afterStartUp(ctx context.Context, local *compat.Source, steady func()) {
	if steady == nil {
		return
	}
	defer steady()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(5 * time.Minute)
	for {
		if st := local.Stats(); !st.Indexed || st.Sweeps >= 2 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-giveUp:
			return
		case <-tick.C:
		}
	}
}
