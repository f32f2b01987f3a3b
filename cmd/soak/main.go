// Command soak runs a bounded load test with faults against the real server
// binary on loopback: it serves a temporary pod store that writer goroutines
// keep rewriting (atomically and with torn in-place writes), renaming,
// adding to and deleting from, while requests arrive at a fixed rate. Every
// response is checked against the contract; every listed worker id must
// resolve or answer a clean unknown_worker; once the writers stop, the
// server's list and lookups must agree with a fresh scan of the store (a
// pod answered differently is counted lost or stale); the server's
// goroutines and RSS must be flat at the end. It prints the figures and exits non-zero if any
// check failed. `make soak` builds the server with -tags soakhooks (for the
// goroutine count) and runs this.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/workspace-backend/runtime-registry/api"
	"github.com/workspace-backend/runtime-registry/internal/contract"
)

// options are the soak's flags.
type options struct {
	server      string
	duration    time.Duration
	rate        int
	pods        int
	maxInFlight int
	writerPause time.Duration
	faults      string
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "bin/runtime-registry-soak", "server binary (built with -tags soakhooks)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long to send load")
	flag.IntVar(&o.rate, "rate", 200, "requests per second, sent at a fixed rate")
	flag.IntVar(&o.pods, "pods", 50, "pods kept in the store (about)")
	flag.IntVar(&o.maxInFlight, "max-in-flight", 256, "requests in flight at most; a tick finding all busy is counted as skipped")
	flag.DurationVar(&o.writerPause, "writer-pause", 5*time.Millisecond, "pause between two operations of one writer")
	flag.StringVar(&o.faults, "faults", "atomic,torn,rename,adddel", "writers to run: atomic (rewrite by rename), torn (in-place), rename (pod dirs), adddel (add and delete pods)")
	flag.Parse()
	if err := soak(o); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// stats are the soak's counters.
type stats struct {
	sent, skipped, transportErrs, fiveXX, malformed atomic.Int64
	resolved, unknownAfterList, badResolution       atomic.Int64
	mu                                              sync.Mutex
	byStatus                                        map[int]int64
	latencies                                       []time.Duration
	firstFailures                                   []string
}

func (s *stats) latency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies = append(s.latencies, d)
}

// percentiles of the request latencies (p50, p99, max).
func (s *stats) percentiles() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.latencies) == 0 {
		return "none"
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	at := func(q float64) time.Duration { return l[min(len(l)-1, int(q*float64(len(l))))] }
	return fmt.Sprintf("p50 %v, p99 %v, max %v", at(0.5).Round(time.Microsecond*100), at(0.99).Round(time.Microsecond*100), l[len(l)-1].Round(time.Millisecond))
}

func (s *stats) status(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byStatus[code]++
}

func (s *stats) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.firstFailures) < 20 {
		s.firstFailures = append(s.firstFailures, fmt.Sprintf(format, args...))
	}
}

