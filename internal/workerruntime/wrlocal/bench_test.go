package wrlocal_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/wrlocal"
)

// Benchmarks of the real Runtime (SQLite store, processes). Run with
//
//	go test -run '^$' -bench 'CreateToActive|InputToReply' -benchtime 200x ./internal/workerruntime/wrlocal/
//	go test -run '^$' -bench HundredThousandLines -benchtime 3x ./internal/workerruntime/wrlocal/
//
// They report percentiles and rates as custom metrics. On a shared machine
// compare wall time with the process's CPU time (/usr/bin/time -v on the
// built test binary): the figures scale with the CPU share it got.

const benchProfiles = `
default: echo
profiles:
  - name: echo
    command: ["/bin/sh", "-c", "while IFS= read -r l; do printf 'echo: %s\n' \"$l\"; done"]
  - name: lines
    command: ["seq", "1", "100000"]
`

func openBench(b *testing.B) *wr.Runtime {
	b.Helper()
	dir := b.TempDir()
	pf := filepath.Join(dir, "profiles.yaml")
	if err := os.WriteFile(pf, []byte(benchProfiles), 0o600); err != nil {
		b.Fatal(err)
	}
	rt, err := wrlocal.Open(b.Context(), wrlocal.Config{StateDir: filepath.Join(dir, "state"), ProfilesFile: pf, WorkspaceRoot: dir, MaxWorkers: 1000, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close(b.Context()) })
	return rt
}

func percentiles(b *testing.B, ds []time.Duration, unit string) {
	slices.Sort(ds)
	at := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-"+unit)
	b.ReportMetric(at(0.99), "p99-"+unit)
}

// BenchmarkCreateToActive: Create until its worker_upserted active event.
func BenchmarkCreateToActive(b *testing.B) {
	rt := openBench(b)
	sub, err := rt.Subscribe(b.Context(), wr.SubscribeRequest{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		w, err := rt.Create(b.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			ev, err := sub.Next(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if ev.WorkerID == w.ID && ev.Worker != nil && ev.Worker.State == wr.StateActive {
				break
			}
		}
		ds = append(ds, time.Since(start))
		b.StopTimer()
		if _, err := rt.Stop(b.Context(), w.ID, wr.StopForce); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	percentiles(b, ds, "ms")
}

// BenchmarkInputToReply: SendInput until the echo's reply arrives on a
// subscription to the worker.
func BenchmarkInputToReply(b *testing.B) {
	rt := openBench(b)
	w, err := rt.Create(b.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}})
	if err != nil {
		b.Fatal(err)
	}
	for {
		if got, _ := rt.Get(b.Context(), w.ID); got.State == wr.StateActive {
			break
		}
		time.Sleep(time.Millisecond)
	}
	sub, err := rt.Subscribe(b.Context(), wr.SubscribeRequest{WorkerID: w.ID})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	var ds []time.Duration
	i := 0
	for b.Loop() {
		i++
		msg := fmt.Sprint("ping ", i)
		start := time.Now()
		if _, err := rt.SendInput(b.Context(), w.ID, wr.Input{Kind: wr.InputUser, Content: msg}); err != nil {
			b.Fatal(err)
		}
		for {
			ev, err := sub.Next(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if ev.Entry != nil && ev.Entry.Role == wr.RoleAssistant && ev.Entry.Content == "echo: "+msg {
				break
			}
		}
		ds = append(ds, time.Since(start))
	}
	percentiles(b, ds, "ms")
}

// BenchmarkHundredThousandLines: a worker printing 100,000 lines, from
// Create until every line is committed and readable.
func BenchmarkHundredThousandLines(b *testing.B) {
	rt := openBench(b)
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		w, err := rt.Create(b.Context(), wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentTask}, Profile: "lines"})
		if err != nil {
			b.Fatal(err)
		}
		for {
			p, err := rt.Transcript(b.Context(), w.ID, 99_999, 1)
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Items) == 1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(100_000*b.N)/total.Seconds(), "lines/s")
}
