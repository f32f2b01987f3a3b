package compat_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/testproc"
)

// lateClock times reads an hour late, so the files a test has just written
// are not racy (within a timestamp tick of the read) and may be cached.
var lateClock = compat.TestHooks{Now: func() time.Time { return time.Now().Add(time.Hour) }}

// cacheFixture is a store of pods p00..p(n-1), some of another workspace, one
// with stale metadata, one active, and an index cache path beside it.
func cacheFixture(t *testing.T, n int) (*fixture, string) {
	t.Helper()
	f := newFixture(t)
	for i := range n {
		meta := map[string]any{"resolved_manifest_snapshot": map[string]any{"role": "coder", "profile": "fast"}}
		switch i % 5 {
		case 1:
			meta["workspace_root"] = "/elsewhere"
		case 2:
			meta["worker_name"] = "someone-else"
		case 3:
			meta["active"] = map[string]any{"session_id": "s", "segment_id": "g"}
		}
		f.pod(fmt.Sprintf("p%02d", i), meta)
	}
	return f, filepath.Join(t.TempDir(), "state", "compat-index.cache")
}

func (f *fixture) cacheConfig(cache string) compat.Config {
	return compat.Config{WorkspaceID: "my-workspace", WorkspaceRoot: f.root, DataDir: f.dataDir, IndexCache: cache}
}