func soak(o options) error {
	base, err := os.MkdirTemp("", "soak-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(base) }()
	st := newStore(base, o.pods)
	if err := st.populate(); err != nil {
		return err
	}

	// The server: the real binary on a free loopback port.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, o.server, "--listen", "127.0.0.1:0", "--workspace-id", workspaceID,
		"--workspace-root", st.root, "--data-dir", st.dataDir, "--log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", o.server, err)
	}
	logs := newLogWatch(stderr, base)
	addr, err := logs.waitListen(10 * time.Second)
	if err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	pid := cmd.Process.Pid
	v, err := newValidator()
	if err != nil {
		return err
	}
	transport := &http.Transport{MaxIdleConnsPerHost: o.maxInFlight, MaxConnsPerHost: o.maxInFlight}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	s := &stats{byStatus: map[int]int64{}}
	ld := &load{base: "http://" + addr, client: client, v: v, s: s}

	// Warm up, then take the baseline with the server idle.
	for range 50 {
		ld.one(ctx, 0)
	}
	transport.CloseIdleConnections()
	time.Sleep(time.Second)
	g0, err := logs.goroutines(pid)
	if err != nil {
		return err
	}
	rss0, hwm0 := memOf(pid)
	fd0 := fdsOf(pid)

	// Faults: writers change the store for the whole run.
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	writers := st.writers(strings.Split(o.faults, ","))
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				w()
				select {
				case <-wctx.Done():
					return
				case <-time.After(o.writerPause):
				}
			}
		}()
	}

	// Load: one request per tick, at a fixed rate, never more than
	// maxInFlight at once. Ticks are due at fixed times from the start (a
	// late tick is sent at once, not dropped), so the run sends rate ×
	// duration ticks unless the server holds maxInFlight requests.
	start := time.Now()
	cpu0, self0 := cpuOf(pid), cpuOf(os.Getpid())
	sem := make(chan struct{}, o.maxInFlight)
	var rssMu sync.Mutex
	var rssSeries []int64
	stopSampling := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				rss, _ := memOf(pid)
				rssMu.Lock()
				rssSeries = append(rssSeries, rss)
				rssMu.Unlock()
			}
		}
	}()
	var reqs sync.WaitGroup
	interval := time.Second / time.Duration(o.rate)
	total := int(o.duration / interval)
	n, late := 0, 0
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		} else if d < -50*time.Millisecond {
			late++
		}
		select {
		case sem <- struct{}{}:
			reqs.Add(1)
			n++
			go func(n int) {
				defer func() { <-sem; reqs.Done() }()
				ld.one(ctx, n)
			}(n)
		default:
			s.skipped.Add(1)
		}
	}
	reqs.Wait()
	close(stopSampling)
	cpu := cpuOf(pid) - cpu0
	selfCPU := cpuOf(os.Getpid()) - self0
	elapsed := time.Since(start)
	stopWriters()
	wg.Wait()

	// The index must end where a fresh scan of the store is: every pod the
	// server lists or resolves differently is lost or stale.
	diff, converged, cmpErr := ld.finalCompare(ctx, st, 5*time.Second)

	// The end: idle again, connections closed by the client.
	transport.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	g1, err := logs.goroutines(pid)
	if err != nil {
		return err
	}
	rss1, hwm1 := memOf(pid)
	fd1 := fdsOf(pid)

	_ = cmd.Process.Signal(syscall.SIGTERM)
	waitErr := cmd.Wait()
	logs.wait()

	// Report.
	fmt.Printf("soak: %v at %d req/s (%d pods, writers %s), server %s\n", elapsed.Round(time.Millisecond), o.rate, o.pods, o.faults, o.server)
	fmt.Printf("ticks                    %d due, %d sent (%d over 50 ms late), %d skipped (all %d in flight)\n", total, n, late, s.skipped.Load(), o.maxInFlight)
	fmt.Printf("requests sent            %d (%.1f/s)\n", s.sent.Load(), float64(s.sent.Load())/elapsed.Seconds())
	fmt.Printf("latency (incl. checks)   %s\n", s.percentiles())
	fmt.Printf("by status                %s\n", statusLine(s))
	fmt.Printf("5xx                      %d\n", s.fiveXX.Load())
	fmt.Printf("transport errors         %d\n", s.transportErrs.Load())
	fmt.Printf("malformed responses      %d\n", s.malformed.Load())
	fmt.Printf("listed ids looked up     %d resolved, %d clean unknown_worker (gone since listed), %d other answers\n", s.resolved.Load(), s.unknownAfterList.Load(), s.badResolution.Load())
	fmt.Printf("store operations         %s\n", st.opsLine())
	if cmpErr != nil {
		fmt.Printf("final index vs scan      not compared: %v\n", cmpErr)
	} else {
		fmt.Printf("final index vs scan      %d workers in the store; %d lost, %d stale (after %v)\n",
			diff.workers, len(diff.lost), len(diff.stale), converged.Round(time.Millisecond))
		for _, x := range append(slices.Clone(diff.lost), diff.stale...)[:min(10, len(diff.lost)+len(diff.stale))] {
			fmt.Println("index differs:", x)
		}
	}
	fmt.Printf("log lines                %d, holding a path of the store: %d\n", logs.lines.Load(), logs.leaks.Load())
	fmt.Printf("server CPU under load    %v (%.0f%% of one core)\n", cpu.Round(10*time.Millisecond), 100*cpu.Seconds()/elapsed.Seconds())
	fmt.Printf("soak CPU (load, checks)  %v (%.0f%% of one core)\n", selfCPU.Round(10*time.Millisecond), 100*selfCPU.Seconds()/elapsed.Seconds())
	fmt.Printf("server goroutines        %d before, %d after\n", g0, g1)
	fmt.Printf("server RSS               %d KiB before, %d KiB after; peak (VmHWM) %d KiB before, %d KiB after\n", rss0, rss1, hwm0, hwm1)
	rssMu.Lock()
	defer rssMu.Unlock()
	fmt.Printf("RSS every 5 s (KiB)      %v\n", rssSeries)
	fmt.Printf("server open fds          %d before, %d after\n", fd0, fd1)
	fmt.Printf("server exit on SIGTERM   %v\n", errText(waitErr))
	for _, f := range s.firstFailures {
		fmt.Println("failure:", f)
	}

	var failed []string
	check := func(ok bool, what string) {
		if !ok {
			failed = append(failed, what)
		}
	}
	check(s.fiveXX.Load() == 0, "5xx responses")
	check(s.transportErrs.Load() == 0, "transport errors (lost requests)")
	check(s.malformed.Load() == 0, "malformed responses")
	check(s.badResolution.Load() == 0, "listed ids that neither resolved nor answered unknown_worker")
	check(s.resolved.Load() > 0, "no listed id was ever resolved")
	check(cmpErr == nil, "the final index could not be compared with a fresh scan")
	check(diff.ok(), "the final index differs from a fresh scan of the store (lost or stale workers)")
	check(logs.leaks.Load() == 0, "log lines holding a store path")
	check(g1 <= g0+2, "goroutines grew")
	check(fd1 <= fd0+2, "open file descriptors grew")
	// Flat RSS: the end is within 25% (+8 MiB) of the highest sample of the
	// first half of the run.
	if len(rssSeries) >= 2 {
		firstHalf := slices.Max(rssSeries[:len(rssSeries)/2+1])
		check(rss1 <= firstHalf*5/4+8<<10, "RSS grew through the run")
	}
	check(waitErr == nil, "server did not exit cleanly on SIGTERM")
	if len(failed) > 0 {
		return fmt.Errorf("FAILED: %s", strings.Join(failed, "; "))
	}
	fmt.Println("PASS")
	return nil
}

