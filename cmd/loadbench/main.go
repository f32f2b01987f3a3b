// Command loadbench is the load run of `make bench`: it generates a local
// Worker/Pod store, starts the real server binary on 127.0.0.1 over it, and
// attacks it with vegeta (as a library) for a bounded time, beside a static
// baseline server (this same program, re-run with -serve-static) that serves
// the very same bytes from memory. It measures, in one run: req/s, p50 and
// p99 of each scenario on both servers and their ratio, the server's peak RSS
// (VmHWM), cold start to the first correct answer, and how long a rewrite of
// one metadata file takes to show while the server is under load. It prints
// a Markdown report. Every address it uses is on 127.0.0.1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/workspace-backend/runtime-registry/internal/benchstore"
	"github.com/workspace-backend/runtime-registry/internal/compat"
)

const (
	workspaceRoot = "/srv/workspaces/bench"
	runtimeID     = "local-worker-runtime"
)

type options struct {
	server      string
	storeDir    string
	pods        int
	bigPods     int
	duration    time.Duration
	bigDuration time.Duration
	connections int
	freshness   int
	wrk         string
	cpuProfile  string
	rounds      int
	// workerRuntime is the worker-runtime binary run as the remote runtime.
	workerRuntime string
	// dropCaches empties the kernel's page cache before the first start
	// of each store (root only), so that the first start reads cold.
	dropCaches bool
	// only runs one part of the run: "start" (the cold starts of the main
	// store) or "big" (the large store); "" runs everything.
	only string
	// cacheDir holds the server's index cache files (--index-cache), one
	// per store; "" when the server binary has no such flag.
	cacheDir string
}

