package remote_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/remote"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// Benchmarks through the backend (in-process, httptest) to worker-runtime
// processes on loopback, beside the same call made directly to the
// runtime. BENCHMARKS.md records the figures and the command.

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func benchDo(b *testing.B, method, url, token, body string, want int) []byte {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		b.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, out)
	}
	return out
}

type benchSetup struct {
	p  *testproc.Proc
	be *backend
	id string
}

func setupBench(b *testing.B) benchSetup {
	p := testproc.Start(b, bin, testproc.Options{})
	be := newBackend(b, remoteSpec{id: "rt", url: p.URL, token: p.Token})
	out := benchDo(b, "POST", be.url+"/api/runtimes/rt/workers", "", `{"intent":{"kind":"task","objective":"bench"},"profile":"echo"}`, 202)
	var w struct {
		WorkerID string `json:"worker_id"`
	}
	_ = json.Unmarshal(out, &w)
	for {
		out := benchDo(b, "GET", p.URL+"/v1/workers/"+w.WorkerID, p.Token, "", 200)
		if bytes.Contains(out, []byte(`"state":"active"`)) {
			break
		}
	}
	return benchSetup{p: p, be: be, id: w.WorkerID}
}

func BenchmarkLookup(b *testing.B) {
	s := setupBench(b)
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			benchDo(b, "GET", s.p.URL+"/v1/workers/"+s.id, s.p.Token, "", 200)
		}
	})
	b.Run("backend", func(b *testing.B) {
		for b.Loop() {
			benchDo(b, "GET", s.be.url+"/api/runtimes/rt/workers/"+s.id, "", "", 200)
		}
	})
}

func BenchmarkInputRoundTrip(b *testing.B) {
	s := setupBench(b)
	body := `{"kind":"user","content":"ping"}`
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			benchDo(b, "POST", s.p.URL+"/v1/workers/"+s.id+"/input", s.p.Token, body, 202)
		}
	})
	b.Run("backend", func(b *testing.B) {
		for b.Loop() {
			benchDo(b, "POST", s.be.url+"/api/runtimes/rt/workers/"+s.id+"/input", "", body, 202)
		}
	})
}

// 100 concurrent creates through the backend, spread over two runtimes:
// every one answered, no worker_id twice, every one listed by its runtime.
func BenchmarkConcurrentCreates100(b *testing.B) {
	p1 := testproc.Start(b, bin, testproc.Options{Extra: []string{"--max-workers", "1000"}})
	p2 := testproc.Start(b, bin, testproc.Options{Extra: []string{"--max-workers", "1000"}})
	be := newBackend(b, remoteSpec{id: "one", url: p1.URL, token: p1.Token}, remoteSpec{id: "two", url: p2.URL, token: p2.Token})
	for b.Loop() {
		ids := make([]string, 100)
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rt := []string{"one", "two"}[i%2]
				out := benchDo(b, "POST", be.url+"/api/runtimes/"+rt+"/workers", "",
					`{"intent":{"kind":"task","objective":"bench"},"profile":"echo"}`, 202)
				var w struct {
					WorkerID string `json:"worker_id"`
				}
				_ = json.Unmarshal(out, &w)
				ids[i] = rt + "/" + w.WorkerID
			}()
		}
		wg.Wait()
		b.StopTimer()
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] || len(id) < 10 {
				b.Fatalf("duplicate or missing worker %q", id)
			}
			seen[id] = true
		}
		// None lost: each runtime lists every worker it answered, then
		// they are stopped so the next round starts empty.
		for _, rt := range []string{"one", "two"} {
			type item struct {
				WorkerID string `json:"worker_id"`
				State    string `json:"state"`
			}
			var items []item
			for cursor := ""; ; {
				url := be.url + "/api/runtimes/" + rt + "/workers?limit=200"
				if cursor != "" {
					url += "&cursor=" + cursor
				}
				var list struct {
					Items      []item `json:"items"`
					NextCursor string `json:"next_cursor"`
				}
				_ = json.Unmarshal(benchDo(b, "GET", url, "", "", 200), &list)
				items = append(items, list.Items...)
				if cursor = list.NextCursor; cursor == "" {
					break
				}
			}
			live := 0
			for _, it := range items {
				if it.State == "stopped" {
					continue
				}
				live++
				if !seen[rt+"/"+it.WorkerID] {
					b.Fatalf("%s lists a worker nobody created: %s", rt, it.WorkerID)
				}
				benchDo(b, "POST", be.url+"/api/runtimes/"+rt+"/workers/"+it.WorkerID+"/stop", "", `{"mode":"force"}`, 202)
			}
			if live != 50 {
				b.Fatalf("%s lists %d live workers, want 50", rt, live)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(100, "creates/op")
}

// /api/workers over three runtimes (local, a remote one, a hung remote one:
// SIGSTOP, and never failing fast) answers within the source timeout: the
// hung one is left out with a diagnostic. ns/op is the whole answer.
func BenchmarkMergedListOneHung(b *testing.B) {
	const sourceTimeout = 300 * time.Millisecond
	ok := testproc.Start(b, bin, testproc.Options{})
	hung := testproc.Start(b, bin, testproc.Options{})
	log := slog.New(slog.DiscardHandler)
	local := compat.New(compat.Config{WorkspaceID: "ws", WorkspaceRoot: b.TempDir(), Logger: log})
	sources := []registry.Source{local}
	for _, p := range []*testproc.Proc{ok, hung} {
		rc, err := remote.NewRuntimeConfig("rt-"+strconv.Itoa(p.PID()), "", p.URL, p.Token, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		s := remote.New(rc, remote.Options{Logger: log, FailureThreshold: 1 << 30, HostID: compat.Bounded})
		if err := s.Start(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close(context.Background()) })
		sources = append(sources, s)
	}
	reg, err := registry.New(registry.Options{WorkspaceID: "ws", SourceTimeout: sourceTimeout, Logger: log,
		Auditor: registry.SlogAuditor{Logger: log}}, sources...)
	if err != nil {
		b.Fatal(err)
	}
	e, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(e)
	b.Cleanup(srv.Close)
	hung.Stop(b, 10*time.Second)
	b.Cleanup(func() { _ = hung.Signal(syscall.SIGCONT) })
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		out := benchDo(b, "GET", srv.URL+"/api/workers", "", "", 200)
		if d := time.Since(start); d > worst {
			worst = d
		}
		if !bytes.Contains(out, []byte("runtime_unavailable")) {
			b.Fatalf("the hung runtime is not reported: %s", out)
		}
	}
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
	b.ReportMetric(float64(sourceTimeout.Milliseconds()), "source-timeout-ms")
}
