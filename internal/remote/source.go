// Package remote is the registry Source of a Worker Runtime process reached
// over HTTP (api/worker-runtime.yaml, through the generated client): one
// Source per entry of the backend's --runtimes file. It probes the Runtime
// every few seconds and keeps its summary; after a few failed requests in a
// row it fails fast until a probe succeeds; it maps the transport's faults
// to runtime_unavailable with a diagnostic, passes the Runtime's own domain
// codes on (never its text), makes creates idempotent, and relays the
// Runtime's event stream to any number of browser streams over one upstream
// connection, held open from Start to Close. That stream also keeps list
// pages current: an unchanged list is answered from memory without a
// request, and a kept page is stale at most by the stream's delivery
// latency (a commit on the Runtime until its event arrives here; see
// listcache.go). The Runtime's URL and token never leave this package: not in
// an error, a diagnostic, a log line or a printed config.
package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	gen "github.com/workspace-backend/runtime-registry/internal/gen/workerruntimeapi"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Identity of a remote Runtime in the browser API.
const (
	RuntimeKind        = "remote_worker_runtime"
	HostKind           = "remote-worker-host"
	hostPrefix         = "remote-"
	defaultProbeEvery  = 5 * time.Second
	defaultFailures    = 3
	maxIdleConnections = 64
)

// Options tunes a Source; the zero value is the production setting.
type Options struct {
	// Logger receives state changes (never a URL, token or content); nil
	// means slog.Default().
	Logger *slog.Logger
	// ProbeInterval is the health probe's period; 0 means 5 s.
	ProbeInterval time.Duration
	// FailureThreshold is how many failed requests in a row make calls fail
	// fast; 0 means 3.
	FailureThreshold int
	// Transport carries the requests; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// HostID turns a runtime id into its host id; nil means
	// bounded("remote-", id), which the caller passes in (compat.Bounded)
	// so this package needs no dependency on the local source.
	HostID func(prefix, v string) string
	// StreamIdle is how long the upstream event stream may stay silent (no
	// event and no heartbeat: the Runtime sends one every 15 s) before it
	// is taken for dead and reconnected; 0 means 45 s. It bounds how long a
	// connection that died without an error can keep a stale list page.
	StreamIdle time.Duration
}

// defaultStreamIdle is three of the Runtime's heartbeat periods.
const defaultStreamIdle = 45 * time.Second

// Source is the registry Source of one remote Runtime. It implements the
// read core and every optional operation, plus Start and Close.
type Source struct {
	cfg       RuntimeConfig
	hostID    registry.HostID
	client    *gen.Client
	streamer  *http.Client
	log       *slog.Logger
	probe     time.Duration
	threshold int
	idle      time.Duration // Options.StreamIdle

	mu       sync.Mutex
	info     *gen.RuntimeInfo // last successful probe's answer
	observed time.Time        // when it was taken
	failures int              // failed requests in a row
	fault    fault            // the last failure's fault
	probed   bool             // at least one probe finished

	relay *relay
	lists listCache
	nonce string // prefixes page Versions (listcache.go)

	stopOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
	keepDone chan struct{} // closed when the relay's keeper has returned
}

var (
	_ registry.Source           = (*Source)(nil)
	_ registry.Starter          = (*Source)(nil)
	_ registry.Closer           = (*Source)(nil)
	_ registry.WorkerCreator    = (*Source)(nil)
	_ registry.InputSender      = (*Source)(nil)
	_ registry.WorkerStopper    = (*Source)(nil)
	_ registry.TranscriptReader = (*Source)(nil)
	_ registry.ProfileLister    = (*Source)(nil)
	_ registry.EventStreamer    = (*Source)(nil)
)

// New builds the Source of one remote Runtime; nothing is contacted until
// Start.
func New(cfg RuntimeConfig, opts Options) *Source {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = defaultProbeEvery
	}
	if opts.StreamIdle <= 0 {
		opts.StreamIdle = defaultStreamIdle
	}
	if opts.FailureThreshold <= 0 {
		opts.FailureThreshold = defaultFailures
	}
	transport := opts.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = maxIdleConnections
		t.Proxy = nil // a backend-private address never goes through an environment proxy
		transport = t
	}
	hostID := opts.HostID
	if hostID == nil {
		hostID = func(prefix, v string) string { return prefix + v }
	}
	httpc := &http.Client{
		Transport: transport,
		// A redirect is an answer this backend does not follow: the token
		// goes to the configured address only.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	auth := func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+cfg.token)
		return nil
	}
	// NewClient fails only on an unparsable server URL, which ParseConfig
	// and NewRuntimeConfig have already refused.
	client, _ := gen.NewClient(cfg.baseURL+"/", gen.WithHTTPClient(httpc), gen.WithRequestEditorFn(auth))
	s := &Source{
		cfg: cfg, hostID: registry.HostID(hostID(hostPrefix, string(cfg.ID))), client: client, streamer: httpc,
		log: log.With(slog.String("runtime_id", string(cfg.ID))), probe: opts.ProbeInterval, threshold: opts.FailureThreshold,
		idle: opts.StreamIdle,
	}
	s.relay = newRelay(s)
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	s.nonce = "v" + hex.EncodeToString(nonce[:])
	return s
}

