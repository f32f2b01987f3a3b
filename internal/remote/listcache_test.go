package remote_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
	"github.com/workspace-backend/runtime-registry/internal/remote"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// gateTransport counts the list requests that reach the network and can
// cut the upstream event streams and refuse new ones.
type gateTransport struct {
	rt      *http.Transport
	lists   atomic.Int64
	opens   atomic.Int64 // event streams opened
	stalled atomic.Bool  // event stream bytes are swallowed, as by a dead connection

	mu      sync.Mutex
	refuse  bool
	streams []io.Closer
}

func newGate() *gateTransport {
	return &gateTransport{rt: http.DefaultTransport.(*http.Transport).Clone()}
}

func (g *gateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.URL.Path {
	case "/v1/workers":
		if r.Method == http.MethodGet {
			g.lists.Add(1)
		}
	case "/v1/events":
		g.mu.Lock()
		refuse := g.refuse
		g.mu.Unlock()
		if refuse {
			return nil, errors.New("event streams refused by the test")
		}
		resp, err := g.rt.RoundTrip(r)
		if err == nil {
			g.opens.Add(1)
			resp.Body = &stallBody{ReadCloser: resp.Body, g: g}
			g.mu.Lock()
			g.streams = append(g.streams, resp.Body)
			g.mu.Unlock()
		}
		return resp, err
	}
	return g.rt.RoundTrip(r)
}

func (g *gateTransport) CloseIdleConnections() { g.rt.CloseIdleConnections() }

// stallBody loses what arrives while its gate is stalled.
type stallBody struct {
	io.ReadCloser
	g *gateTransport
}

func (b *stallBody) Read(p []byte) (int, error) {
	for {
		n, err := b.ReadCloser.Read(p)
		if err != nil || !b.g.stalled.Load() {
			return n, err
		}
	}
}

// cut closes every event stream opened so far and sets whether new ones
// are refused.
func (g *gateTransport) cut(refuse bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refuse = refuse
	for _, b := range g.streams {
		_ = b.Close()
	}
	g.streams = nil
}

