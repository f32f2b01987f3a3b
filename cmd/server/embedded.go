package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-backend/runtime-registry/internal/embedded"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime"
)

// runtimeConfig configures the embedded Worker Runtime and the event
// streams. The embedded Runtime is registered only when both StateDir and
// Profiles are given.
type runtimeConfig struct {
	StateDir   string
	Profiles   string
	MaxWorkers int
	MaxStreams int
}

// register declares the flags (each also read from its environment
// variable by parseConfig).
func (c *runtimeConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.StateDir, "state-dir", "", "directory of the embedded Worker Runtime's database (created 0700; with --profiles it turns the embedded runtime on)")
	fs.StringVar(&c.Profiles, "profiles", "", "worker profiles file (YAML) of the embedded Worker Runtime (with --state-dir it turns the embedded runtime on)")
	fs.IntVar(&c.MaxWorkers, "max-workers", workerruntime.DefaultMaxWorkers, "live workers the embedded runtime may run at once")
	fs.IntVar(&c.MaxStreams, "max-streams", handlers.DefaultMaxStreams, "browser event streams open at once")
}

// validate checks the values parseConfig read.
func (c runtimeConfig) validate() error {
	if (c.StateDir == "") != (c.Profiles == "") {
		return errors.New("--state-dir and --profiles go together: give both to run the embedded worker runtime, or neither")
	}
	if c.MaxWorkers < 1 {
		return fmt.Errorf("--max-workers must be 1 or more, not %d", c.MaxWorkers)
	}
	if c.MaxStreams < 1 {
		return fmt.Errorf("--max-streams must be 1 or more, not %d", c.MaxStreams)
	}
	return nil
}

// enabled reports whether the embedded Runtime is configured.
func (c runtimeConfig) enabled() bool { return c.StateDir != "" && c.Profiles != "" }

// openEmbedded opens the embedded Runtime when it is configured (nil
// otherwise) and registers its metrics.
func openEmbedded(ctx context.Context, cfg config, log *slog.Logger, metrics prometheus.Registerer) (*embedded.Source, error) {
	if !cfg.Runtime.enabled() {
		return nil, nil
	}
	src, err := embedded.Open(ctx, embedded.OpenConfig{
		WorkspaceID:   cfg.WorkspaceID,
		StateDir:      cfg.Runtime.StateDir,
		ProfilesFile:  cfg.Runtime.Profiles,
		WorkspaceRoot: cfg.WorkspaceRoot,
		MaxWorkers:    cfg.Runtime.MaxWorkers,
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the embedded worker runtime: %w", err)
	}
	registerRuntimeMetrics(metrics, src.Runtime())
	return src, nil
}

// runtimeCloseTimeout bounds closing the embedded Runtime at shutdown: its
// own budget for the graceful stop of every worker is 10 s.
const runtimeCloseTimeout = 20 * time.Second

// closeEmbedded closes the embedded Runtime after the HTTP server stopped:
// every live worker gets the graceful stop sequence.
func closeEmbedded(src *embedded.Source, log *slog.Logger) {
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), runtimeCloseTimeout)
	defer cancel()
	started := time.Now()
	if err := src.Close(ctx); err != nil {
		log.Warn("closing the embedded worker runtime failed", slog.String("code", string(workerruntime.CodeOf(err))))
		return
	}
	log.Info("embedded worker runtime closed", slog.Duration("took", time.Since(started)))
}

// streamsShutdown returns a channel closed when ctx ends: the server's
// shutdown begins then, and open event streams (which never go idle by
// themselves) must end for it to finish.
func streamsShutdown(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch
}

// runtimeCollector exposes the embedded Runtime's Stats, read once per
// scrape. Labels are bounded: worker states only, never an id.
type runtimeCollector struct {
	rt *workerruntime.Runtime

	workers, subscribers                                      *prometheus.Desc
	started, exited, lines, events, storeSeconds, storeWrites *prometheus.Desc
}

func registerRuntimeMetrics(r prometheus.Registerer, rt *workerruntime.Runtime) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("runtime_registry_embedded_"+name, help, labels, nil)
	}
	r.MustRegister(&runtimeCollector{
		rt:           rt,
		workers:      d("workers", "Workers of the embedded runtime by state (stopped counts every stopped worker it keeps).", "state"),
		subscribers:  d("event_subscribers", "Open subscriptions to the embedded runtime's event feed."),
		started:      d("processes_started_total", "Worker processes started."),
		exited:       d("processes_exited_total", "Worker processes that exited and were reaped."),
		lines:        d("transcript_lines_total", "Transcript entries recorded (inputs and output lines)."),
		events:       d("events_total", "Events committed to the embedded runtime's feed."),
		storeSeconds: d("store_write_seconds_total", "Time spent in store writes; divided by store_writes_total it is the mean write latency."),
		storeWrites:  d("store_writes_total", "Store writes."),
	})
}

// Describe sends the descriptors.
func (c *runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.workers, c.subscribers, c.started, c.exited, c.lines, c.events, c.storeSeconds, c.storeWrites} {
		ch <- d
	}
}

// Collect reads the Runtime's Stats once and sends every metric.
func (c *runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.rt.Stats()
	for _, s := range []workerruntime.State{workerruntime.StateStarting, workerruntime.StateActive, workerruntime.StateStopping, workerruntime.StateStopped} {
		ch <- prometheus.MustNewConstMetric(c.workers, prometheus.GaugeValue, float64(st.WorkersByState[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(c.subscribers, prometheus.GaugeValue, float64(st.Subscribers))
	ch <- prometheus.MustNewConstMetric(c.started, prometheus.CounterValue, float64(st.ProcessesStarted))
	ch <- prometheus.MustNewConstMetric(c.exited, prometheus.CounterValue, float64(st.ProcessesExited))
	ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(st.TranscriptLines))
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(st.Events))
	ch <- prometheus.MustNewConstMetric(c.storeSeconds, prometheus.CounterValue, st.StoreWriteSeconds)
	ch <- prometheus.MustNewConstMetric(c.storeWrites, prometheus.CounterValue, float64(st.StoreWrites))
}