// startStop starts a Source with the cache, checks it answers, and closes it
// (which writes the cache).
func startStop(t *testing.T, cfg compat.Config) {
	t.Helper()
	s := compat.NewWithHooks(cfg, lateClock)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	list(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// sameAnswers fails unless got and want list the same page and answer the
// same lookup of every name in names.
func sameAnswers(t *testing.T, got, want *compat.Source, names []string) {
	t.Helper()
	g, w := list(t, got), list(t, want)
	if !reflect.DeepEqual(g.Workers, w.Workers) || !reflect.DeepEqual(g.Diagnostics, w.Diagnostics) || g.More != w.More {
		t.Errorf("list differs from a fresh start:\n got %+v\nwant %+v", g, w)
	}
	for _, n := range names {
		id := compat.WorkerIDFor(n)
		gw, gerr := got.Worker(t.Context(), id)
		ww, werr := want.Worker(t.Context(), id)
		if !reflect.DeepEqual(gw, ww) || errCode(gerr) != errCode(werr) {
			t.Errorf("lookup of %s = %+v, %v; a fresh start answers %+v, %v", n, gw, gerr, ww, werr)
		}
	}
}

func podNames(n int, extra ...string) []string {
	out := extra
	for i := range n {
		out = append(out, fmt.Sprintf("p%02d", i))
	}
	return out
}

func TestIndexCacheRestart(t *testing.T) {
	const n = 20
	tests := []struct {
		name string
		// change alters the store while no server runs.
		change func(t *testing.T, f *fixture)
		// reads is how many pods the restart must read.
		reads uint64
	}{
		{"unchanged", func(*testing.T, *fixture) {}, 0},
		{"rewritten, same size, times restored", func(t *testing.T, f *fixture) {
			p := filepath.Join(f.pods, "p04", "metadata.json")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// Same length, another profile: only the ctime still says so.
			data = bytes.Replace(data, []byte(`"fast"`), []byte(`"slow"`), 1)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"rewritten invalid", func(t *testing.T, f *fixture) { f.raw("p03", []byte(`{"worker_name": `)) }, 1},
		{"moved to another workspace", func(t *testing.T, f *fixture) {
			f.pod("p00", map[string]any{"workspace_root": "/other", "worker_name": "moved"})
		}, 1},
		{"removed", func(t *testing.T, f *fixture) {
			if err := os.RemoveAll(filepath.Join(f.pods, "p05")); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"added", func(t *testing.T, f *fixture) { f.pod("p99", map[string]any{"worker_name": "new"}) }, 1},
		{"replaced by a symlink to another pod", func(t *testing.T, f *fixture) {
			dir := filepath.Join(f.pods, "p06")
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(f.pods, "p07"), dir); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"metadata hard-linked", func(t *testing.T, f *fixture) {
			if err := os.Link(filepath.Join(f.pods, "p08", "metadata.json"), filepath.Join(f.dataDir, "elsewhere.json")); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"metadata replaced by a symlink", func(t *testing.T, f *fixture) {
			p := filepath.Join(f.pods, "p09", "metadata.json")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(f.pods, "p10", "metadata.json"), p); err != nil {
				t.Fatal(err)
			}
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, cache := cacheFixture(t, n)
			if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
				t.Fatal(err)
			}
			startStop(t, f.cacheConfig(cache))
			tt.change(t, f)
			s := startedWithHooks(t, f.cacheConfig(cache), lateClock)
			st := s.Stats()
			if st.CacheSeeded != n {
				t.Errorf("records seeded from the cache = %d, want %d", st.CacheSeeded, n)
			}
			if st.Reads != tt.reads {
				t.Errorf("pods read at restart = %d, want %d", st.Reads, tt.reads)
			}
			fresh := startedWithHooks(t, f.cacheConfig(""), lateClock)
			sameAnswers(t, s, fresh, podNames(n, "p99"))
		})
	}
}

// TestIndexCacheNotTrusted writes the cache with a clock that makes every
// read racy (within a timestamp tick of the write): nothing may be cached.
func TestIndexCacheNotTrusted(t *testing.T) {
	f, cache := cacheFixture(t, 5)
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
		t.Fatal(err)
	}
	racy := compat.TestHooks{Now: func() time.Time { return time.Unix(0, 0) }, Times: func(int64, int64) (int64, int64) {
		return 1, 1
	}}
	s := compat.NewWithHooks(f.cacheConfig(cache), racy)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := startedWithHooks(t, f.cacheConfig(cache), racy)
	if st := r.Stats(); st.CacheSeeded != 0 || st.Reads < 5 {
		t.Errorf("after a cache of racy reads: seeded %d, read %d; want 0 seeded, every pod read", st.CacheSeeded, st.Reads)
	}
}

func TestIndexCacheIgnored(t *testing.T) {
	const n = 10
	// Each damages the cache file written by a first run, or sets up
	// another configuration; the restart must read every pod and answer as
	// a fresh start does.
	tests := []struct {
		name   string
		damage func(t *testing.T, f *fixture, cache string) compat.Config
		reason string
	}{
		{"truncated", rewrite(func(b []byte) []byte { return b[:len(b)/2] }), "checksum"},
		{"one byte flipped", rewrite(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }), "checksum"},
		{"last byte gone", rewrite(func(b []byte) []byte { return b[:len(b)-1] }), "checksum"},
		{"empty", rewrite(func([]byte) []byte { return nil }), "format"},
		{"garbage", rewrite(func([]byte) []byte { return bytes.Repeat([]byte("garbage!"), 100) }), "format"},
		{"another format version", rewrite(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 99); return b }), "version"},
		{"another workspace root", func(t *testing.T, f *fixture, cache string) compat.Config {
			cfg := f.cacheConfig(cache)
			cfg.WorkspaceRoot = "/elsewhere"
			return cfg
		}, "fingerprint"},
		{"another workspace id", func(t *testing.T, f *fixture, cache string) compat.Config {
			cfg := f.cacheConfig(cache)
			cfg.WorkspaceID = "other-workspace"
			return cfg
		}, "fingerprint"},
		{"the same store under another data dir path", func(t *testing.T, f *fixture, cache string) compat.Config {
			link := filepath.Join(t.TempDir(), "data-link")
			if err := os.Symlink(f.dataDir, link); err != nil {
				t.Fatal(err)
			}
			cfg := f.cacheConfig(cache)
			cfg.DataDir = link
			return cfg
		}, "fingerprint"},
		{"group-writable", chmod(0o620), "writable_by_others"},
		{"world-writable", chmod(0o606), "writable_by_others"},
		{"a symlink to a valid cache", func(t *testing.T, f *fixture, cache string) compat.Config {
			moved := cache + ".real"
			if err := os.Rename(cache, moved); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(moved, cache); err != nil {
				t.Fatal(err)
			}
			return f.cacheConfig(cache)
		}, "unreadable"},
		{"a directory", func(t *testing.T, f *fixture, cache string) compat.Config {
			if err := os.Remove(cache); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(cache, 0o700); err != nil {
				t.Fatal(err)
			}
			return f.cacheConfig(cache)
		}, "not_regular"},
		{"another owner", func(t *testing.T, f *fixture, cache string) compat.Config {
			if os.Geteuid() != 0 {
				t.Skip("only root can give a file away")
			}
			if err := os.Chown(cache, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return f.cacheConfig(cache)
		}, "foreign_owner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, cache := cacheFixture(t, n)
			if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
				t.Fatal(err)
			}
			startStop(t, f.cacheConfig(cache))
			cfg := tt.damage(t, f, cache)
			var logs testproc.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			s := startedWithHooks(t, cfg, lateClock)
			if st := s.Stats(); st.CacheSeeded != 0 || st.Reads != n {
				t.Errorf("seeded %d, read %d; want 0 seeded and all %d pods read", st.CacheSeeded, st.Reads, n)
			}
			freshCfg := cfg
			freshCfg.IndexCache, freshCfg.Logger = "", nil
			fresh := startedWithHooks(t, freshCfg, lateClock)
			sameAnswers(t, s, fresh, podNames(n))
			out := logs.String()
			if !strings.Contains(out, "index cache ignored") || !strings.Contains(out, "reason="+tt.reason) {
				t.Errorf("log = %q, want the info line with reason %s", out, tt.reason)
			}
			for _, secret := range []string{filepath.Dir(cache), f.dataDir, "RRCIDX"} {
				if strings.Contains(out, secret) {
					t.Errorf("log names %q: %s", secret, out)
				}
			}
		})
	}
}