func errText(err error) string {
	if err == nil {
		return "clean (exit 0)"
	}
	return err.Error()
}

func statusLine(s *stats) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := make([]int, 0, len(s.byStatus))
	for c := range s.byStatus {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d:%d", c, s.byStatus[c]))
	}
	return strings.Join(parts, " ")
}

// load sends the requests of the soak.
type load struct {
	base   string
	client *http.Client
	v      *validator
	s      *stats

	mu     sync.Mutex
	listed []string // worker ids of the latest list
	cursor string   // next_cursor of the latest first page
}

const runtimeID = "local-worker-runtime"

// workspaceID is the workspace the soak's server serves.
const workspaceID = "soak:ws"

// one sends the n-th request of the mix: exactly one request per tick, so
// the rate is requests per second. Lookups take ids from the latest list.
func (l *load) one(ctx context.Context, n int) {
	switch n % 10 {
	case 0:
		l.list(ctx, "/api/workers")
	case 1:
		l.list(ctx, "/api/runtimes/"+runtimeID+"/workers?limit=20")
	case 2:
		l.mu.Lock()
		c := l.cursor
		l.mu.Unlock()
		if c == "" {
			l.list(ctx, "/api/runtimes/"+runtimeID+"/workers?limit=20")
			return
		}
		l.list(ctx, "/api/runtimes/"+runtimeID+"/workers?limit=20&cursor="+url.QueryEscape(c))
	case 3, 4:
		l.lookup(ctx)
	case 5:
		l.do(ctx, "GET", "/api/runtimes", "")
	case 6:
		l.do(ctx, "GET", "/api/hosts", "")
	case 7:
		l.do(ctx, "GET", "/api/runtimes/"+runtimeID+"/workers/local-worker-nobody-0000000000000000", "")
	case 8:
		if n%20 < 10 {
			l.do(ctx, "GET", "/api/runtimes/"+runtimeID+"/workers/bad.id", "")
		} else {
			l.do(ctx, "POST", "/api/runtimes/"+runtimeID+"/workers/local-worker-x/stop", `{"mode":"later"}`)
		}
	default:
		if n%20 < 10 {
			l.do(ctx, "GET", "/healthz", "")
		} else {
			l.do(ctx, "GET", "/api/runtimes/"+runtimeID+"/workers?cursor=bm9wZQ", "")
		}
	}
}