func main() {
	var o options
	static := flag.String("serve-static", "", "internal: serve the baseline from this directory (see writeBaseline)")
	listen := flag.String("listen", "127.0.0.1:0", "internal: address of the static baseline")
	flag.StringVar(&o.server, "server", "bin/runtime-registry", "server binary to run")
	flag.StringVar(&o.storeDir, "store-dir", filepath.Join(os.TempDir(), "runtime-registry-bench"), "where generated stores are kept (reused between runs)")
	flag.IntVar(&o.pods, "pods", 10_000, "pods of the main store")
	flag.IntVar(&o.bigPods, "big-pods", 100_000, "pods of the large store (peak RSS and cold start); 0 skips it")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each attack")
	flag.DurationVar(&o.bigDuration, "big-duration", 5*time.Second, "length of each attack on the large store")
	flag.IntVar(&o.connections, "connections", 32, "concurrent connections of each attack")
	flag.IntVar(&o.freshness, "freshness-samples", 5, "metadata rewrites timed under load")
	flag.IntVar(&o.rounds, "turns", 5, "each attack is cut into this many rounds, server and baseline taking turns; a ratio is the median of the rounds' ratios")
	flag.StringVar(&o.workerRuntime, "worker-runtime", "bin/worker-runtime", "worker-runtime binary run on loopback as the remote runtime of the merged list (skipped when missing)")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary, run beside vegeta with -t1 (skipped when not found)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "directory for CPU profiles of the server during the page of 200, the merged list and the worker by id, taken during its wrk run (needs a server built with -tags pprof)")
	flag.BoolVar(&o.dropCaches, "drop-caches", false, "sync and drop the kernel's page cache (echo 3 > /proc/sys/vm/drop_caches, root only) before the first start of each store, so that the first start reads a cold cache; skipped with a note when not permitted")
	flag.StringVar(&o.only, "only", "", `run one part only: "start" (the cold starts of the main store) or "big" (the large store: cold start, load, peak RSS); empty runs everything`)
	prepare := flag.Bool("prepare", false, "only generate the stores (both sizes), then exit")
	emb := flag.Bool("embedded", false, "run the embedded Worker Runtime benchmarks instead (see embedded.go)")
	var eo embeddedOptions
	flag.IntVar(&eo.creates, "creates", 50, "-embedded: creates timed to active")
	flag.IntVar(&eo.inputs, "inputs", 300, "-embedded: inputs timed to their echo")
	flag.IntVar(&eo.streams, "streams", 1000, "-embedded: concurrent streams on one worker")
	flag.IntVar(&eo.rounds, "rounds", 20, "-embedded: inputs delivered to every stream")
	flag.Parse()
	if *emb {
		if err := runEmbedded(o.server, eo); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench -embedded:", err)
			os.Exit(1)
		}
		return
	}
	if *prepare {
		for _, n := range []int{o.pods, o.bigPods} {
			if n > 0 {
				if err := benchstore.Generate(filepath.Join(o.storeDir, fmt.Sprintf("pods-%d", n)), n, workspaceRoot); err != nil {
					fmt.Fprintln(os.Stderr, "loadbench:", err)
					os.Exit(1)
				}
			}
		}
		return
	}
	if *static != "" {
		if err := serveStatic(*static, *listen); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench static:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// scenario is one request the run attacks both servers with.
type scenario struct {
	name   string
	path   string
	header http.Header
	want   int
}

// measured is one scenario's figures on the server and on the baseline:
// vegeta's always, wrk's when wrk is available. Req/s are the means of the
// rounds, ratios the medians of the rounds' ratios, vegeta's latencies
// those of every request of every round, wrk's the medians of its rounds.
type measured struct {
	size              int
	vSrv, vBase       *vegeta.Metrics
	vSrvRPS, vBaseRPS float64
	wSrv, wBase       *wrkResult
	vRatio, wRatio    float64 // 0: not measured
	vRatios, wRatios  []float64
}

// summary collects what the targets of issue 12 are checked against.
type summary struct {
	// starts are the main store's starts: the first without an index
	// cache, then restarts (with one, when cached).
	starts             []time.Duration
	cached             bool
	page, worker, list measured
	runtimes           []string
	sourcesSkipped     []string
	bigStarts          []time.Duration
	bigRSS             int
	bigPageRatio       float64 // page of 200 at the large store against its own baseline
	bigPods            int
}

func run(o options) error {
	fmt.Printf("# loadbench %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("Machine: %d CPUs (GOMAXPROCS of each process: default). Connections: %d. Attack length: %s. Load average at the start: %s.\n\n",
		runtime.NumCPU(), o.connections, o.duration, loadAverage())
	if _, err := exec.LookPath(o.wrk); err != nil {
		fmt.Printf("wrk (%s) not found: only vegeta's figures are given.\n\n", o.wrk)
		o.wrk = ""
	}

	dataDir := filepath.Join(o.storeDir, fmt.Sprintf("pods-%d", o.pods))
	t0 := time.Now()
	if err := benchstore.Generate(dataDir, o.pods, workspaceRoot); err != nil {
		return fmt.Errorf("generating the store: %w", err)
	}
	fmt.Printf("Store of %d pods ready in %s (reused when already generated).\n\n", o.pods, time.Since(t0).Round(time.Millisecond))

	var sum summary
	extra, skipped, cleanup, err := otherSources(o.server, o.workerRuntime)
	if err != nil {
		return err
	}
	defer cleanup()
	sum.sourcesSkipped = skipped
	if serverHas(o.server)("index-cache") {
		if o.cacheDir, err = os.MkdirTemp("", "loadbench-index-cache-"); err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(o.cacheDir) }()
		sum.cached = true
	}

	if o.only == "big" {
		if o.bigPods <= 0 {
			return errors.New("-only big needs -big-pods > 0")
		}
		return bigStore(o, extra, &sum)
	}
	srv, starts, err := coldStarts(o, dataDir, o.pods, 3, extra, o.cpuProfile != "")
	if err != nil {
		return err
	}
	defer srv.stop()
	sum.starts = starts
	printStarts(o, o.pods, starts)
	if o.only == "start" {
		fmt.Printf("Peak RSS (VmHWM) of the server at %d pods after the starts: %s.\n", o.pods, mib(srv.peakRSS()))
		return nil
	}
	if sum.runtimes, err = runtimeIDs(srv.url); err != nil {
		return err
	}
	if err := settle(srv.url); err != nil {
		return err
	}
	fmt.Printf("Server flags: the defaults (log level info) plus `--listen`, `--workspace-id`, `--workspace-root`, `--data-dir`%s. Runtimes registered: %s.\n\n",
		strings.Join(extraNames(extra), ""), strings.Join(sum.runtimes, ", "))
	for _, note := range skipped {
		fmt.Printf("- %s\n", note)
	}
	if len(skipped) > 0 {
		fmt.Println()
	}

	workerPath := "/api/runtimes/" + runtimeID + "/workers/" + string(compat.WorkerIDFor(benchstore.PodName(o.pods/2)))
	pagePath := "/api/runtimes/" + runtimeID + "/workers?limit=200"
	scenarios := []scenario{
		{name: "page of 200 (`GET /api/runtimes/{runtime_id}/workers?limit=200`)", path: pagePath, want: 200},
		{name: "merged list (`GET /api/workers`, runtimes: " + strings.Join(sum.runtimes, " + ") + ")", path: "/api/workers", want: 200},
		{name: "one worker by id (`GET /api/runtimes/{runtime_id}/workers/{worker_id}`)", path: workerPath, want: 200},
		{name: "304 revalidation of the page of 200 (`If-None-Match`)", path: pagePath, want: 304},
	}
	// The baseline serves exactly the bytes the server answers.
	files := map[string]captured{}
	for i, sc := range scenarios {
		c, err := capture(srv.url + sc.path)
		if err != nil {
			return err
		}
		if sc.want == 304 {
			scenarios[i].header = http.Header{"If-None-Match": {c.ETag}}
		}
		files[sc.path] = c
	}
	base, err := startBaseline(files)
	if err != nil {
		return err
	}
	defer base.stop()

	fmt.Printf("Each attack: %d rounds of %s on the server, each followed by one on the baseline, with vegeta and then with wrk; ratios are the medians of the %d rounds' ratios.\n\n",
		o.rounds, (o.duration / time.Duration(o.rounds)).Round(time.Millisecond), o.rounds)
	fmt.Println("| scenario | body bytes | server req/s | server p50 | server p99 | baseline req/s | baseline p50 | baseline p99 | ratio (req/s) | wrk server req/s (p99) | wrk baseline req/s (p99) | wrk ratio |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, sc := range scenarios {
		profile := ""
		if o.cpuProfile != "" && i < 3 {
			profile = filepath.Join(o.cpuProfile, map[int]string{0: "page200.pprof", 1: "merged.pprof", 2: "worker.pprof"}[i])
		}
		m, err := measure(srv, base, sc, o.duration, o.connections, o.rounds, o.wrk, profile)
		if err != nil {
			return err
		}
		m.size = len(files[sc.path].Body)
		if sc.want == 304 {
			m.size = 0
		}
		switch i {
		case 0:
			sum.page = m
		case 1:
			sum.list = m
		case 2:
			sum.worker = m
		}
		wrkCols := "n/a | n/a | n/a"
		if m.wSrv != nil {
			wrkCols = fmt.Sprintf("%.0f (%s) | %.0f (%s) | **%.2f×**", m.wSrv.rps, ms(m.wSrv.p99), m.wBase.rps, ms(m.wBase.p99), m.wRatio)
		}
		fmt.Printf("| %s | %d | %.0f | %s | %s | %.0f | %s | %s | **%.2f×** | %s |\n", sc.name, m.size,
			m.vSrvRPS, ms(m.vSrv.Latencies.P50), ms(m.vSrv.Latencies.P99),
			m.vBaseRPS, ms(m.vBase.Latencies.P50), ms(m.vBase.Latencies.P99), m.vRatio, wrkCols)
	}
	fmt.Println()

	fresh, err := freshnessUnderLoad(srv.url, dataDir, pagePath, o)
	if err != nil {
		return err
	}
	slices.Sort(fresh)
	fmt.Printf("Freshness under load (%d rewrites of one metadata.json while the page of 200 is attacked with %d connections; time until `GET` of that worker shows the new label): median **%s**, max **%s**.\n\n",
		len(fresh), o.connections, ms(fresh[len(fresh)/2]), ms(fresh[len(fresh)-1]))

	fmt.Printf("Peak RSS (VmHWM) of the server at %d pods after all of the above: **%s**; of the static baseline: %s.\n\n",
		o.pods, mib(srv.peakRSS()), mib(base.peakRSS()))
	fmt.Printf("Server log output during the run: %d lines, %s; lines dropped by the log buffer: %s.\n\n",
		srv.logs.lines(), mib(int(srv.logs.bytes()/1024)), droppedLogLines(srv.url))

	if o.bigPods > 0 {
		if err := bigStore(o, extra, &sum); err != nil {
			return err
		}
	}
	sum.print(o)
	fmt.Printf("Load average at the end: %s.\n", loadAverage())
	return nil
}