// Open builds one Source per configured Runtime.
func Open(cfg Config, opts Options) []*Source {
	out := make([]*Source, 0, len(cfg.Runtimes))
	for _, rc := range cfg.Runtimes {
		out = append(out, New(rc, opts))
	}
	return out
}

// RuntimeID returns the configured runtime_id.
func (s *Source) RuntimeID() registry.RuntimeID { return s.cfg.ID }

// HostID returns the Runtime's one host id.
func (s *Source) HostID() registry.HostID { return s.hostID }

// Start probes the Runtime once (an unreachable Runtime does not stop the
// backend: it is listed unavailable), starts the periodic probe and opens
// the upstream event stream, held until Close (reconnected with backoff),
// which keeps the list cache current (listcache.go). It never fails.
func (s *Source) Start(ctx context.Context) error {
	s.probeOnce(ctx)
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	s.done = make(chan struct{})
	s.keepDone = make(chan struct{})
	go s.probeLoop(pctx)
	go s.relay.keep(pctx, s.keepDone)
	return nil
}

// Close stops the probe, the upstream event stream and the event relay
// (ending its browser streams) and drops idle connections.
func (s *Source) Close(context.Context) error {
	s.stopOnce.Do(func() {
		if s.stop != nil {
			s.stop()
			<-s.done
			<-s.keepDone
		}
		s.relay.close()
		s.streamer.CloseIdleConnections()
	})
	return nil
}

func (s *Source) probeLoop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.probe)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.probeOnce(ctx)
		}
	}
}

// probeOnce asks GET /v1/runtime, bypassing fail-fast, and records the
// answer.
func (s *Source) probeOnce(ctx context.Context) {
	info, err := s.fetchInfo(ctx, true)
	if err != nil && ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	s.probed = true
	s.mu.Unlock()
	if err == nil {
		s.relay.observeInstance(info.InstanceId)
	}
}

// fetchInfo reads GET /v1/runtime and keeps it as the summary's source.
func (s *Source) fetchInfo(ctx context.Context, probe bool) (gen.RuntimeInfo, error) {
	var info gen.RuntimeInfo
	err := s.do(ctx, probe, "", http.StatusOK, &info, func(ctx context.Context) (*http.Response, error) {
		return s.client.GetRuntime(ctx)
	})
	if err != nil {
		return gen.RuntimeInfo{}, err
	}
	if !registry.ValidID(info.InstanceId) {
		s.recordFailure(faultBadResponse)
		return gen.RuntimeInfo{}, s.unavailable(faultBadResponse)
	}
	s.mu.Lock()
	s.info = &info
	s.observed = time.Now().UTC()
	s.mu.Unlock()
	return info, nil
}

// down reports whether calls fail fast now, and why.
func (s *Source) down() (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, s.failures >= s.threshold
}

func (s *Source) recordFailure(f fault) {
	s.mu.Lock()
	s.failures++
	s.fault = f
	tripped := s.failures == s.threshold
	s.mu.Unlock()
	if tripped {
		s.log.Warn("remote runtime unavailable: failing fast until a probe succeeds", slog.String("diagnostic", f.code()))
		s.relay.sourceDown()
	}
}

func (s *Source) recordSuccess() {
	s.mu.Lock()
	recovered := s.failures >= s.threshold
	s.failures = 0
	s.fault = faultNone
	s.mu.Unlock()
	if recovered {
		s.log.Info("remote runtime available again")
	}
}