// startSource starts a remote Source over p (fast probes) through gate.
func startSource(t *testing.T, p *testproc.Proc, gate http.RoundTripper, idle ...time.Duration) *remote.Source {
	t.Helper()
	rc, err := remote.NewRuntimeConfig("rt", "Remote rt", p.URL, p.Token, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	opts := remote.Options{ProbeInterval: 150 * time.Millisecond, Transport: gate, HostID: compat.Bounded}
	if len(idle) > 0 {
		opts.StreamIdle = idle[0]
	}
	s := remote.New(rc, opts)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

var firstPage = registry.WorkerQuery{Limit: 200}

// cachedPage waits until two lists in a row are answered from memory (no
// request, the same non-empty Version) and returns the page.
func cachedPage(t *testing.T, s *remote.Source, g *gateTransport) registry.WorkerPage {
	t.Helper()
	var p registry.WorkerPage
	waitFor(t, "a page from memory", func() bool {
		a, err := s.Workers(t.Context(), firstPage)
		if err != nil || a.Version == "" {
			return false
		}
		n := g.lists.Load()
		b, err := s.Workers(t.Context(), firstPage)
		p = b
		return err == nil && g.lists.Load() == n && a.Version == b.Version
	})
	return p
}

// createDirect creates a worker on the Runtime itself, not through the
// Source: only the event stream can tell the Source about it.
func createDirect(t *testing.T, p *testproc.Proc) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", p.URL+"/v1/workers",
		strings.NewReader(`{"intent":{"kind":"task","objective":"direct"},"profile":"echo"}`))
	req.Header.Set("Authorization", "Bearer "+p.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var w struct {
		WorkerID string `json:"worker_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 202 || json.Unmarshal(b, &w) != nil || w.WorkerID == "" {
		t.Fatalf("direct create: %d %s", resp.StatusCode, b)
	}
	return w.WorkerID
}

func has(p registry.WorkerPage, pred func(registry.Worker) bool) bool {
	return slices.ContainsFunc(p.Workers, pred)
}

// An unchanged list costs no request; an event (a worker created on the
// Runtime directly) moves the Version and the next list shows it.
func TestListCacheHitAndEvent(t *testing.T) {
	p := testproc.Start(t, bin, testproc.Options{})
	g := newGate()
	s := startSource(t, p, g)
	before := cachedPage(t, s, g)
	id := createDirect(t, p)
	var after registry.WorkerPage
	waitFor(t, "the event to retire the page", func() bool {
		var err error
		after, err = s.Workers(t.Context(), firstPage)
		return err == nil && has(after, func(w registry.Worker) bool { return string(w.ID) == id })
	})
	if after.Version == before.Version {
		t.Fatalf("a changed page kept the Version %q", before.Version)
	}
	again := cachedPage(t, s, g)
	if !has(again, func(w registry.Worker) bool { return string(w.ID) == id }) {
		t.Fatal("the page from memory lost the worker")
	}
}

// The Source's own writes retire kept pages at once: the list right after
// the acknowledgement shows the write (no waiting for the event).
func TestListCacheOwnWrites(t *testing.T) {
	cases := []struct {
		name  string
		write func(t *testing.T, s *remote.Source, w registry.Worker) func(registry.Worker) bool
	}{
		{"create", func(t *testing.T, s *remote.Source, _ registry.Worker) func(registry.Worker) bool {
			n, err := s.CreateWorker(t.Context(), registry.CreateWorkerRequest{Intent: registry.Intent{Kind: registry.IntentTask}, Profile: "echo"})
			if err != nil {
				t.Fatal(err)
			}
			return func(w registry.Worker) bool { return w.ID == n.ID }
		}},
		{"input", func(t *testing.T, s *remote.Source, w registry.Worker) func(registry.Worker) bool {
			if _, err := s.SendInput(t.Context(), w.ID, registry.WorkerInput{Kind: registry.InputUser, Content: "x"}); err != nil {
				t.Fatal(err)
			}
			return func(got registry.Worker) bool { return got.ID == w.ID && got.LastSeenAt.After(*w.LastSeenAt) }
		}},
		{"stop", func(t *testing.T, s *remote.Source, w registry.Worker) func(registry.Worker) bool {
			if _, err := s.StopWorker(t.Context(), w.ID, registry.StopForce); err != nil {
				t.Fatal(err)
			}
			return func(got registry.Worker) bool {
				return got.ID == w.ID && (got.State == registry.WorkerStopping || got.State == registry.WorkerStopped)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := testproc.Start(t, bin, testproc.Options{})
			g := newGate()
			s := startSource(t, p, g)
			createDirect(t, p)
			var before registry.WorkerPage
			waitFor(t, "an active worker in a page from memory", func() bool {
				before = cachedPage(t, s, g)
				return len(before.Workers) == 1 && before.Workers[0].State == registry.WorkerActive
			})
			check := tc.write(t, s, before.Workers[0])
			after, err := s.Workers(t.Context(), firstPage)
			if err != nil {
				t.Fatal(err)
			}
			if !has(after, check) {
				t.Fatalf("the list right after an acknowledged %s does not show it: %+v", tc.name, after.Workers)
			}
			if after.Version == before.Version {
				t.Fatal("the Version did not move with the write")
			}
		})
	}
}

// Without a connected upstream stream nothing is kept or answered from
// memory (every list is a request, without a Version); once the stream is
// back, pages are kept again. A Runtime that is down is never answered
// from memory.
func TestListCacheNeedsTheStream(t *testing.T) {
	p := testproc.Start(t, bin, testproc.Options{})
	g := newGate()
	s := startSource(t, p, g)
	cachedPage(t, s, g)
	g.cut(true)
	waitFor(t, "lists to go to the Runtime", func() bool {
		n := g.lists.Load()
		a, errA := s.Workers(t.Context(), firstPage)
		b, errB := s.Workers(t.Context(), firstPage)
		return errA == nil && errB == nil && g.lists.Load() == n+2 && a.Version == "" && b.Version == ""
	})
	// While refused, a list is never kept (the next one asks again).
	for range 3 {
		n := g.lists.Load()
		if pg, err := s.Workers(t.Context(), firstPage); err != nil || pg.Version != "" || g.lists.Load() != n+1 {
			t.Fatalf("a list without the stream: version %q, %d requests, %v", pg.Version, g.lists.Load()-n, err)
		}
	}
	g.cut(false)
	cachedPage(t, s, g)

	p.End(t)
	waitFor(t, "lists to fail with the Runtime gone", func() bool {
		_, err := s.Workers(t.Context(), firstPage)
		return registry.ErrorCode(err) == registry.CodeRuntimeUnavailable
	})
}

// An upstream stream that goes silent (a connection lost without an
// error: what it carries never arrives) is cut after StreamIdle and resumed
// from its cursor, so the event it lost still retires the kept page.
func TestListCacheSilentStreamIsReconnected(t *testing.T) {
	p := testproc.Start(t, bin, testproc.Options{})
	g := newGate()
	s := startSource(t, p, g, 300*time.Millisecond)
	cachedPage(t, s, g)
	opens := g.opens.Load()
	g.stalled.Store(true)
	id := createDirect(t, p) // its event is lost on the silent stream
	waitFor(t, "the silent stream to be replaced", func() bool { return g.opens.Load() > opens })
	g.stalled.Store(false)
	waitFor(t, "the lost event to retire the page", func() bool {
		pg, err := s.Workers(t.Context(), firstPage)
		return err == nil && has(pg, func(w registry.Worker) bool { return string(w.ID) == id })
	})
}

// Start to Close leaves no goroutine (and so no connection) behind: with
// the Runtime up, with it unreachable from the start, and with it ending
// while the stream and a browser stream are open.
func TestSourceLeavesNothingBehind(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"runtime up", func(t *testing.T) {
			p := testproc.Start(t, bin, testproc.Options{})
			s := startSource(t, p, nil)
			if _, err := s.Workers(t.Context(), firstPage); err != nil {
				t.Fatal(err)
			}
			ev, err := s.Events(t.Context(), registry.EventQuery{})
			if err != nil {
				t.Fatal(err)
			}
			ev.Close()
			closeSource(t, s)
		}},
		{"runtime unreachable", func(t *testing.T) {
			p := testproc.Start(t, bin, testproc.Options{})
			p.End(t)
			s := startSource(t, p, nil)
			time.Sleep(300 * time.Millisecond) // let the keeper retry a few times
			closeSource(t, s)
		}},
		{"runtime ends while streaming", func(t *testing.T) {
			p := testproc.Start(t, bin, testproc.Options{})
			s := startSource(t, p, nil)
			ev, err := s.Events(t.Context(), registry.EventQuery{})
			if err != nil {
				t.Fatal(err)
			}
			defer ev.Close()
			p.End(t)
			waitFor(t, "the Source to notice", func() bool {
				_, err := s.Workers(t.Context(), firstPage)
				return err != nil
			})
			closeSource(t, s)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			// Registered first, so it runs after every other cleanup of
			// the test (the runtime process's own included).
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
			tc.run(t)
		})
	}
}

func closeSource(t *testing.T, s *remote.Source) {
	t.Helper()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