// measure attacks sc in rounds, the server and then the baseline in each,
// so that a change of the machine's load touches both alike: with vegeta,
// then with wrk. profile, if set, is where a CPU profile of the server
// during the wrk rounds (the vegeta rounds without wrk) is written.
func measure(srv, base *proc, sc scenario, du time.Duration, conns, rounds int, wrk, profile string) (measured, error) {
	rounds = max(1, rounds)
	slice := du / time.Duration(rounds)
	m := measured{vSrv: &vegeta.Metrics{}, vBase: &vegeta.Metrics{}}
	var prof func() error
	if profile != "" && wrk == "" {
		prof = srv.startProfile(profile, 2*du)
	}
	var sRPS, bRPS []float64
	for range rounds {
		rs, err := attack(srv.url, sc, slice, conns, m.vSrv)
		if err != nil {
			return m, err
		}
		rb, err := attack(base.url, sc, slice, conns, m.vBase)
		if err != nil {
			return m, err
		}
		sRPS, bRPS = append(sRPS, rs.Throughput), append(bRPS, rb.Throughput)
		m.vRatios = append(m.vRatios, rs.Throughput/rb.Throughput)
	}
	m.vSrv.Close()
	m.vBase.Close()
	m.vSrvRPS, m.vBaseRPS, m.vRatio = mean(sRPS), mean(bRPS), median(m.vRatios)
	if prof != nil {
		if err := prof(); err != nil {
			return m, err
		}
	}
	if wrk == "" {
		return m, nil
	}
	if profile != "" {
		prof = srv.startProfile(profile, 2*du)
	}
	var ws, wb []*wrkResult
	for range rounds {
		rs, err := runWrk(wrk, srv.url, sc, slice, conns)
		if err != nil {
			return m, err
		}
		rb, err := runWrk(wrk, base.url, sc, slice, conns)
		if err != nil {
			return m, err
		}
		ws, wb = append(ws, rs), append(wb, rb)
		m.wRatios = append(m.wRatios, rs.rps/rb.rps)
	}
	if prof != nil {
		if err := prof(); err != nil {
			return m, err
		}
	}
	m.wSrv, m.wBase, m.wRatio = wrkSummary(ws), wrkSummary(wb), median(m.wRatios)
	return m, nil
}