// do runs one request under the Runtime's timeout and reads its answer:
// nil (out filled), a domain *registry.Error, or runtime_unavailable. When
// the Runtime is down it answers at once without a request, unless probe.
func (s *Source) do(ctx context.Context, probe bool, worker registry.WorkerID, want int, out any, send func(context.Context) (*http.Response, error)) error {
	if !probe {
		if f, down := s.down(); down {
			return s.unavailable(f)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	resp, err := send(cctx) //nolint:bodyclose // readAnswer closes it
	if err != nil {
		if ctx.Err() != nil {
			// The caller left: no verdict on the Runtime.
			return registry.RuntimeUnavailable(s.cfg.ID, "The request ended before the runtime answered.", nil)
		}
		f := classify(err)
		s.recordFailure(f)
		return s.unavailable(f)
	}
	f, derr := s.readAnswer(resp, want, worker, out)
	if f != faultNone {
		if ctx.Err() != nil {
			return registry.RuntimeUnavailable(s.cfg.ID, "The request ended before the runtime answered.", nil)
		}
		s.recordFailure(f)
		return s.unavailable(f)
	}
	s.recordSuccess()
	if derr != nil {
		return derr
	}
	return nil
}

// state is a consistent reading of the probe state.
type state struct {
	info      *gen.RuntimeInfo
	observed  time.Time
	available bool
	fault     fault
	probed    bool
}

func (s *Source) state() state {
	s.mu.Lock()
	defer s.mu.Unlock()
	return state{info: s.info, observed: s.observed, available: s.info != nil && s.failures < s.threshold,
		fault: s.fault, probed: s.probed}
}

func (st state) diagnostics() []registry.Diagnostic {
	if st.available {
		return []registry.Diagnostic{}
	}
	f := st.fault
	if f == faultNone {
		f = faultUnreachable
	}
	return []registry.Diagnostic{{Code: f.code(), Severity: registry.SeverityWarning, Message: f.message()}}
}

func (s *Source) capabilities(st state) registry.Capabilities {
	c := registry.Capabilities{
		CanListHosts: true, CanListWorkers: true, CanGetWorker: true, CanSpawnWorker: true, CanStopWorker: true,
		CanAcceptInput: true, CanStreamEvents: true, CanReadBoundedTranscript: true,
		LocalPodInspection: registry.InspectionUnavailable,
		WorkspaceScope:     registry.WorkspaceScopeCurrent,
		OS:                 runtime.GOOS, Arch: runtime.GOARCH,
	}
	if st.info != nil {
		n := st.info.Limits.MaxWorkers
		c.MaxWorkers = &n
		if st.info.Os != "" {
			c.OS = st.info.Os
		}
		if st.info.Arch != "" {
			c.Arch = st.info.Arch
		}
	}
	return c
}

// Summary projects the Runtime from the last probe; it never makes a
// request and never fails: an unreachable Runtime is status unavailable
// with a diagnostic saying why.
func (s *Source) Summary(context.Context) (registry.RuntimeSummary, error) {
	st := s.state()
	status := registry.Available
	if !st.available {
		status = registry.Unavailable
	}
	return registry.RuntimeSummary{
		ID:      s.cfg.ID,
		Label:   s.cfg.Label,
		Kind:    RuntimeKind,
		Status:  status,
		HostIDs: []registry.HostID{s.hostID},
		Source: registry.SourceInfo{
			Kind:              registry.SourceRemoteHTTP,
			Status:            registry.SourceActive,
			IdentityAuthority: registry.IdentityAuthorityProjection,
			Note:              "A Worker Runtime process reached by this backend over HTTP; the browser never reaches it directly.",
		},
		Capabilities: s.capabilities(st),
		Diagnostics:  st.diagnostics(),
	}, nil
}

// Hosts lists the Runtime's one host, from the last probe; it never fails,
// so a host lookup finds its owner even while the Runtime is down (its
// worker calls then answer runtime_unavailable).
func (s *Source) Hosts(context.Context) ([]registry.Host, []registry.Diagnostic, error) {
	st := s.state()
	status := registry.Available
	if !st.available {
		status = registry.Unavailable
	}
	return []registry.Host{{
		ID:           s.hostID,
		RuntimeID:    s.cfg.ID,
		Kind:         HostKind,
		Label:        s.cfg.Label,
		Status:       status,
		Capabilities: s.capabilities(st),
		ObservedAt:   st.observed,
		Diagnostics:  st.diagnostics(),
	}}, nil, nil
}

// newIdempotencyKey makes a key for a create the browser sent without one.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "rr-" + hex.EncodeToString(b[:])
}

// String names the Source by its runtime id only: its config holds the URL
// and token, which no print of a Source may show.
func (s *Source) String() string { return "remote source " + string(s.cfg.ID) }

// GoString is String, for %#v.
func (s *Source) GoString() string { return s.String() }

// Format makes every verb print String.
func (s *Source) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue is the runtime id.
func (s *Source) LogValue() slog.Value { return slog.StringValue(string(s.cfg.ID)) }
