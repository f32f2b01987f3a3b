//go:build unix

package compat_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

// hangLimit is how long one listing may take before the test calls it a hang.
// It is a watchdog, not a performance bound: the benchmarks measure speed.
const hangLimit = 60 * time.Second

// maxAllocPerListing bounds the bytes one listing of a hostile store may
// allocate: a 1 GiB file or a megabyte of nesting must not be read into
// memory or expanded.
const maxAllocPerListing = 64 << 20

// hostileResult is what one listing and one lookup of a hostile store gave.
type hostileResult struct {
	page      registry.WorkerPage
	lookupErr error
	alloc     uint64 // bytes allocated by the listing and the lookup
	peakHeap  uint64 // highest heap in use seen meanwhile, over the heap before
	logs      string
	// listErr is the list's error: only runtime_unavailable is expected
	// (the store as a whole cannot be read); any other fails the test.
	listErr error
}

// listHostile lists the store of f and looks worker id up, failing the test
// if either blocks for hangLimit. The source logs at debug level into the
// result.
func listHostile(t *testing.T, f *fixture, id registry.WorkerID) hostileResult {
	t.Helper()
	return listHostileAt(t, f, id, slog.LevelDebug)
}

func listHostileAt(t *testing.T, f *fixture, id registry.WorkerID, level slog.Level) hostileResult {
	t.Helper()
	var logs bytes.Buffer
	s := compat.New(compat.Config{WorkspaceID: "my-workspace", WorkspaceRoot: f.root, DataDir: f.dataDir,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level}))})
	done := make(chan hostileResult, 1)
	stop := make(chan struct{})
	peak := make(chan uint64, 1)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	go func() {
		// Sample the heap while the listing runs: its peak is the memory a
		// hostile store can make the server hold at once.
		var m runtime.MemStats
		high := base.HeapInuse
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- high - base.HeapInuse
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				high = max(high, m.HeapInuse)
			}
		}
	}()
	go func() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		page, err := s.Workers(context.Background(), registry.WorkerQuery{Limit: registry.DefaultMaxRecords})
		if err != nil && !errors.Is(err, registry.ErrRuntimeUnavailable) {
			t.Errorf("Workers: %v", err)
		}
		_, lookupErr := s.Worker(context.Background(), id)
		runtime.ReadMemStats(&after)
		done <- hostileResult{page: page, lookupErr: lookupErr, alloc: after.TotalAlloc - before.TotalAlloc, listErr: err}
	}()
	select {
	case r := <-done:
		close(stop)
		r.peakHeap = <-peak
		r.logs = logs.String()
		return r
	case <-time.After(hangLimit):
		t.Fatalf("listing the store did not return within %v", hangLimit)
		return hostileResult{}
	}
}

// checkNoPath fails if any diagnostic or log line holds a path of the fixture
// or, for a warning, does not name the worker by its id only.
func checkNoPath(t *testing.T, f *fixture, r hostileResult, secrets ...string) {
	t.Helper()
	base := filepath.Dir(f.dataDir)
	for _, d := range r.page.Diagnostics {
		if strings.ContainsAny(d.Message, "/\\") || strings.Contains(d.Message, base) {
			t.Errorf("diagnostic %q holds a path", d.Message)
		}
		for _, s := range secrets {
			if strings.Contains(d.Message, s) {
				t.Errorf("diagnostic %q holds %q", d.Message, s)
			}
		}
	}
	if strings.Contains(r.logs, base) {
		t.Errorf("the log holds a path: %s", r.logs)
	}
	for _, s := range secrets {
		if strings.Contains(r.logs, s) {
			t.Errorf("the log holds %q: %s", s, r.logs)
		}
	}
	if r.listErr != nil && (strings.Contains(r.listErr.Error(), base) || strings.ContainsAny(r.listErr.Error(), "/\\")) {
		t.Errorf("list error %q holds a path", r.listErr)
	}
	if r.lookupErr != nil && (strings.Contains(r.lookupErr.Error(), base) || strings.ContainsAny(r.lookupErr.Error(), "/\\")) {
		t.Errorf("lookup error %q holds a path", r.lookupErr)
	}
}

