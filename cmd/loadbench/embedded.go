package main

import (
	"bufio"

	"encoding/json"
	"errors"
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
	"time"
)

// The embedded run (-embedded): the real server binary with an embedded
// Worker Runtime (a fresh state dir, /bin/sh profiles), measured over
// loopback: create → active, input → its echo reply on an open stream, and
// many concurrent streams on one worker (delivery latency, memory per idle
// stream). The page benchmarks at 10,000 stopped workers are Go benchmarks
// (internal/handlers, BenchmarkEmbeddedPages), where the body cache can be
// turned off.

const embeddedRuntime = "/api/runtimes/embedded-worker-runtime"

const benchProfiles = `default: echo
profiles:
  - name: echo
    label: Echo
    command: ["/bin/sh", "-c", "while IFS= read -r l; do printf 'echo: %s\n' \"$l\"; done"]
    stop_grace: 2s
`

type embeddedOptions struct {
	creates, inputs, streams, rounds int
}

func runEmbedded(bin string, o embeddedOptions) error {
	fmt.Printf("# loadbench -embedded %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("Machine: %d CPUs. Server: %s with --state-dir, --profiles (echo: a /bin/sh read loop), --max-streams %d.\n\n",
		runtime.NumCPU(), bin, o.streams+16)
	dir, err := os.MkdirTemp("", "loadbench-embedded-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	profiles := filepath.Join(dir, "profiles.yaml")
	root := filepath.Join(dir, "root")
	if err := os.WriteFile(profiles, []byte(benchProfiles), 0o600); err != nil {
		return err
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	addr, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--listen", addr, "--workspace-id", "bench", "--workspace-root", root,
		"--state-dir", filepath.Join(dir, "state"), "--profiles", profiles, "--log-level", "error",
		"--max-streams", strconv.Itoa(o.streams+16), "--max-conns", strconv.Itoa(o.streams+64), "--max-workers", "64")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &proc{cmd: cmd, url: "http://" + addr}
	defer p.stop()
	if err := waitHealthy(p.url); err != nil {
		return err
	}

	create, err := createToActive(p.url, o.creates)
	if err != nil {
		return fmt.Errorf("create to active: %w", err)
	}
	fmt.Printf("Create → `active` (%d creates one after another; POST sent to the `worker_upserted` frame with state `active` on an open runtime stream): p50 **%s**, p99 %s, max %s.\n\n",
		len(create), ms(pct(create, 50)), ms(pct(create, 99)), ms(pct(create, 100)))

	echo, err := inputToEcho(p.url, o.inputs)
	if err != nil {
		return fmt.Errorf("input to echo: %w", err)
	}
	fmt.Printf("Input → its echo reply on an open worker stream (%d inputs one after another; POST sent to the `transcript_appended` frame of `echo: …`): p50 %s, p99 **%s**, max %s.\n\n",
		len(echo), ms(pct(echo, 50)), ms(pct(echo, 99)), ms(pct(echo, 100)))

	fan, perStream, heapPer, err := manyStreams(p, o.streams, o.rounds)
	if err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	fmt.Printf("%d concurrent streams on one worker, %d inputs 250 ms apart: delivery (POST sent to the input's `transcript_appended` frame on each stream, %d samples) p50 %s, p99 **%s**, max %s. Memory per idle stream: **%.1f KiB** of server RSS (%.1f KiB of Go heap + stacks).\n\n",
		o.streams, o.rounds, len(fan), ms(pct(fan, 50)), ms(pct(fan, 99)), ms(pct(fan, 100)), perStream, heapPer)
	return nil
}

func waitHealthy(base string) error {
	client := &http.Client{Timeout: time.Second}
	for start := time.Now(); time.Since(start) < 60*time.Second; time.Sleep(5 * time.Millisecond) {
		resp, err := client.Get(base + embeddedRuntime + "/profiles")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			return fmt.Errorf("profiles answered %d", resp.StatusCode)
		}
	}
	return errors.New("the server did not answer within 60 s")
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// frame is one SSE event as the bench reads it.
type frame struct {
	kind string
	data map[string]any
	at   time.Time
}

// openStream opens an event stream and delivers its frames (with their
// arrival times) until the connection closes.
func openStream(url string) (chan frame, func(), error) {
	resp, err := http.Get(url) //nolint:bodyclose // closed by the func returned
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != 200 {
		_ = resp.Body.Close()
		return nil, nil, fmt.Errorf("stream answered %d", resp.StatusCode)
	}
	out := make(chan frame, 4096)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var f frame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				f.kind = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				f.at = time.Now()
				_ = json.Unmarshal([]byte(line[len("data: "):]), &f.data)
			case line == "" && f.kind != "":
				out <- f
				f = frame{}
			}
		}
	}()
	return out, func() { _ = resp.Body.Close() }, nil
}