// list fetches a worker list and keeps its ids (and, for a first page, its
// next_cursor) for the lookups that follow.
func (l *load) list(ctx context.Context, path string) {
	status, body := l.do(ctx, "GET", path, "")
	if status != http.StatusOK {
		return
	}
	var page struct {
		Items []struct {
			WorkerID string `json:"worker_id"`
		} `json:"items"`
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return // counted as malformed by do
	}
	ids := make([]string, 0, len(page.Items))
	for _, it := range page.Items {
		ids = append(ids, it.WorkerID)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(ids) > 0 {
		l.listed = ids
	}
	if strings.Contains(path, "limit=20") && !strings.Contains(path, "cursor=") {
		l.cursor = ""
		if page.NextCursor != nil {
			l.cursor = *page.NextCursor
		}
	}
}

// lookup gets one id of the latest list: it must resolve (200) or, if its
// pod went away since it was listed, answer a clean unknown_worker.
func (l *load) lookup(ctx context.Context) {
	l.mu.Lock()
	if len(l.listed) == 0 {
		l.mu.Unlock()
		l.do(ctx, "GET", "/api/workers", "")
		return
	}
	id := l.listed[rand.IntN(len(l.listed))]
	l.mu.Unlock()
	status, body := l.do(ctx, "GET", "/api/runtimes/"+runtimeID+"/workers/"+id, "")
	switch {
	case status == http.StatusOK:
		l.s.resolved.Add(1)
	case status == http.StatusNotFound && problemCodeOf(body) == "unknown_worker":
		l.s.unknownAfterList.Add(1)
	default:
		l.s.badResolution.Add(1)
		l.s.fail("listed %s answered %d %s", id, status, body)
	}
}

func problemCodeOf(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Code
}

// do sends one request and checks its answer against the contract.
func (l *load) do(ctx context.Context, method, path, body string) (int, []byte) {
	l.s.sent.Add(1)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, rd)
	if err != nil {
		panic(err) // the soak builds only valid requests
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := l.client.Do(req)
	defer func() { l.s.latency(time.Since(t0)) }()
	if err != nil {
		l.s.transportErrs.Add(1)
		l.s.fail("%s %s: %v", method, path, err)
		return 0, nil
	}
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		l.s.transportErrs.Add(1)
		l.s.fail("%s %s: reading: %v", method, path, err)
		return 0, nil
	}
	l.s.status(resp.StatusCode)
	if resp.StatusCode >= 500 {
		l.s.fiveXX.Add(1)
		l.s.fail("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if err := l.v.check(method, path, resp, data); err != nil {
		l.s.malformed.Add(1)
		l.s.fail("%s %s: %d malformed: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, data
}

// validator checks responses against the embedded contract, as the handler
// tests do: declared status, body schema, problem documents, headers.
// validator checks every answer with the contract's own response checker,
// plus the two headers every answer must carry.
type validator struct {
	checker *contract.ResponseChecker
}

func newValidator() (*validator, error) {
	doc, err := api.Load()
	if err != nil {
		return nil, err
	}
	checker, err := contract.NewResponseChecker(doc)
	if err != nil {
		return nil, err
	}
	return &validator{checker: checker}, nil
}

func (v *validator) check(method, path string, resp *http.Response, body []byte) error {
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		return errors.New("no X-Content-Type-Options: nosniff")
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		return errors.New("grants CORS")
	}
	req, err := http.NewRequest(method, "http://x"+path, nil)
	if err != nil {
		return err
	}
	return v.checker.Check(context.Background(), req, resp.StatusCode, resp.Header, body)
}

// logWatch reads the server's JSON log lines: it finds the listen address
// and the goroutine counts, and counts lines that hold a store path.
type logWatch struct {
	secret      string
	lines       atomic.Int64
	leaks       atomic.Int64
	listen      chan string
	stats       chan int
	done        chan struct{}
	reportLeaks sync.Once
}

func newLogWatch(r io.Reader, secret string) *logWatch {
	w := &logWatch{secret: secret, listen: make(chan string, 1), stats: make(chan int, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			w.lines.Add(1)
			if bytes.Contains(line, []byte(w.secret)) {
				w.leaks.Add(1)
				w.reportLeaks.Do(func() { fmt.Fprintf(os.Stderr, "soak: a log line holds a store path: %s\n", line) })
			}
			var m struct {
				Msg        string `json:"msg"`
				Listen     string `json:"listen"`
				Goroutines int    `json:"goroutines"`
			}
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			switch {
			case m.Msg == "soak_stats":
				w.stats <- m.Goroutines
			case m.Listen != "":
				select {
				case w.listen <- m.Listen:
				default:
				}
			}
		}
	}()
	return w
}

func (w *logWatch) waitListen(d time.Duration) (string, error) {
	select {
	case a := <-w.listen:
		return a, nil
	case <-time.After(d):
		return "", errors.New("the server did not log its listen address")
	}
}

// goroutines asks the server for its goroutine count (SIGUSR1, soakhooks).
func (w *logWatch) goroutines(pid int) (int, error) {
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return 0, err
	}
	select {
	case n := <-w.stats:
		return n, nil
	case <-time.After(5 * time.Second):
		return 0, errors.New("no goroutine count from the server: build it with -tags soakhooks")
	}
}

func (w *logWatch) wait() { <-w.done }

// memOf returns VmRSS and VmHWM of pid in KiB.
func memOf(pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1, -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "VmHWM:":
			hwm = n
		}
	}
	return rss, hwm
}

