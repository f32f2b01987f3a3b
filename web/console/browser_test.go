package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/handlers"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// chromiumPath is Debian's Chromium, which .ci/run installs when it is missing.
const chromiumPath = "/usr/bin/chromium"

// hangGuard bounds each wait on the page. It only stops a hung test: a step
// normally takes well under a second, and nothing here asserts a duration.
const hangGuard = 90 * time.Second

// The console in a real browser, against the real server binary on the sample
// workspace: the sample workers are listed, a worker added meanwhile appears
// without a reload, and (when the server runs the embedded Worker Runtime) an
// echo worker is created through the form, answers input live and is stopped.
// The page ends with no console error and no CSP violation. Screenshots of each
// view are written to artifacts/console/ (git-ignored).
func TestConsoleInChromium(t *testing.T) {
	requireChromium(t)
	root := repoRoot(t)

	srv := startServer(t, root)
	api := &apiClient{t: t, base: srv.base}
	page := openConsole(t, srv.base, "/")

	sample := api.workers()
	if len(sample) == 0 {
		t.Fatal("the sample workspace lists no workers")
	}
	page.waitFor(fmt.Sprintf(`document.body.dataset.ready === "true" && document.querySelectorAll("#worker-rows tr").length === %d`, len(sample)),
		"the sample workers listed")
	for _, w := range sample {
		page.waitFor(fmt.Sprintf(`[...document.querySelectorAll("#worker-rows tr")].some(r => r.dataset.worker === %q)`, w.WorkerID), "worker "+w.Label)
	}
	page.waitFor(`document.querySelectorAll("#runtime-list li.card").length >= 1`, "the runtime cards")
	page.screenshot("runtimes-and-workers")

	// One sample (read-only) worker, opened from the keyboard: its controls
	// are disabled by its capabilities.
	page.do(chromedp.Focus(chromedp.CSS(fmt.Sprintf(`#worker-rows tr[data-worker=%q] button`, sample[0].WorkerID))), chromedp.KeyEvent(kb.Enter))
	page.waitFor(`!document.getElementById("worker-view").hidden`, "the worker view")
	if !sample[0].Capabilities.CanAcceptInput {
		page.waitFor(`document.getElementById("input-send").disabled && document.getElementById("input-text").disabled`, "input disabled for a worker that takes none")
	}
	if !sample[0].Capabilities.CanStopWorker {
		page.waitFor(`document.getElementById("stop").disabled && document.getElementById("force-stop").disabled`, "stop disabled for a worker that cannot be stopped")
	}
	page.screenshot("worker-read-only")

	// A local worker that appears meanwhile shows without a reload.
	added := srv.addPod(t, "added-meanwhile")
	page.waitFor(fmt.Sprintf(`[...document.querySelectorAll("#worker-rows tr")].some(r => r.textContent.includes(%q))`, added),
		"the local worker added meanwhile")
	page.screenshot("worker-appeared-live")

	t.Run("create, input and stop", func(t *testing.T) {
		rt := api.spawningRuntime()
		if rt == "" {
			if srv.embedded {
				t.Fatal("the server runs the embedded Worker Runtime, yet no runtime can create workers")
			}
			t.Skip("this server build has no embedded Worker Runtime (flags --state-dir and --profiles): " +
				"create, input and stop run only against the in-process echo runtime (TestConsoleCreateInputStopInChromium)")
		}
		page.t = t
		defer func() { page.t = t }()
		exerciseWorkerViews(t, page, &apiClient{t: t, base: srv.base}, rt, "")
	})
	page.t = t

	// Narrow window: the same page in one column.
	page.do(chromedp.EmulateViewport(420, 900))
	page.waitFor(`document.documentElement.scrollWidth <= 420`, "no horizontal overflow of the page at 420 px")
	page.screenshot("narrow")
	page.checkClean()
}