func await(frames chan frame, pred func(frame) bool) (frame, error) {
	timeout := time.After(30 * time.Second)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return frame{}, errors.New("the stream ended")
			}
			if pred(f) {
				return f, nil
			}
		case <-timeout:
			return frame{}, errors.New("no matching event within 30 s")
		}
	}
}

func postJSON(url, body string) (map[string]any, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 202 {
		return nil, fmt.Errorf("POST %s: %d %v: %w", url, resp.StatusCode, out, err)
	}
	return out, nil
}

func createToActive(base string, n int) ([]time.Duration, error) {
	frames, closeStream, err := openStream(base + embeddedRuntime + "/events")
	if err != nil {
		return nil, err
	}
	defer closeStream()
	var out []time.Duration
	for range n {
		start := time.Now()
		w, err := postJSON(base+embeddedRuntime+"/workers", `{"intent":{"kind":"task"}}`)
		if err != nil {
			return nil, err
		}
		id := w["worker_id"]
		f, err := await(frames, func(f frame) bool {
			return f.kind == "worker_upserted" && f.data["worker_id"] == id && f.data["state"] == "active"
		})
		if err != nil {
			return nil, err
		}
		out = append(out, f.at.Sub(start))
		if _, err := postJSON(base+embeddedRuntime+"/workers/"+id.(string)+"/stop", `{"mode":"force"}`); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// echoWorker creates an echo worker and waits until it is active.
func echoWorker(base string) (string, error) {
	frames, closeStream, err := openStream(base + embeddedRuntime + "/events")
	if err != nil {
		return "", err
	}
	defer closeStream()
	w, err := postJSON(base+embeddedRuntime+"/workers", `{"intent":{"kind":"assistant"}}`)
	if err != nil {
		return "", err
	}
	id, _ := w["worker_id"].(string)
	_, err = await(frames, func(f frame) bool {
		return f.kind == "worker_upserted" && f.data["worker_id"] == id && f.data["state"] == "active"
	})
	return id, err
}

// inputToEcho times n inputs to their echo on a new echo worker, then stops it.
func inputToEcho(base string, n int) ([]time.Duration, error) {
	id, err := echoWorker(base)
	if err != nil {
		return nil, err
	}
	out, err := inputToEchoOn(base, id, "m-", n)
	if err != nil {
		return nil, err
	}
	_, err = postJSON(base+embeddedRuntime+"/workers/"+id+"/stop", `{"mode":"force"}`)
	return out, err
}

// rss is the process's VmRSS in KiB.
func rss(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb
		}
	}
	return 0
}

// goMemory is the server's Go heap in use plus its goroutine stacks, from
// its /metrics.
func goMemory(base string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for line := range strings.Lines(string(body)) {
		for _, name := range []string{"go_memstats_heap_inuse_bytes ", "go_memstats_stack_inuse_bytes "} {
			if rest, ok := strings.CutPrefix(line, name); ok {
				v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				sum += v
			}
		}
	}
	return sum, nil
}

// rawStream is one browser stream held with as little client memory as
// possible: a raw connection and a small reader.
type rawStream struct {
	conn net.Conn
	rd   *bufio.Reader
}