// cpuOf returns the CPU time (user + system) pid has used.
func cpuOf(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	// USER_HZ is 100 on Linux.
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func fdsOf(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// store is the pod store the writers change.
type store struct {
	root, dataDir, pods string
	target              int

	mu    sync.Mutex
	names []string
	next  int
	ops   map[string]*atomic.Int64
}

func newStore(base string, target int) *store {
	s := &store{root: filepath.Join(base, "ws", "project"), dataDir: filepath.Join(base, "data"), target: target,
		ops: map[string]*atomic.Int64{}}
	s.pods = filepath.Join(s.dataDir, "pods")
	for _, op := range []string{"atomic_rewrite", "torn_write", "rename", "add", "delete"} {
		s.ops[op] = &atomic.Int64{}
	}
	return s
}

func (s *store) opsLine() string {
	var parts []string
	for _, op := range []string{"atomic_rewrite", "torn_write", "rename", "add", "delete"} {
		parts = append(parts, fmt.Sprintf("%s:%d", op, s.ops[op].Load()))
	}
	return strings.Join(parts, " ")
}

func (s *store) populate() error {
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(s.pods, 0o755); err != nil {
		return err
	}
	for range s.target {
		if err := s.add(); err != nil {
			return err
		}
	}
	return nil
}

// metadata is one pod's metadata.json; the writers vary it.
func (s *store) metadata(name string) []byte {
	m := map[string]any{
		"worker_name":    name,
		"workspace_root": s.root,
		"peers":          []any{map[string]any{"socket": "/run/soak.sock"}},
		"resolved_manifest_snapshot": map[string]any{
			"role": []string{"coder", "reviewer", "planner"}[rand.IntN(3)], "profile_selector": map[string]any{"name": "default"},
		},
	}
	if rand.IntN(2) == 0 {
		m["active"] = map[string]any{"session_id": fmt.Sprintf("s-%d", rand.IntN(1e6)), "segment_id": "seg"}
	}
	data, _ := json.Marshal(m)
	return data
}

func (s *store) pick() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.names) == 0 {
		return "", false
	}
	return s.names[rand.IntN(len(s.names))], true
}

