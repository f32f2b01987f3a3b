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

func run(o options) error {
	fmt.Printf("# loadbench %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("Machine: %d CPUs (GOMAXPROCS of each process: default). Connections: %d. Attack length: %s.\n\n",
		runtime.NumCPU(), o.connections, o.duration)

	dataDir := filepath.Join(o.storeDir, fmt.Sprintf("pods-%d", o.pods))
	t0 := time.Now()
	if err := benchstore.Generate(dataDir, o.pods, workspaceRoot); err != nil {
		return fmt.Errorf("generating the store: %w", err)
	}
	fmt.Printf("Store of %d pods ready in %s (reused when already generated).\n\n", o.pods, time.Since(t0).Round(time.Millisecond))

	srv, starts, err := coldStarts(o.server, dataDir, o.pods, 3)
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Printf("Cold start to the first correct answer at %d pods (exec of the server to a 200 with the expected worker; %d starts): %s.\n\n",
		o.pods, len(starts), durations(starts))

	workerPath := "/api/runtimes/" + runtimeID + "/workers/" + string(compat.WorkerIDFor(benchstore.PodName(o.pods/2)))
	pagePath := "/api/runtimes/" + runtimeID + "/workers?limit=200"
	scenarios := []scenario{
		{name: "page of 200 (`GET /api/runtimes/{runtime_id}/workers?limit=200`)", path: pagePath, want: 200},
		{name: "legacy merged list (`GET /api/workers`)", path: "/api/workers", want: 200},
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

	fmt.Println("| scenario | body bytes | server req/s | server p50 | server p99 | baseline req/s | baseline p50 | baseline p99 | ratio (req/s) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, sc := range scenarios {
		rs, err := attack(srv.url, sc, o.duration, o.connections)
		if err != nil {
			return err
		}
		rb, err := attack(base.url, sc, o.duration, o.connections)
		if err != nil {
			return err
		}
		size := len(files[sc.path].Body)
		if sc.want == 304 {
			size = 0
		}
		fmt.Printf("| %s | %d | %.0f | %s | %s | %.0f | %s | %s | **%.2f×** |\n", sc.name, size,
			rs.Throughput, ms(rs.Latencies.P50), ms(rs.Latencies.P99),
			rb.Throughput, ms(rb.Latencies.P50), ms(rb.Latencies.P99), rs.Throughput/rb.Throughput)
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

	if o.bigPods > 0 {
		if err := bigStore(o); err != nil {
			return err
		}
	}
	return nil
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func mib(kb int) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// bigStore starts the server over the large store, times the cold start and
// loads it briefly, then reports its peak RSS.
func bigStore(o options) error {
	dataDir := filepath.Join(o.storeDir, fmt.Sprintf("pods-%d", o.bigPods))
	t0 := time.Now()
	if err := benchstore.Generate(dataDir, o.bigPods, workspaceRoot); err != nil {
		return fmt.Errorf("generating the large store: %w", err)
	}
	fmt.Printf("Store of %d pods ready in %s.\n\n", o.bigPods, time.Since(t0).Round(time.Millisecond))
	srv, starts, err := coldStarts(o.server, dataDir, o.bigPods, 2)
	if err != nil {
		return err
	}
	defer srv.stop()
	afterStart := srv.peakRSS()
	pagePath := "/api/runtimes/" + runtimeID + "/workers?limit=200"
	fmt.Println("| at " + strconv.Itoa(o.bigPods) + " pods | server req/s | p50 | p99 |")
	fmt.Println("|---|---:|---:|---:|")
	for _, sc := range []scenario{
		{name: "page of 200", path: pagePath, want: 200},
		{name: "legacy merged list", path: "/api/workers", want: 200},
		{name: "one worker by id", path: "/api/runtimes/" + runtimeID + "/workers/" + string(compat.WorkerIDFor(benchstore.PodName(o.bigPods/2))), want: 200},
	} {
		r, err := attack(srv.url, sc, o.bigDuration, o.connections)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %.0f | %s | %s |\n", sc.name, r.Throughput, ms(r.Latencies.P50), ms(r.Latencies.P99))
	}
	fmt.Println()
	fmt.Printf("At %d pods: cold start to the first correct answer %s; peak RSS (VmHWM) after start %s, after the load **%s**.\n\n",
		o.bigPods, durations(starts), mib(afterStart), mib(srv.peakRSS()))
	return nil
}

// coldStarts starts the server n times over dataDir (stopping all but the
// last, which it returns) and reports each start's time to a correct answer.
func coldStarts(bin, dataDir string, pods, n int) (*proc, []time.Duration, error) {
	var out []time.Duration
	for i := range n {
		srv, d, err := startServer(bin, dataDir, pods)
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
	cmd *exec.Cmd
	url string
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

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startServer runs the server binary over dataDir and returns once it answers
// a lookup of a known worker correctly; the duration is exec to that answer.
func startServer(bin, dataDir string, pods int) (*proc, time.Duration, error) {
	addr, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(bin, "--listen", addr, "--workspace-id", "bench", "--workspace-root", workspaceRoot,
		"--data-dir", dataDir, "--log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	probe := "http://" + addr + "/api/runtimes/" + runtimeID + "/workers/" + string(compat.WorkerIDFor(benchstore.PodName(pods-1)))
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, url: "http://" + addr}
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
	return nil, 0, errors.New("the server did not answer within 60 s")
}

// captured is one answer of the server, as the baseline serves it.
type captured struct {
	Body        []byte
	ContentType string
	ETag        string
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
func attack(base string, sc scenario, du time.Duration, conns int) (*vegeta.Metrics, error) {
	atk := vegeta.NewAttacker(vegeta.Connections(conns), vegeta.MaxConnections(conns),
		vegeta.Workers(uint64(conns)), vegeta.MaxWorkers(uint64(conns)), vegeta.KeepAlive(true),
		vegeta.MaxBody(0), vegeta.Timeout(10*time.Second))
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: base + sc.path, Header: sc.header})
	var m vegeta.Metrics
	for res := range atk.Attack(tr, vegeta.ConstantPacer{}, du, sc.name) {
		m.Add(res)
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