func dialStream(addr, path string) (*rawStream, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		_ = c.Close()
		return nil, err
	}
	rd := bufio.NewReaderSize(c, 2048)
	status, err := rd.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		_ = c.Close()
		return nil, fmt.Errorf("stream status %q: %w", status, err)
	}
	// Headers, then the chunked body's ": ok" comment.
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		if strings.HasPrefix(line, ": ok") {
			return &rawStream{conn: c, rd: rd}, nil
		}
	}
}

func manyStreams(p *proc, n, rounds int) ([]time.Duration, float64, float64, error) {
	base := p.url
	addr := strings.TrimPrefix(base, "http://")
	id, err := echoWorker(base)
	if err != nil {
		return nil, 0, 0, err
	}
	path := embeddedRuntime + "/workers/" + id + "/events"
	// Warm the server (one stream, one round trip), then measure.
	if _, err := inputToEchoOn(base, id, "w-", 5); err != nil {
		return nil, 0, 0, err
	}
	time.Sleep(500 * time.Millisecond)
	rssBefore := rss(p.cmd.Process.Pid)
	goBefore, _ := goMemory(base)
	streams := make([]*rawStream, 0, n)
	defer func() {
		for _, s := range streams {
			_ = s.conn.Close()
		}
	}()
	for range n {
		s, err := dialStream(addr, path)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("stream %d: %w", len(streams), err)
		}
		streams = append(streams, s)
	}
	time.Sleep(time.Second)
	rssAfter := rss(p.cmd.Process.Pid)
	goAfter, _ := goMemory(base)
	perStream := float64(rssAfter-rssBefore) / float64(n)
	heapPer := (goAfter - goBefore) / 1024 / float64(n)

	sent := make([]time.Time, rounds)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func(s *rawStream) {
			defer wg.Done()
			got := 0
			for got < rounds {
				line, err := s.rd.ReadString('\n')
				if err != nil {
					return
				}
				i := strings.Index(line, `"content":"f-`)
				if !strings.HasPrefix(line, "data: ") || i < 0 || !strings.Contains(line, `"role":"user"`) {
					continue
				}
				at := time.Now()
				rest := line[i+len(`"content":"f-`):]
				k, err := strconv.Atoi(rest[:strings.IndexByte(rest, '"')])
				if err != nil || k >= rounds {
					continue
				}
				mu.Lock()
				lat = append(lat, at.Sub(sent[k]))
				mu.Unlock()
				got++
			}
		}(s)
	}
	for k := range rounds {
		mu.Lock()
		sent[k] = time.Now()
		mu.Unlock()
		if _, err := postJSON(base+embeddedRuntime+"/workers/"+id+"/input", `{"kind":"user","content":"f-`+strconv.Itoa(k)+`"}`); err != nil {
			return nil, 0, 0, err
		}
		time.Sleep(250 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return nil, 0, 0, errors.New("not every stream received every event within 60 s")
	}
	if len(lat) != n*rounds {
		return nil, 0, 0, fmt.Errorf("%d deliveries, want %d", len(lat), n*rounds)
	}
	return lat, perStream, heapPer, nil
}

// inputToEchoOn times n inputs (prefix plus a count) to worker id's echo of
// each, seen on its event stream.
func inputToEchoOn(base, id, prefix string, n int) ([]time.Duration, error) {
	frames, closeStream, err := openStream(base + embeddedRuntime + "/workers/" + id + "/events")
	if err != nil {
		return nil, err
	}
	defer closeStream()
	var out []time.Duration
	for i := range n {
		msg := prefix + strconv.Itoa(i)
		start := time.Now()
		if _, err := postJSON(base+embeddedRuntime+"/workers/"+id+"/input", `{"kind":"user","content":"`+msg+`"}`); err != nil {
			return nil, err
		}
		f, err := await(frames, func(f frame) bool { return f.kind == "transcript_appended" && f.data["content"] == "echo: "+msg })
		if err != nil {
			return nil, err
		}
		out = append(out, f.at.Sub(start))
	}
	return out, nil
}