// take removes a random name from the set, so that no other writer uses it
// until it is put back (or never, once deleted).
func (s *store) take() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.names) == 0 {
		return "", false
	}
	i := rand.IntN(len(s.names))
	name := s.names[i]
	s.names = slices.Delete(s.names, i, i+1)
	return name, true
}

func (s *store) put(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, name)
}

func (s *store) newName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return fmt.Sprintf("Pod.%05d", s.next)
}

func (s *store) add() error {
	name := s.newName()
	dir := filepath.Join(s.pods, name)
	// Not atomic on purpose: the directory appears before its metadata.
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), s.metadata(name), 0o644); err != nil {
		return err
	}
	s.put(name)
	s.ops["add"].Add(1)
	return nil
}

// writers are the fault injectors; each runs in a loop for the whole soak.
// Errors are expected (another writer may have moved a pod) and ignored.
func (s *store) writers(names []string) []func() {
	all := map[string]func(){
		"atomic": func() { // atomic rewrite: write aside, rename over
			name, ok := s.pick()
			if !ok {
				return
			}
			tmp := filepath.Join(s.pods, name, fmt.Sprintf(".metadata.json.tmp-%d", rand.IntN(1e9)))
			if os.WriteFile(tmp, s.metadata(name), 0o644) == nil {
				if os.Rename(tmp, filepath.Join(s.pods, name, "metadata.json")) == nil {
					s.ops["atomic_rewrite"].Add(1)
				} else {
					_ = os.Remove(tmp)
				}
			}
		},
		"torn": func() { // torn in-place write: truncate, half, pause, the rest
			name, ok := s.pick()
			if !ok {
				return
			}
			f, err := os.OpenFile(filepath.Join(s.pods, name, "metadata.json"), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				return
			}
			data := s.metadata(name)
			_, _ = f.Write(data[:len(data)/2])
			time.Sleep(time.Millisecond)
			_, _ = f.Write(data[len(data)/2:])
			_ = f.Close()
			s.ops["torn_write"].Add(1)
		},
		"rename": func() { // rename a pod directory (its worker id changes)
			name, ok := s.take()
			if !ok {
				return
			}
			to := s.newName()
			if os.Rename(filepath.Join(s.pods, name), filepath.Join(s.pods, to)) == nil {
				s.put(to)
				s.ops["rename"].Add(1)
			} else {
				s.put(name)
			}
		},
		"adddel": func() { // add or delete, keeping about target pods
			s.mu.Lock()
			n := len(s.names)
			s.mu.Unlock()
			if n < s.target || rand.IntN(2) == 0 && n < s.target*11/10 {
				_ = s.add()
				return
			}
			name, ok := s.take()
			if !ok {
				return
			}
			if os.RemoveAll(filepath.Join(s.pods, name)) == nil {
				s.ops["delete"].Add(1)
			}
		},
	}
	var ws []func()
	for _, n := range names {
		if w, ok := all[strings.TrimSpace(n)]; ok {
			ws = append(ws, w)
		}
	}
	return ws
}