// outside writes a valid metadata file of the fixture's workspace in a
// directory outside the data dir and returns that directory.
func outside(t *testing.T, f *fixture) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "OUTSIDE-SECRET")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`{"worker_name":"OUTSIDE-SECRET","workspace_root":%q,"active":{"session_id":"SESSION-SECRET"}}`, f.root)
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHostileStore puts one hostile pod next to a healthy one. Whatever the
// hostile pod is, the listing returns (a FIFO must not block it), allocates
// a bounded amount, keeps listing the healthy pod, reports the hostile one
// with the expected diagnostic that holds no path, and a lookup answers as
// expected.
//
// Decision: symlinks are never followed, neither a pod directory nor a
// metadata.json that is one: the store is written by other programs, and a
// link could make the backend read (and project) any file the server can
// read, outside the data dir.
func TestHostileStore(t *testing.T) {
	type setup func(t *testing.T, f *fixture, pod string)
	raw := func(doc string) setup {
		return func(t *testing.T, f *fixture, pod string) { f.raw(pod, []byte(doc)) }
	}
	withRoot := func(format string) setup {
		return func(t *testing.T, f *fixture, pod string) { f.raw(pod, []byte(fmt.Sprintf(format, f.root))) }
	}
	tests := []struct {
		name   string
		setup  setup
		listed bool
		code   string // expected diagnostic; "" for none
		lookup registry.Code
	}{
		{"pod dir is a symlink outside the data dir", func(t *testing.T, f *fixture, pod string) {
			if err := os.Symlink(outside(t, f), filepath.Join(f.pods, pod)); err != nil {
				t.Fatal(err)
			}
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"pod dir is a relative symlink to a sibling pod", func(t *testing.T, f *fixture, pod string) {
			if err := os.Symlink("healthy", filepath.Join(f.pods, pod)); err != nil {
				t.Fatal(err)
			}
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a symlink to a file outside", func(t *testing.T, f *fixture, pod string) {
			target := filepath.Join(outside(t, f), "metadata.json")
			if err := os.Symlink(target, filepath.Join(f.podDir(pod), "metadata.json")); err != nil {
				t.Fatal(err)
			}
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a symlink to a device", func(t *testing.T, f *fixture, pod string) {
			if err := os.Symlink("/dev/zero", filepath.Join(f.podDir(pod), "metadata.json")); err != nil {
				t.Fatal(err)
			}
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a dangling symlink", func(t *testing.T, f *fixture, pod string) {
			if err := os.Symlink("/nonexistent/SECRET-TARGET", filepath.Join(f.podDir(pod), "metadata.json")); err != nil {
				t.Fatal(err)
			}
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a character device", func(t *testing.T, f *fixture, pod string) {
			// The device numbers of /dev/zero (1, 5): a read would never end.
			p := filepath.Join(f.podDir(pod), "metadata.json")
			if err := syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
				t.Skipf("mknod needs CAP_MKNOD, which this process lacks (%v); the symlink-to-/dev/zero case covers devices", err)
			}
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a FIFO with no writer", func(t *testing.T, f *fixture, pod string) {
			if err := syscall.Mkfifo(filepath.Join(f.podDir(pod), "metadata.json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a FIFO held open by a silent writer", func(t *testing.T, f *fixture, pod string) {
			p := filepath.Join(f.podDir(pod), "metadata.json")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			// O_RDWR opens a FIFO without waiting for a reader; the writer
			// then never writes.
			w, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.Close() })
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a unix socket", func(t *testing.T, f *fixture, pod string) {
			p := filepath.Join(f.podDir(pod), "metadata.json")
			ln, err := net.Listen("unix", p)
			if err != nil {
				t.Skipf("cannot bind a unix socket here (%v)", err)
			}
			t.Cleanup(func() { _ = ln.Close() })
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a directory", func(t *testing.T, f *fixture, pod string) {
			if err := os.MkdirAll(filepath.Join(f.podDir(pod), "metadata.json", "nested"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false, compat.DiagMetadataUnreadable, registry.CodeUnknownWorker},
		{"metadata.json is a 1 GiB sparse file", func(t *testing.T, f *fixture, pod string) {
			p := f.raw(pod, []byte(fmt.Sprintf(`{"workspace_root":%q}`, f.root)))
			if err := os.Truncate(p, 1<<30); err != nil {
				t.Fatal(err)
			}
		}, false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"100k nested arrays in a private field", withRoot(`{"workspace_root":%q,"peers":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`),
			false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"100k nested objects in an unknown field", withRoot(`{"workspace_root":%q,"x":` + strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000) + `}`),
			false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"nesting up to the 1 MiB limit, unclosed", raw(strings.Repeat("[", 1<<20)),
			false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"nesting within encoding/json's depth limit is fine", withRoot(`{"workspace_root":%q,"peers":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `}`),
			true, "", ""},
		{"worker_name is an array", withRoot(`{"workspace_root":%q,"worker_name":["a"]}`), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"active is an array", withRoot(`{"workspace_root":%q,"active":[]}`), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"active is true", withRoot(`{"workspace_root":%q,"active":true}`), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"workspace_root is an object", raw(`{"workspace_root":{"path":"/x"}}`), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"workspace_root is a huge number", raw(`{"workspace_root":1e999999}`), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"snapshot is an array", withRoot(`{"workspace_root":%q,"resolved_manifest_snapshot":[]}`), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"role_claim.role is a bool", withRoot(`{"workspace_root":%q,"resolved_manifest_snapshot":{"role_claim":{"role":true}}}`), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"top level is a string", raw(`"SECRET-STRING"`), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		{"invalid UTF-8 inside a string", withRoot("{\"workspace_root\":%q,\"worker_name\":\"a\xff\xfeb\"}"), true, compat.DiagMetadataStale, ""},
		{"NUL bytes and a BOM", withRoot("\xef\xbb\xbf{\"workspace_root\":%q}"), false, compat.DiagMetadataInvalid, registry.CodeUnknownWorker},
		// Duplicate keys: the last one wins, as in encoding/json and in the
		// JSON readers the local Worker system is written with, so both sides
		// read the same document the same way.
		{"duplicate workspace_root, last is ours", withRoot(`{"workspace_root":"/elsewhere/SECRET-ROOT","workspace_root":%q}`), true, "", ""},
		{"duplicate workspace_root, last is another", func(t *testing.T, f *fixture, pod string) {
			f.raw(pod, []byte(fmt.Sprintf(`{"workspace_root":%q,"workspace_root":"/elsewhere/SECRET-ROOT"}`, f.root)))
		}, false, compat.DiagWorkspaceNotVisible, registry.CodeWorkerNotVisible},
		{"duplicate active, last is null", withRoot(`{"workspace_root":%q,"active":{"session_id":"SESSION-SECRET"},"active":null}`), true, "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.pod("healthy", map[string]any{"worker_name": "healthy"})
			pod := fmt.Sprintf("hostile-%02d", i)
			tt.setup(t, f, pod)
			id := compat.WorkerIDFor(pod)
			r := listHostile(t, f, id)

			var ids []registry.WorkerID
			for _, w := range r.page.Workers {
				ids = append(ids, w.ID)
				if w.Label == "OUTSIDE-SECRET" {
					t.Errorf("a file outside the data dir was projected: %+v", w)
				}
			}
			if !slices.Contains(ids, compat.WorkerIDFor("healthy")) {
				t.Errorf("healthy pod not listed: %v", ids)
			}
			if got := slices.Contains(ids, id); got != tt.listed {
				t.Errorf("hostile pod listed = %v, want %v", got, tt.listed)
			}
			gotCodes := codes(r.page.Diagnostics)
			if tt.code == "" && len(gotCodes) != 0 || tt.code != "" && !slices.Equal(gotCodes, []string{tt.code}) {
				t.Errorf("diagnostics %v, want [%s]", gotCodes, tt.code)
			}
			if registry.ErrorCode(r.lookupErr) != tt.lookup {
				t.Errorf("lookup answers %v, want %q", r.lookupErr, tt.lookup)
			}
			if r.alloc > maxAllocPerListing {
				t.Errorf("one listing allocated %d MiB", r.alloc>>20)
			}
			checkNoPath(t, f, r, "OUTSIDE-SECRET", "SESSION-SECRET", "SECRET-TARGET", "SECRET-STRING", "SECRET-ROOT")
		})
	}
}

// TestConfiguredDirsMayBeSymlinks pins the other side of the symlink
// decision: the data dir and its pods/ are the operator's configuration, not
// store content, so they may be symlinks (as deployments often make them);
// only what is inside pods/ is never followed.
func TestConfiguredDirsMayBeSymlinks(t *testing.T) {
	f := newFixture(t)
	f.pod("real", nil)
	linkedData := filepath.Join(t.TempDir(), "data-link")
	if err := os.Symlink(f.dataDir, linkedData); err != nil {
		t.Fatal(err)
	}
	linkedPods := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(linkedPods, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(f.pods, filepath.Join(linkedPods, "pods")); err != nil {
		t.Fatal(err)
	}
	for _, dataDir := range []string{linkedData, linkedPods} {
		s := compat.New(compat.Config{WorkspaceID: "my-workspace", WorkspaceRoot: f.root, DataDir: dataDir})
		page := list(t, s)
		if len(page.Workers) != 1 || page.Workers[0].ID != compat.WorkerIDFor("real") || len(page.Diagnostics) != 0 {
			t.Errorf("data dir through a symlink: %+v", page)
		}
	}
}

// TestHostilePodNames lists pods whose directory names hold a newline,
// terminal escapes, invalid UTF-8, 255 bytes or path-like text. Each is
// listed under a valid id, resolvable by it; its display strings are
// sanitized; and when its metadata is broken, the diagnostic names it by
// id only, never by its raw name.
func TestHostilePodNames(t *testing.T) {
	names := []string{
		"line\nbreak",
		"carriage\rreturn\ttab",
		"\x1b[31mred\x1b[0m",
		"bad\xff\xfeutf8",
		"\xc3",
		strings.Repeat("n", 255),
		strings.Repeat("é", 127) + "x", // 255 bytes of mostly two-byte runes
		"..hidden",
		"-leading-dash",
		"back\\slash",
		"\u202eright-to-left",
		" ",
	}
	for _, name := range names {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			f := newFixture(t)
			if err := os.Mkdir(filepath.Join(f.pods, name), 0o755); err != nil {
				t.Skipf("this filesystem refuses the name: %v", err)
			}
			f.pod(name, nil)
			broken := name[:len(name)-1] + "~"
			f.raw(broken, []byte(`{"workspace_root":`))
			id := compat.WorkerIDFor(name)
			if !registry.ValidID(string(id)) {
				t.Fatalf("id %q is not valid", id)
			}
			r := listHostile(t, f, id)
			if r.lookupErr != nil {
				t.Fatalf("lookup of %s: %v", id, r.lookupErr)
			}
			found := false
			for _, w := range r.page.Workers {
				if w.ID != id {
					continue
				}
				found = true
				for _, s := range []string{w.Label, w.Implementation.DisplayHint} {
					if strings.ContainsAny(s, "\n\r\t\x1b/\\\u202e") || !utf8Valid(s) {
						t.Errorf("display string %q is not sanitized", s)
					}
				}
			}
			if !found {
				t.Fatalf("pod not listed: %+v", r.page.Workers)
			}
			if got := codes(r.page.Diagnostics); !slices.Equal(got, []string{compat.DiagMetadataInvalid}) {
				t.Fatalf("diagnostics %v", got)
			}
			msg := r.page.Diagnostics[0].Message
			if !strings.Contains(msg, string(compat.WorkerIDFor(broken))) || strings.Contains(msg, broken) {
				t.Errorf("diagnostic %q does not name the pod by id only", msg)
			}
			checkNoPath(t, f, r)
			if strings.Contains(r.logs, broken) && !strings.Contains(string(compat.WorkerIDFor(broken)), broken) {
				t.Errorf("the log holds the raw pod name: %s", r.logs)
			}
		})
	}
}

func utf8Valid(s string) bool {
	return strings.ToValidUTF8(s, "\uFFFD") == s && !strings.ContainsRune(s, '\uFFFD')
}

// TestManyPodDirectories lists a pods/ directory of 100,000 entries: almost
// all empty directories (each a metadata_unreadable warning) and a few real
// pods. The listing returns, finds the real pods on the right pages, and
// its diagnostics stay capped. It builds 100,000 directories, so it runs only
// when COMPAT_BIG=1 (`make test-big`), not in every `make test`.
func TestManyPodDirectories(t *testing.T) {
	if os.Getenv("COMPAT_BIG") != "1" {
		t.Skip("builds 100,000 directories: set COMPAT_BIG=1 (make test-big) to run it")
	}
	const entries = 100_000
	f := newFixtureOnTmpfs(t)
	start := time.Now()
	for i := range entries - 3 {
		if err := os.Mkdir(filepath.Join(f.pods, fmt.Sprintf("empty-%06d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"real-a", "real-b", "real-c"} {
		f.pod(p, nil)
	}
	t.Logf("created %d entries in %v", entries, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	// At the server's default log level: debug lines for 100,000 pods would
	// measure the log buffer of this test, not the listing.
	r := listHostileAt(t, f, compat.WorkerIDFor("real-b"), slog.LevelInfo)
	t.Logf("a listing and a lookup of %d entries took %v, allocated %d MiB in all, heap peak +%d MiB",
		entries, time.Since(start).Round(time.Millisecond), r.alloc>>20, r.peakHeap>>20)
	if r.lookupErr != nil {
		t.Errorf("lookup: %v", r.lookupErr)
	}
	if len(r.page.Workers) != 3 || r.page.More {
		t.Errorf("listed %d workers (more %v), want the 3 real pods", len(r.page.Workers), r.page.More)
	}
	if len(r.page.Diagnostics) != registry.MaxDiagnostics {
		t.Errorf("%d diagnostics, want the cap %d", len(r.page.Diagnostics), registry.MaxDiagnostics)
	}
	checkNoPath(t, f, r)
	// What is held at once is the directory listing and one warning per
	// broken entry until they are capped: linear in the entries, tens of MiB
	// for 100,000. Garbage (r.alloc) is collected as it goes.
	if r.peakHeap > 128<<20 {
		t.Errorf("the heap grew by %d MiB while listing", r.peakHeap>>20)
	}
}

// newFixtureOnTmpfs is newFixture in /dev/shm when it is a writable tmpfs:
// creating and removing 100,000 directories there takes seconds, not the
// minute it can take on a disk. Elsewhere it is newFixture.
func newFixtureOnTmpfs(t *testing.T) *fixture {
	t.Helper()
	base, err := os.MkdirTemp("/dev/shm", "compat-hostile-")
	if err != nil {
		return newFixture(t)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(base); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	f := &fixture{t: t, root: filepath.Join(base, "ws", "project"), dataDir: filepath.Join(base, "data")}
	f.pods = filepath.Join(f.dataDir, "pods")
	for _, d := range []string{f.root, f.pods} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestPermissionDenied lists a store where a pod's metadata.json, a pod
// directory and pods/ itself cannot be read. root reads files whatever their
// mode, so as root the test runs itself again as the user nobody.
func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		runAsNobody(t, "TestPermissionDenied")
		return
	}
	f := newFixture(t)
	f.pod("healthy", nil)
	f.pod("file-denied", nil)
	f.pod("dir-denied", nil)
	if err := os.Chmod(filepath.Join(f.pods, "file-denied", "metadata.json"), 0); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(f.pods, "dir-denied")
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })

	r := listHostile(t, f, compat.WorkerIDFor("file-denied"))
	if len(r.page.Workers) != 1 || r.page.Workers[0].ID != compat.WorkerIDFor("healthy") {
		t.Errorf("listed %+v, want only the healthy pod", r.page.Workers)
	}
	if got := codes(r.page.Diagnostics); !slices.Equal(got, []string{compat.DiagMetadataUnreadable, compat.DiagMetadataUnreadable}) {
		t.Errorf("diagnostics %v", got)
	}
	if registry.ErrorCode(r.lookupErr) != registry.CodeUnknownWorker {
		t.Errorf("lookup: %v", r.lookupErr)
	}
	checkNoPath(t, f, r)

	// pods/ itself unreadable: the Runtime degrades, nothing blocks.
	if err := os.Chmod(f.pods, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(f.pods, 0o755) })
	r = listHostile(t, f, compat.WorkerIDFor("healthy"))
	if registry.ErrorCode(r.listErr) != registry.CodeRuntimeUnavailable {
		t.Errorf("unreadable pods/: list %+v %v, want runtime_unavailable", r.page, r.listErr)
	}
	if registry.ErrorCode(r.lookupErr) != registry.CodeRuntimeUnavailable {
		t.Errorf("unreadable pods/: lookup %v", r.lookupErr)
	}
	checkNoPath(t, f, r)
}

// runAsNobody runs test again in a copy of this test binary as uid/gid 65534,
// with a world-writable TMPDIR, and fails with its output if it fails. It
// skips when the process cannot change its user.
func runAsNobody(t *testing.T, test string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary to rerun as nobody: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "compat.test")
	copyFile(t, exe, bin, 0o755)
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = []string{"TMPDIR=" + tmp, "HOME=" + tmp, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Skipf("cannot run the test as nobody here (%v): root reads files whatever their mode", err)
	}
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+test)) {
		t.Fatalf("%s as nobody: %v\n%s", test, err, out)
	}
	t.Logf("ran as uid 65534:\n%s", out)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