// The console in Chromium behind an access token (opened once as /?token=,
// then on the HttpOnly cookie alone), against the real handlers over the
// sample's local workers and an in-process echo runtime with live events: the
// create, input and stop views, tested apart from any one runtime's timing.
func TestConsoleCreateInputStopInChromium(t *testing.T) {
	requireChromium(t)
	// The sample workspace's local workers beside the echo runtime: the views
	// merge two runtimes, one polled and one live.
	local := compat.New(compat.Config{WorkspaceID: "local:sample", WorkspaceRoot: "/srv/workspaces/sample-app",
		DataDir: filepath.Join(repoRoot(t), "examples", "sample-workspace", "data")})
	// Started, the local source answers from its index and streams its events.
	if err := local.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := local.Close(); err != nil {
			t.Error(err)
		}
	})
	reg, err := registry.New(registry.Options{WorkspaceID: "local:sample", Auditor: registry.SlogAuditor{Logger: slog.New(slog.DiscardHandler)}},
		local, newEchoSource("echo-runtime"))
	if err != nil {
		t.Fatal(err)
	}
	// Behind an access token: the page is opened once as /?token=, which
	// leaves the token in an HttpOnly cookie for the page's fetches and streams.
	const token = "console-browser-test-token"
	e, err := handlers.NewServer(reg, handlers.ServerOptions{Logger: slog.New(slog.DiscardHandler), AccessToken: token})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close) // runs last: after the browser has gone
	api := &apiClient{t: t, base: srv.URL, token: token}
	page := openConsole(t, srv.URL, "/?token="+token)
	page.waitFor(`location.search === "" && location.pathname === "/"`, "the token gone from the address bar")
	page.dir = filepath.Join(page.dir, "echo")
	if err := os.MkdirAll(page.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	page.waitFor(`document.body.dataset.ready === "true" && document.querySelectorAll("#runtime-list li.card").length === 2`, "both runtimes")
	page.waitFor(`document.querySelector('#runtime-list li[data-runtime="echo-runtime"]').textContent.includes("live")`, "the echo runtime's event stream open")
	page.waitFor(`document.querySelectorAll("#worker-rows tr").length >= 1`, "the local workers")
	exerciseWorkerViews(t, page, api, "echo-runtime", "echo")
	page.checkClean()
}

// exerciseWorkerViews creates an echo worker through the form (a double
// click creates one), sends it input and sees the reply without a reload,
// stops it and sees the state change, and sees a worker created through the
// API meanwhile appear live.
func exerciseWorkerViews(t *testing.T, page *page, api *apiClient, runtimeID, shotPrefix string) {
	t.Helper()
	shot := func(name string) {
		if shotPrefix != "" {
			name = shotPrefix + "-" + name
		}
		page.screenshot(name)
	}
	page.eval(fmt.Sprintf(`(() => { const s = document.getElementById("create-runtime"); s.value = %q; s.dispatchEvent(new Event("change")); return true })()`, runtimeID))
	page.waitFor(`[...document.getElementById("create-profile").options].some(o => o.value === "echo")`, "the echo profile offered")
	page.eval(`(() => { document.getElementById("create-profile").value = "echo"; const k = document.getElementById("create-kind"); k.value = "task"; k.dispatchEvent(new Event("change")); return true })()`)
	page.do(
		chromedp.SendKeys(chromedp.ID("create-text"), "Repeat what you are told"),
		chromedp.SendKeys(chromedp.ID("create-name"), "browser echo"),
	)
	shot("create-form")
	before := api.countLabel("browser echo")
	page.do(chromedp.DoubleClick(chromedp.ID("create-submit")))
	page.waitFor(`document.getElementById("worker-title").textContent === "browser echo"`, "the created worker opened")
	page.waitFor(`!document.getElementById("input-send").disabled`, "input enabled for the active echo worker")
	if got := api.countLabel("browser echo"); got != before+1 {
		t.Errorf("%d workers labelled %q after a double click, want %d", got, "browser echo", before+1)
	}

	page.do(chromedp.SendKeys(chromedp.ID("input-text"), "hello from chromium"), chromedp.Click(chromedp.ID("input-send")))
	page.waitFor(`[...document.querySelectorAll("#transcript li.role-user")].some(li => li.textContent.includes("hello from chromium"))`, "the input in the transcript")
	page.waitFor(`[...document.querySelectorAll("#transcript li.role-assistant")].some(li => li.textContent.includes("echo: hello from chromium"))`, "the echo reply, live")
	shot("worker-transcript")

	// A worker created through the API meanwhile appears without a reload.
	api.create(runtimeID, "echo", "created by api")
	page.waitFor(`[...document.querySelectorAll("#worker-rows tr")].some(r => r.textContent.includes("created by api"))`, "the worker created through the API, live")

	page.do(chromedp.Click(chromedp.ID("stop")))
	page.waitFor(`[...document.querySelectorAll("#worker-facts .badge")].some(b => b.textContent === "stopped")`, "the worker stopped")
	page.waitFor(`document.getElementById("input-send").disabled && document.getElementById("force-stop").disabled`, "controls disabled once stopped")
	shot("worker-stopped")
}