func mean(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

func median[T float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// wrkSummary is the mean req/s and the median latencies of wrk's rounds.
func wrkSummary(rs []*wrkResult) *wrkResult {
	var rps []float64
	var p50, p99 []time.Duration
	for _, r := range rs {
		rps, p50, p99 = append(rps, r.rps), append(p50, r.p50), append(p99, r.p99)
	}
	return &wrkResult{rps: mean(rps), p50: median(p50), p99: median(p99)}
}

// print writes issue 12's targets beside what this run measured.
func (s summary) print(o options) {
	rounds := func(rs []float64) string {
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = fmt.Sprintf("%.2f", r)
		}
		return strings.Join(parts, ", ")
	}
	ratios := func(m measured) string {
		out := fmt.Sprintf("%.2f× (vegeta; rounds %s)", m.vRatio, rounds(m.vRatios))
		if m.wSrv != nil {
			out += fmt.Sprintf(", %.2f× (wrk; rounds %s)", m.wRatio, rounds(m.wRatios))
		}
		return out
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	best := func(m measured) float64 { return max(m.vRatio, m.wRatio) }
	worst := func(m measured) float64 {
		if m.wSrv == nil {
			return m.vRatio
		}
		return min(m.vRatio, m.wRatio)
	}
	both := func(m measured, target float64) string {
		switch {
		case worst(m) >= target:
			return "met"
		case best(m) >= target:
			return "met by one load generator only"
		}
		return "**missed**"
	}
	fmt.Println("## Against issue 12's targets (default flags, default log level)")
	fmt.Println()
	fmt.Println("| scenario | target | measured | |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| one worker by id, %d pods | ≥ 0.80× (aim 0.90×) | %s | %s |\n", o.pods, ratios(s.worker), both(s.worker, 0.80))
	fmt.Printf("| page of 200, %d pods | ≥ 0.80× (aim 0.90×) | %s | %s |\n", o.pods, ratios(s.page), both(s.page, 0.80))
	fmt.Printf("| `GET /api/workers`, %d pods, runtimes %s | ≥ 0.70× (aim 0.85×) | %s | %s |\n", o.pods, strings.Join(s.runtimes, " + "), ratios(s.list), both(s.list, 0.70))
	p99 := fmt.Sprintf("%s (vegeta; baseline %s)", ms(s.page.vSrv.Latencies.P99), ms(s.page.vBase.Latencies.P99))
	p99ok := s.page.vSrv.Latencies.P99 < 10*time.Millisecond
	if s.page.wSrv != nil {
		p99 += fmt.Sprintf(", %s (wrk; baseline %s)", ms(s.page.wSrv.p99), ms(s.page.wBase.p99))
	}
	fmt.Printf("| p99 of the page of 200 at %d connections | < 10 ms | %s | %s |\n", o.connections, p99, verdict(p99ok))
	sorted := slices.Clone(s.starts)
	slices.Sort(sorted)
	firstCache := "cache as the previous run left it"
	if o.dropCaches {
		firstCache = "page cache dropped"
	}
	// With an index cache the target is the cold restart (the cache is
	// what a restart has); without one, the first start.
	judged, cold := s.starts[0], fmt.Sprintf("first start %s (%s, no snapshot)", s.starts[0].Round(time.Millisecond), firstCache)
	if s.cached && len(s.starts) > 1 {
		judged = s.starts[1]
		cold = fmt.Sprintf("restart with snapshot %s, first start without %s (%s before each)",
			s.starts[1].Round(time.Millisecond), s.starts[0].Round(time.Millisecond), firstCache)
	}
	fmt.Printf("| cold start to a correct first answer, %d pods | < 0.8 s (aim < 0.5 s) | %s, median %s | %s |\n",
		o.pods, cold, sorted[len(sorted)/2].Round(time.Millisecond), verdict(judged < 800*time.Millisecond))
	if s.bigPods > 0 {
		fmt.Printf("| peak RSS at %d pods | ≤ 100 MiB, no soft limit below 256 MiB | %s (with the server's default soft limit) | %s |\n",
			s.bigPods, mib(s.bigRSS), verdict(s.bigRSS <= 100*1024))
		rel := s.bigPageRatio / s.page.vRatio
		fmt.Printf("| page of 200 at %d pods vs at %d | ≥ 0.95× | %.2f× (each against the static server on its own bytes: %.2f× and %.2f×) | %s |\n",
			s.bigPods, o.pods, rel, s.bigPageRatio, s.page.vRatio, verdict(rel >= 0.95))
	} else {
		fmt.Println("| peak RSS at the large store | ≤ 100 MiB | not measured (-big-pods 0) | |")
		fmt.Println("| page of 200 at the large store vs 10k | ≥ 0.95× | not measured (-big-pods 0) | |")
	}
	fmt.Println()
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func mib(kb int) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

// bigStore starts the server over the large store, times the cold start and
// loads it briefly (the page of 200 against a static baseline of its own
// bytes too), then reports its peak RSS.
func bigStore(o options, extra []string, sum *summary) error {
	dataDir := filepath.Join(o.storeDir, fmt.Sprintf("pods-%d", o.bigPods))
	t0 := time.Now()
	if err := benchstore.Generate(dataDir, o.bigPods, workspaceRoot); err != nil {
		return fmt.Errorf("generating the large store: %w", err)
	}
	fmt.Printf("Store of %d pods ready in %s.\n\n", o.bigPods, time.Since(t0).Round(time.Millisecond))
	srv, starts, err := coldStarts(o, dataDir, o.bigPods, 2, extra, false)
	if err != nil {
		return err
	}
	defer srv.stop()
	afterStart := srv.peakRSS()
	if err := settle(srv.url); err != nil {
		return err
	}
	pagePath := "/api/runtimes/" + runtimeID + "/workers?limit=200"
	page, err := capture(srv.url + pagePath)
	if err != nil {
		return err
	}
	base, err := startBaseline(map[string]captured{pagePath: page, "/api/workers": page})
	if err != nil {
		return err
	}
	defer base.stop()
	fmt.Println("| at " + strconv.Itoa(o.bigPods) + " pods | server req/s | p50 | p99 | baseline req/s | ratio |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for i, sc := range []scenario{
		{name: "page of 200", path: pagePath, want: 200},
		{name: "merged list", path: "/api/workers", want: 200},
		{name: "one worker by id", path: "/api/runtimes/" + runtimeID + "/workers/" + string(compat.WorkerIDFor(benchstore.PodName(o.bigPods/2))), want: 200},
	} {
		r, err := attack(srv.url, sc, o.bigDuration, o.connections, nil)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Printf("| %s | %.0f | %s | %s | | |\n", sc.name, r.Throughput, ms(r.Latencies.P50), ms(r.Latencies.P99))
			continue
		}
		b, err := attack(base.url, sc, o.bigDuration, o.connections, nil)
		if err != nil {
			return err
		}
		sum.bigPageRatio = r.Throughput / b.Throughput
		fmt.Printf("| %s | %.0f | %s | %s | %.0f | **%.2f×** |\n", sc.name, r.Throughput, ms(r.Latencies.P50), ms(r.Latencies.P99), b.Throughput, sum.bigPageRatio)
	}
	fmt.Println()
	sum.bigPods, sum.bigStarts, sum.bigRSS = o.bigPods, starts, srv.peakRSS()
	printStarts(o, o.bigPods, starts)
	fmt.Printf("At %d pods: cold start to the first correct answer %s; peak RSS (VmHWM) after start %s, after the load **%s**.\n\n",
		o.bigPods, durations(starts), mib(afterStart), mib(sum.bigRSS))
	return nil
}

// coldStarts starts the server n times over dataDir (stopping all but the
// last, which it returns) and reports each start's time to a correct answer.
// With o.cacheDir the server keeps its index cache there: the first start
// has none (it is removed first) and writes it, the restarts use it. With
// o.dropCaches the page cache is dropped before the first start and again
// before the second (a cold restart).
func coldStarts(o options, dataDir string, pods, n int, extra []string, pprof bool) (*proc, []time.Duration, error) {
	var out []time.Duration
	if o.cacheDir != "" {
		cache := filepath.Join(o.cacheDir, fmt.Sprintf("index-%d.cache", pods))
		if err := os.Remove(cache); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		extra = append(slices.Clip(extra), "--index-cache", cache)
	}
	for i := range n {
		if o.dropCaches && i < 2 {
			if err := dropPageCache(); err != nil {
				fmt.Printf("The page cache could not be dropped (%v): start %d reads whatever the cache holds.\n\n", err, i+1)
			}
		}
		srv, d, err := startServer(o.server, dataDir, pods, extra, pprof && i == n-1)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, d)
		if i == n-1 {
			return srv, out, nil
		}
		srv.stop()
		time.Sleep(time.Second) // let the kernel drop the stopped server's watches
	}
	return nil, nil, errors.New("no start")
}

// printStarts reports the starts of a store of pods.
func printStarts(o options, pods int, starts []time.Duration) {
	cache := "page cache warm after the first"
	if o.dropCaches {
		cache = "page cache dropped before the first and the second, warm after"
	}
	index := "without an index cache (this server binary has no `--index-cache`)"
	if o.cacheDir != "" {
		index = "the first without an index cache, the others with the one it wrote (`--index-cache`)"
	}
	fmt.Printf("Cold start to the first correct answer at %d pods (exec of the server to a 200 with the expected worker; %d starts, %s; %s): %s.\n\n",
		pods, len(starts), index, cache, durations(starts))
	if len(starts) < 2 {
		return
	}
	state := "page cache as the previous run left it"
	if o.dropCaches {
		state = "cold cache"
	}
	second := "restart, " + state + ", no snapshot (the server has no `--index-cache`)"
	if o.cacheDir != "" {
		second = "restart, " + state + ", with snapshot"
	}
	fmt.Printf("- first start, %s, no snapshot: **%s**\n- %s: **%s**\n\n", state, starts[0].Round(time.Millisecond), second, starts[1].Round(time.Millisecond))
}

// dropPageCache writes out dirty pages and drops the clean ones, the
// dentries and the inodes, so that the next start reads from the disk.
func dropPageCache() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

// durations formats start times: each, then the median in bold.
func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return strings.Join(parts, ", ") + " (median **" + sorted[len(sorted)/2].Round(time.Millisecond).String() + "**)"
}

