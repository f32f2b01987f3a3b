package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/workspace-backend/runtime-registry/internal/errchain"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// Metrics holds the server's Prometheus metrics. Label values are bounded
// sets only: route templates (or "unmatched"), HTTP methods (or "other"),
// status codes, operation names, registered runtime ids (or "unregistered")
// and error codes. No request path, worker id or file path is ever a label.
type Metrics struct {
	// Registry gathers every metric served at /metrics; callers may register
	// more collectors (the index gauges of cmd/server, for instance).
	Registry *prometheus.Registry

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ops      *prometheus.CounterVec
	streams  prometheus.Gauge
}

// NewMetrics makes the metrics and registers them with a new registry, along
// with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runtime_registry_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runtime_registry_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runtime_registry_operations_total",
			Help: "Authority-bearing registry calls, by operation, runtime id and outcome code.",
		}, []string{"operation", "runtime", "outcome"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "runtime_registry_event_streams_open",
			Help: "Browser event streams open now.",
		}),
	}
	m.Registry.MustRegister(m.requests, m.duration, m.ops, m.streams,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// knownMethods are the methods counted under their own name.
var knownMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions}

func methodLabel(m string) string {
	if slices.Contains(knownMethods, m) {
		return m
	}
	return "other"
}

// observe counts one answered request.
func (m *Metrics) observe(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func (m *Metrics) streamOpened() {
	if m != nil {
		m.streams.Inc()
	}
}

func (m *Metrics) streamClosed() {
	if m != nil {
		m.streams.Dec()
	}
}

// Auditor returns a registry.Auditor that counts every authority-bearing
// call. runtimes are the registered runtime ids: any other id (a client asked
// for an unknown runtime) is counted as "unregistered", so that clients
// cannot create label values.
func (m *Metrics) Auditor(runtimes ...registry.RuntimeID) registry.Auditor {
	return metricsAuditor{m: m, runtimes: slices.Clone(runtimes), counters: &sync.Map{}}
}

type metricsAuditor struct {
	m        *Metrics
	runtimes []registry.RuntimeID
	// counters keeps the counter of each label set already seen (a bounded
	// set: see Metrics), sparing every call the label hashing of
	// WithLabelValues.
	counters *sync.Map // opLabels -> prometheus.Counter
}

// opLabels is one label set of runtime_registry_operations_total.
type opLabels struct{ operation, runtime, outcome string }

// Audit counts rec.
func (a metricsAuditor) Audit(_ context.Context, rec registry.AuditRecord) {
	runtime := "unregistered"
	if slices.Contains(a.runtimes, rec.RuntimeID) {
		runtime = string(rec.RuntimeID)
	} else if rec.RuntimeID == "" {
		runtime = "none"
	}
	outcome := rec.Outcome
	// Outcomes are ok or a code of the one code table; anything else is "other".
	if _, known := problemKinds[registry.Code(outcome)]; outcome != registry.OutcomeOK && !known {
		outcome = "other"
	}
	key := opLabels{string(rec.Operation), runtime, outcome}
	if c, ok := a.counters.Load(key); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := a.m.ops.WithLabelValues(key.operation, key.runtime, key.outcome)
	a.counters.Store(key, c)
	c.Inc()
}

// metricsContentType is the Prometheus text exposition format.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// metricsResponse writes the gathered metrics in the text format.
type metricsResponse struct {
	m   *Metrics
	log *slog.Logger
}

// VisitGetMetricsResponse writes the metrics. A collector that fails is
// logged (its error type only) and the metrics that were gathered are served.
func (r metricsResponse) VisitGetMetricsResponse(w http.ResponseWriter) error {
	families, err := r.m.Registry.Gather()
	if err != nil {
		r.log.Warn("gathering metrics failed", slog.String("cause_types", errchain.Types(err)))
	}
	w.Header().Set("Content-Type", metricsContentType)
	w.WriteHeader(http.StatusOK)
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return nil
}