func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing and CI is set: .ci/run installs it with `apt-get install -y chromium`", chromiumPath)
		}
		t.Skipf("%s is missing: install it with `apt-get update && apt-get install -y chromium` to run the browser test (CI never skips it)", chromiumPath)
	}
	if testing.Short() {
		t.Skip("the browser tests start Chromium; skipped with -short")
	}
}

// openConsole starts Chromium at 1280x800 on the console at base, collecting
// console errors and CSP violations for checkClean.
func openConsole(t *testing.T, base, path string) *page {
	t.Helper()
	artifacts := filepath.Join(repoRoot(t), "artifacts", "console")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := startBrowser(t)
	p := &page{t: t, ctx: ctx, dir: artifacts}
	consoleDone := make(chan struct{})
	consoleCtx, stopConsole := context.WithCancel(ctx)
	msgs := chromedp.Console(consoleCtx)
	go func() {
		defer close(consoleDone)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				p.mu.Lock()
				p.messages = append(p.messages, m.String())
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stopConsole()
		<-consoleDone
	})
	p.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+path))
	// CSP violations are also counted by the page itself, from now on.
	p.eval(`(window.__csp = 0, document.addEventListener("securitypolicyviolation", () => window.__csp++), true)`)
	return p
}

// checkClean fails the test if the page logged a console error or an
// exception, or violated its CSP.
func (p *page) checkClean() {
	p.t.Helper()
	p.do(chromedp.Sleep(200 * time.Millisecond)) // let late console messages arrive
	if n := p.eval(`String(window.__csp)`); n != "0" {
		p.t.Errorf("%s CSP violations on the page", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.messages) > 0 {
		p.t.Errorf("the page logged %d console errors:\n%s", len(p.messages), strings.Join(p.messages, "\n"))
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// page drives one browser tab.
type page struct {
	t   *testing.T
	ctx context.Context
	dir string

	mu       sync.Mutex
	messages []string // console errors, exceptions and CSP reports
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, hangGuard)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) eval(js string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, hangGuard)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", js, err)
	}
	return fmt.Sprint(v)
}

// waitFor waits until the expression is true in the page.
func (p *page) waitFor(js, what string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, hangGuard)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))); err != nil {
		p.screenshot("failed")
		p.t.Fatalf("waiting for %s: %v\nbanner: %s", what, err, p.evalQuiet(`document.getElementById("banner").textContent + " | " + document.getElementById("worker-problem").textContent + " | " + document.getElementById("create-problem").textContent`))
	}
}

func (p *page) evalQuiet(js string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	return v
}

// screenshot saves the viewport as artifacts/console/<name>.png.
func (p *page) screenshot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, hangGuard)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(p.dir, name+".png"), png, 0o644); err != nil {
		p.t.Error(err)
	}
}

// startBrowser starts headless Chromium with a fresh profile; cleanup ends it
// and waits for its process.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // as root, Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser process to end
	})
	// Start the browser now, so that a failure to start is reported here. The
	// first action must run on the tab's own context: a cancelled context
	// there would close the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

// server is the real server binary, started on a free loopback port.
type server struct {
	base      string
	dataDir   string
	workspace string
	embedded  bool
}

// sampleTemplateRoot is the workspace root the committed sample pods name.
const sampleTemplateRoot = "/srv/workspaces/sample-app"