// proc is a child process serving HTTP on 127.0.0.1.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *logSink
	// pprofAddr serves net/http/pprof (a server built with -tags pprof).
	pprofAddr string
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// startProfile asks the server for a CPU profile of the next du (less a
// margin) and returns a function that waits for it and writes it to path.
func (p *proc) startProfile(path string, du time.Duration) func() error {
	secs := max(1, int(du.Seconds())-1)
	type got struct {
		data []byte
		err  error
	}
	ch := make(chan got, 1)
	go func() {
		client := &http.Client{Timeout: du + 30*time.Second}
		resp, err := client.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.pprofAddr, secs))
		if err != nil {
			ch <- got{err: fmt.Errorf("CPU profile (is the server built with -tags pprof?): %w", err)}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("CPU profile: status %d", resp.StatusCode)
		}
		ch <- got{data, err}
	}()
	return func() error {
		g := <-ch
		if g.err != nil {
			return g.err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "loadbench: CPU profile of the server written to %s\n", path)
		return os.WriteFile(path, g.data, 0o644)
	}
}

// peakRSS is the process's VmHWM in KiB (0 when unreadable).
func (p *proc) peakRSS() int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb
		}
	}
	return 0
}

// logSink takes the server's stderr like a log collector would (a pipe that
// is read at once): it counts the lines and keeps the last few KiB, shown
// when the server fails to start.
type logSink struct {
	mu    sync.Mutex
	n, nb int64
	tail  []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n += int64(bytes.Count(p, []byte{'\n'}))
	l.nb += int64(len(p))
	l.tail = append(l.tail, p...)
	if len(l.tail) > 8<<10 {
		l.tail = append(l.tail[:0], l.tail[len(l.tail)-4<<10:]...)
	}
	return len(p), nil
}

