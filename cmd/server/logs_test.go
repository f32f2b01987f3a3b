package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestLogsAreFlushedAtShutdown: the request lines of a run reach the log
// output by the time run returns, the last line is "stopped", every line is
// whole JSON, and /metrics serves the dropped-lines counter.
func TestLogsAreFlushedAtShutdown(t *testing.T) {
	s := startRun(t, config{WorkspaceID: "ws", MaxRecords: 200, LogLevel: slog.LevelInfo})
	const n = 20
	for range n {
		resp, err := http.Get(s.url("/api/runtimes"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	resp, err := http.Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(metrics), "\nruntime_registry_log_lines_dropped_total 0\n") {
		t.Errorf("/metrics lacks runtime_registry_log_lines_dropped_total 0:\n%s", metrics)
	}
	s.shutdown(t)

	lines := strings.Split(strings.TrimSpace(s.logs.String()), "\n")
	requests := 0
	for _, line := range lines {
		var rec struct {
			Msg   string `json:"msg"`
			Route string `json:"route"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec.Msg == "request" && rec.Route == "/api/runtimes" {
			requests++
		}
	}
	if requests != n {
		t.Errorf("%d request lines for /api/runtimes, want %d", requests, n)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, `"msg":"stopped"`) {
		t.Errorf("last log line %q, want the stop", last)
	}
}