func rewrite(edit func([]byte) []byte) func(*testing.T, *fixture, string) compat.Config {
	return func(t *testing.T, f *fixture, cache string) compat.Config {
		t.Helper()
		data, err := os.ReadFile(cache)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cache, edit(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return f.cacheConfig(cache)
	}
}

func chmod(mode os.FileMode) func(*testing.T, *fixture, string) compat.Config {
	return func(t *testing.T, f *fixture, cache string) compat.Config {
		t.Helper()
		if err := os.Chmod(cache, mode); err != nil {
			t.Fatal(err)
		}
		return f.cacheConfig(cache)
	}
}

// TestIndexCacheWritten checks the file: mode 0600 whatever the umask, no
// temporary file left beside it, written after the first sweep (not only at
// close) and replaced, not appended to, by a later run.
func TestIndexCacheWritten(t *testing.T) {
	f, cache := cacheFixture(t, 3)
	dir := filepath.Dir(cache)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A stale file of another run, readable by all, is replaced.
	if err := os.WriteFile(cache, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startedWithHooks(t, f.cacheConfig(cache), lateClock)
	eventually(t, "cache written after the first sweep", func() bool { return s.Stats().CacheWrites > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("cache mode = %v, want -rw-------", fi.Mode())
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != filepath.Base(cache) {
		t.Errorf("directory holds %v, want the cache file alone", ents)
	}
	r := startedWithHooks(t, f.cacheConfig(cache), lateClock)
	if st := r.Stats(); st.CacheSeeded != 3 || st.Reads != 0 {
		t.Errorf("restart: seeded %d, read %d; want 3 and 0", st.CacheSeeded, st.Reads)
	}
}

// TestIndexCacheMissingDir: a cache in a directory that does not exist is
// not written (and says so), and the Source works as without one.
func TestIndexCacheMissingDir(t *testing.T) {
	f, _ := cacheFixture(t, 2)
	cache := filepath.Join(t.TempDir(), "no", "such", "dir", "cache")
	var logs testproc.Buffer
	cfg := f.cacheConfig(cache)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := startedWithHooks(t, cfg, lateClock)
	if got := len(list(t, s).Workers); got != 1 {
		t.Errorf("listed %d, want 1", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(cache); !os.IsNotExist(err) {
		t.Errorf("cache file: %v, want none", err)
	}
	if out := logs.String(); !strings.Contains(out, "index cache not written") || strings.Contains(out, cache) {
		t.Errorf("log = %q, want the reason and no path", out)
	}
}