func (l *logSink) lines() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.n }
func (l *logSink) bytes() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.nb }
func (l *logSink) last() string { l.mu.Lock(); defer l.mu.Unlock(); return string(l.tail) }

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startServer runs the server binary over dataDir, with its default flags
// (log level included) and extra, and returns once it answers a lookup of a
// known worker correctly; the duration is exec to that answer. With pprof
// the server is asked to serve net/http/pprof on another loopback port.
func startServer(bin, dataDir string, pods int, extra []string, pprof bool) (*proc, time.Duration, error) {
	addr, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	args := append([]string{"--listen", addr, "--workspace-id", "bench", "--workspace-root", workspaceRoot, "--data-dir", dataDir}, extra...)
	cmd := exec.Command(bin, args...)
	p := &proc{cmd: cmd, url: "http://" + addr, logs: &logSink{}}
	cmd.Stdout, cmd.Stderr = os.Stderr, p.logs
	if pprof {
		if p.pprofAddr, err = freePort(); err != nil {
			return nil, 0, err
		}
		cmd.Env = append(os.Environ(), "RUNTIME_REGISTRY_PPROF_LISTEN="+p.pprofAddr)
	}
	probe := "http://" + addr + "/api/runtimes/" + runtimeID + "/workers/" + string(compat.WorkerIDFor(benchstore.PodName(pods-1)))
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting %s: %w", bin, err)
	}
	for time.Since(start) < 60*time.Second {
		resp, err := client.Get(probe)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == 200 && bytes.Contains(body, []byte(`"label":"`+benchstore.PodName(pods-1)+`"`)) {
				return p, time.Since(start), nil
			}
			p.stop()
			return nil, 0, fmt.Errorf("first answer was %d: %.200s", resp.StatusCode, body)
		}
		time.Sleep(time.Millisecond)
	}
	p.stop()
	return nil, 0, fmt.Errorf("the server did not answer within 60 s; its last output:\n%s", p.logs.last())
}

// otherSources are the server flags that register runtimes beside the
// local one, where the server binary has them: the embedded runtime
// (--state-dir and --profiles, in a temporary directory) and one remote
// runtime (--runtimes): a worker-runtime process on loopback, started here.
// What is skipped, and why, is returned as notes. cleanup stops the process
// and removes the temporary files.
func otherSources(bin, workerRuntime string) (extra, notes []string, cleanup func(), err error) {
	cleanup = func() {}
	has := serverHas(bin)
	dir, err := os.MkdirTemp("", "loadbench-runtimes-")
	if err != nil {
		return nil, nil, cleanup, err
	}
	var stops []func()
	cleanup = func() {
		for _, stop := range stops {
			stop()
		}
		_ = os.RemoveAll(dir)
	}
	profiles := filepath.Join(dir, "profiles.yaml")
	const yaml = "default: echo\nprofiles:\n  - name: echo\n    label: Echo\n    command: [\"/bin/cat\"]\n"
	if err := os.WriteFile(profiles, []byte(yaml), 0o644); err != nil {
		return nil, nil, cleanup, err
	}
	// Both runtimes start their workers in the workspace root, which must
	// therefore exist (the pods only name it).
	rootErr := os.MkdirAll(workspaceRoot, 0o755)
	switch {
	case has("state-dir") && has("profiles") && rootErr != nil:
		notes = append(notes, fmt.Sprintf("The embedded runtime is skipped: it needs the workspace root %s, which cannot be made here (%v).", workspaceRoot, rootErr))
	case has("state-dir") && has("profiles"):
		extra = append(extra, "--state-dir", filepath.Join(dir, "embedded"), "--profiles", profiles)
	default:
		notes = append(notes, "The embedded runtime is skipped: this server binary has no `--state-dir`/`--profiles`.")
	}
	_, wrErr := os.Stat(workerRuntime)
	switch {
	case !has("runtimes"):
		notes = append(notes, "The remote runtime is skipped: this server binary has no `--runtimes`.")
	case wrErr != nil:
		notes = append(notes, fmt.Sprintf("The remote runtime is skipped: no worker-runtime binary at %s (`make build-worker-runtime`, or -worker-runtime).", workerRuntime))
	case rootErr != nil:
		notes = append(notes, "The remote runtime is skipped: it needs the workspace root, which cannot be made here.")
	default:
		file, stop, err := startRemote(workerRuntime, dir, profiles)
		if err != nil {
			return nil, nil, cleanup, err
		}
		stops = append(stops, stop)
		extra = append(extra, "--runtimes", file)
	}
	return extra, notes, cleanup, nil
}