// startServer builds cmd/server and starts it on a copy of the sample
// workspace's data (so a test can add a pod), with the embedded Worker
// Runtime when this build has its flags. Cleanup stops it with SIGTERM and
// waits for it to exit.
func startServer(t *testing.T, root string) *server {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "server")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/server")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/server: %v\n%s", err, out)
	}
	help, _ := exec.CommandContext(t.Context(), bin, "--help").CombinedOutput()

	// The sample pods name a template root; like `make sample-data`, the copy
	// names the sample's real app directory, where embedded workers start.
	workspace := filepath.Join(root, "examples", "sample-workspace", "app")
	data := filepath.Join(t.TempDir(), "data")
	copyTree(t, filepath.Join(root, "examples", "sample-workspace", "data"), data, func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(sampleTemplateRoot), []byte(workspace))
	})
	args := []string{"--listen", "127.0.0.1:0", "--workspace-id", "local:sample",
		"--workspace-root", workspace, "--data-dir", data}
	s := &server{dataDir: data, workspace: workspace}
	if bytes.Contains(help, []byte("-state-dir")) && bytes.Contains(help, []byte("-profiles")) {
		s.embedded = true
		args = append(args, "--state-dir", filepath.Join(t.TempDir(), "state"),
			"--profiles", filepath.Join(root, "examples", "sample-workspace", "profiles.yaml"))
	}
	cmd := exec.Command(bin, args...)
	// Should the test binary itself be killed, the server goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		_ = pw.Close()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the server's exit on SIGTERM: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			err := <-exited
			t.Errorf("the server did not stop within 30 s of SIGTERM (killed: %v)", err)
		}
	})

	// The "listening" log line names the port the kernel chose.
	addr := make(chan string, 1)
	var logMu sync.Mutex
	var logTail []string
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		re := regexp.MustCompile(`"msg":"listening".*"listen":"([^"]+)"`)
		for sc.Scan() {
			line := sc.Text()
			if m := re.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			logMu.Lock()
			logTail = append(logTail, line)
			if len(logTail) > 50 {
				logTail = logTail[1:]
			}
			logMu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case a := <-addr:
		s.base = "http://" + a
	case err := <-exited:
		exited <- err
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("the server exited before listening: %v\n%s", err, strings.Join(logTail, "\n"))
	case <-time.After(hangGuard):
		t.Fatal("the server did not report its address")
	}
	return s
}

// addPod writes a new local Worker pod into the server's data directory and
// returns its worker name.
func (s *server) addPod(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(s.dataDir, "pods", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	meta := fmt.Sprintf(`{"worker_name": %q, "active": {"session_id": "sess-browser"}, "workspace_root": %q,
  "resolved_manifest_snapshot": {"role_claim": {"role": "tester"}, "profile": "careful"}}`, name, s.workspace+"/")
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// copyTree copies a directory tree, passing each file's bytes through edit.
func copyTree(t *testing.T, from, to string, edit func([]byte) []byte) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), edit(b), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// apiClient calls the server's API directly, beside the browser.
type apiClient struct {
	t     *testing.T
	base  string
	token string // the access token, if the server wants one
}

type workerJSON struct {
	WorkerID     string `json:"worker_id"`
	RuntimeID    string `json:"runtime_id"`
	Label        string `json:"label"`
	Capabilities struct {
		CanAcceptInput bool `json:"can_accept_input"`
		CanStopWorker  bool `json:"can_stop_worker"`
	} `json:"capabilities"`
}

func (a *apiClient) call(method, path, body string, out any) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(a.t.Context(), hangGuard)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		a.t.Fatal(err)
	}
	if resp.StatusCode >= 300 {
		a.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatal(err)
		}
	}
}

func (a *apiClient) workers() []workerJSON {
	a.t.Helper()
	var list struct {
		Items []workerJSON `json:"items"`
	}
	a.call("GET", "/api/workers", "", &list)
	return list.Items
}

func (a *apiClient) countLabel(label string) int {
	a.t.Helper()
	n := 0
	for _, w := range a.workers() {
		if w.Label == label {
			n++
		}
	}
	return n
}

// spawningRuntime is the id of a runtime that can create workers, or "".
func (a *apiClient) spawningRuntime() string {
	a.t.Helper()
	var list struct {
		Items []struct {
			RuntimeID    string `json:"runtime_id"`
			Status       string `json:"status"`
			Capabilities struct {
				CanSpawnWorker bool `json:"can_spawn_worker"`
			} `json:"capabilities"`
		} `json:"items"`
	}
	a.call("GET", "/api/runtimes", "", &list)
	for _, r := range list.Items {
		if r.Capabilities.CanSpawnWorker && r.Status != "unavailable" {
			return r.RuntimeID
		}
	}
	return ""
}

// create makes a worker through the API and returns its label.
func (a *apiClient) create(runtimeID, profile, name string) string {
	a.t.Helper()
	body := map[string]any{"intent": map[string]string{"kind": "task", "objective": "created beside the browser"}, "worker_name": name}
	if profile != "" {
		body["profile"] = profile
	}
	b, err := json.Marshal(body)
	if err != nil {
		a.t.Fatal(err)
	}
	a.call("POST", "/api/runtimes/"+runtimeID+"/workers", string(b), nil)
	return name
}
