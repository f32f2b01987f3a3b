package main

import (
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-backend/runtime-registry/internal/logbuf"
)

// newLogger is the server's logger: JSON lines at level, written through a
// bounded asynchronous buffer (internal/logbuf) in front of out, so that a
// request never waits for stderr; when the buffer is full a line is dropped
// and counted instead. The caller must Close the returned writer after the
// last log line: Close writes out what is still buffered.
func newLogger(out io.Writer, level slog.Level) (*slog.Logger, *logbuf.Writer) {
	buf := logbuf.New(out, logbuf.Options{})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level})), buf
}

// registerLogMetrics exposes how many log lines the buffer dropped.
func registerLogMetrics(r prometheus.Registerer, buf *logbuf.Writer) {
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "runtime_registry_log_lines_dropped_total",
		Help: "Log lines dropped because the log buffer was full (the server never waits for its log output).",
	}, func() float64 { return float64(buf.Dropped()) }))
}