// serverHas reports, by its -h output, which flags the server binary has.
func serverHas(bin string) func(name string) bool {
	help, _ := exec.Command(bin, "-h").CombinedOutput()
	return func(name string) bool {
		return bytes.Contains(help, []byte("-"+name+" ")) || bytes.Contains(help, []byte("-"+name+"\n"))
	}
}

// startRemote starts a worker-runtime process on loopback (its own state,
// the profiles given, a bearer token) and writes the --runtimes file that
// registers it as "bench-remote". stop ends the process.
func startRemote(bin, dir, profiles string) (file string, stop func(), err error) {
	addr, err := freePort()
	if err != nil {
		return "", nil, err
	}
	token := filepath.Join(dir, "remote.token")
	if err := os.WriteFile(token, []byte(fmt.Sprintf("bench-%d-token", time.Now().UnixNano())), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--listen", addr, "--state-dir", filepath.Join(dir, "remote"), "--profiles", profiles,
		"--workspace-root", workspaceRoot, "--token-file", token, "--log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, url: "http://" + addr}
	ok := false
	for range 10_000 {
		if resp, err := http.Get(p.url + "/healthz"); err == nil {
			_ = resp.Body.Close()
			ok = resp.StatusCode == 200
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !ok {
		p.stop()
		return "", nil, errors.New("the worker-runtime process did not become healthy")
	}
	file = filepath.Join(dir, "runtimes.yaml")
	conf := fmt.Sprintf("runtimes:\n  - id: bench-remote\n    label: Bench remote\n    url: %s\n    token_file: %s\n    timeout: 5s\n", p.url, token)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		p.stop()
		return "", nil, err
	}
	return file, p.stop, nil
}

// extraNames formats the extra flags' names for the report.
func extraNames(extra []string) []string {
	var out []string
	for _, a := range extra {
		if strings.HasPrefix(a, "--") {
			out = append(out, ", `"+a+"`")
		}
	}
	return out
}

// runtimeIDs lists the runtime ids the server registers.
func runtimeIDs(base string) ([]string, error) {
	resp, err := http.Get(base + "/api/runtimes")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var list struct {
		Items []struct {
			RuntimeID string `json:"runtime_id"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("listing the runtimes: %w", err)
	}
	var ids []string
	for _, it := range list.Items {
		ids = append(ids, it.RuntimeID)
	}
	return ids, nil
}

// droppedLogLines is the server's runtime_registry_log_lines_dropped_total,
// or "not exported" for a server without it.
func droppedLogLines(base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return "unknown"
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "runtime_registry_log_lines_dropped_total "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "not exported by this server"
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
}

// runWrk attacks sc on base with `wrk -t1 -c<conns> --latency` for du. wrk
// counts no status code but reports answers outside 2xx/3xx, which fail
// the run.
func runWrk(wrk, base string, sc scenario, du time.Duration, conns int) (*wrkResult, error) {
	args := []string{"-t1", "-c" + strconv.Itoa(conns), fmt.Sprintf("-d%ds", max(1, int(du.Seconds()))), "--latency"}
	for k, vs := range sc.header {
		for _, v := range vs {
			args = append(args, "-H", k+": "+v)
		}
	}
	out, err := exec.Command(wrk, append(args, base+sc.path)...).Output()
	if err != nil {
		return nil, fmt.Errorf("wrk on %s: %w", base+sc.path, err)
	}
	r := &wrkResult{}
	inDist := false
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			return nil, fmt.Errorf("wrk on %s: %s", base+sc.path, strings.TrimSpace(line))
		case f[0] == "Requests/sec:" && len(f) == 2:
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case f[0] == "Latency" && len(f) == 2 && f[1] == "Distribution":
			inDist = true
		case inDist && len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := time.ParseDuration(f[1])
			if err != nil {
				return nil, fmt.Errorf("wrk latency %q: %w", f[1], err)
			}
			if f[0] == "50%" {
				r.p50 = d
			} else {
				r.p99 = d
			}
		}
	}
	if r.rps == 0 {
		return nil, fmt.Errorf("wrk on %s: no Requests/sec in its output:\n%s", base+sc.path, out)
	}
	return r, nil
}

// captured is one answer of the server, as the baseline serves it.
type captured struct {
	Body        []byte
	ContentType string
	ETag        string
}

// settle waits until the server's local index watches every pod (the
// gauge runtime_registry_local_index_watching is 1): the sweep that adds the
// watches runs after the first answer, and the load figures are of a
// settled server, not of one still adding 100,000 watches.
func settle(base string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if bytes.Contains(body, []byte("\nruntime_registry_local_index_watching 1\n")) {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the local index did not start watching within 2 minutes")
}

func capture(url string) (captured, error) {
	resp, err := http.Get(url)
	if err != nil {
		return captured{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
		return captured{}, fmt.Errorf("capturing %s: status %d: %w", url, resp.StatusCode, err)
	}
	return captured{Body: body, ContentType: resp.Header.Get("Content-Type"), ETag: resp.Header.Get("ETag")}, nil
}

// startBaseline writes the captured answers to a directory and serves them
// from memory in a child process (this program with -serve-static), so that
// the baseline, like the server, is a process of its own.
func startBaseline(files map[string]captured) (*proc, error) {
	dir, err := os.MkdirTemp("", "loadbench-static-")
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(files)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "files.json"), data, 0o644); err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-static", dir, "-listen", addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, url: "http://" + addr}
	for range 5000 {
		if resp, err := http.Get(p.url + "/api/workers"); err == nil {
			_ = resp.Body.Close()
			_ = os.RemoveAll(dir)
			return p, nil
		}
		time.Sleep(time.Millisecond)
	}
	p.stop()
	return nil, errors.New("the baseline did not start")
}

// serveStatic is the baseline: the captured bytes from memory, with the same
// Content-Type, ETag and Cache-Control, and 304 for a matching If-None-Match.
func serveStatic(dir, listen string) error {
	data, err := os.ReadFile(filepath.Join(dir, "files.json"))
	if err != nil {
		return err
	}
	files := map[string]captured{}
	if err := json.Unmarshal(data, &files); err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		hdr := w.Header()
		hdr.Set("ETag", f.ETag)
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("X-Content-Type-Options", "nosniff")
		if r.Header.Get("If-None-Match") == f.ETag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		hdr.Set("Content-Type", f.ContentType)
		_, _ = w.Write(f.Body)
	})
	return (&http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe()
}

// attack runs one scenario against base for du with conns connections at
// the highest rate they sustain, and fails if any answer is not sc.want.
// Each result is also added to all, when not nil.
func attack(base string, sc scenario, du time.Duration, conns int, all *vegeta.Metrics) (*vegeta.Metrics, error) {
	atk := vegeta.NewAttacker(vegeta.Connections(conns), vegeta.MaxConnections(conns),
		vegeta.Workers(uint64(conns)), vegeta.MaxWorkers(uint64(conns)), vegeta.KeepAlive(true),
		vegeta.MaxBody(0), vegeta.Timeout(10*time.Second))
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: base + sc.path, Header: sc.header})
	var m vegeta.Metrics
	for res := range atk.Attack(tr, vegeta.ConstantPacer{}, du, sc.name) {
		m.Add(res)
		if all != nil {
			all.Add(res)
		}
	}
	m.Close()
	if n := m.StatusCodes[strconv.Itoa(sc.want)]; n != int(m.Requests) || n == 0 {
		return nil, fmt.Errorf("%s on %s: status codes %v, want all %d (errors: %v)", sc.name, base, m.StatusCodes, sc.want, m.Errors)
	}
	return &m, nil
}

// freshnessUnderLoad rewrites the metadata of one pod several times while
// the page is attacked, and times how long each rewrite takes to show.
func freshnessUnderLoad(base, dataDir, pagePath string, o options) ([]time.Duration, error) {
	var wg sync.WaitGroup
	atk := vegeta.NewAttacker(vegeta.Connections(o.connections), vegeta.MaxConnections(o.connections),
		vegeta.Workers(uint64(o.connections)), vegeta.MaxWorkers(uint64(o.connections)), vegeta.KeepAlive(true), vegeta.MaxBody(0))
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: base + pagePath})
	wg.Go(func() {
		for range atk.Attack(tr, vegeta.ConstantPacer{}, 0, "load") {
		}
	})
	defer wg.Wait()
	defer atk.Stop()
	time.Sleep(time.Second) // let the load settle

	pod := o.pods / 3
	url := base + "/api/runtimes/" + runtimeID + "/workers/" + string(compat.WorkerIDFor(benchstore.PodName(pod)))
	path := filepath.Join(dataDir, "pods", benchstore.PodName(pod), "metadata.json")
	client := &http.Client{Timeout: 5 * time.Second}
	var out []time.Duration
	for i := range o.freshness {
		label := fmt.Sprintf("fresh-%d-%d", time.Now().UnixNano(), i)
		start := time.Now()
		if err := os.WriteFile(path, benchstore.Metadata(pod, workspaceRoot, label), 0o644); err != nil {
			return nil, err
		}
		for {
			resp, err := client.Get(url)
			if err != nil {
				return nil, err
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if bytes.Contains(body, []byte(`"label":"`+label+`"`)) {
				out = append(out, time.Since(start))
				break
			}
			if time.Since(start) > 30*time.Second {
				return nil, errors.New("a rewrite did not show within 30 s")
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Put the pod back as generated, so that the next run starts the same.
	if err := os.WriteFile(path, benchstore.Metadata(pod, workspaceRoot, ""), 0o644); err != nil {
		return nil, err
	}
	return out, nil
}
