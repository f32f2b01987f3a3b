package compat_test

import (
	"context"
	"strings"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/compat"
	"github.com/workspace-backend/runtime-registry/internal/registry"
)

func TestBoundedGolden(t *testing.T) {
	long := strings.Repeat("Ab", 150)
	tests := []struct {
		prefix, v, want string
	}{
		// Digests of these three were computed by hand with sha256sum.
		{"local-worker-", "foo.bar", "local-worker-foo-bar-2595d08ad22c733f"},
		{"local-worker-", "00001KVWECEQG-Coder.Worker", "local-worker-00001kvweceqg-coder-worker-9e261bbf1c9cd599"},
		{"local-", "my-workspace", "local-my-workspace-513d0aea38d5c2ab"},
		{"local-worker-", "", "local-worker-id-" + digest("")},
		{"local-worker-", "...", "local-worker-id-" + digest("...")},
		{"local-worker-", "--a_B--", "local-worker-a_b-" + digest("--a_B--")},
		{"local-worker-", "Ünïcode", "local-worker-n-code-" + digest("Ünïcode")},
		// Each invalid byte becomes one '-', like a code point would.
		{"local-worker-", "a\xff\xfeb", "local-worker-a--b-" + digest("a\xff\xfeb")},
		{"local-worker-", "a😀b", "local-worker-a-b-" + digest("a😀b")},
		// Cut to the 90-character budget of the worker prefix.
		{"local-worker-", long, "local-worker-" + strings.ToLower(long[:90]) + "-" + digest(long)},
		// A cut that ends in '-' is trimmed again.
		{"local-worker-", strings.Repeat("x", 89) + "." + long, "local-worker-" + strings.Repeat("x", 89) + "-" + digest(strings.Repeat("x", 89)+"."+long)},
		{"local-worker-", strings.Repeat("#", 300), "local-worker-id-" + digest(strings.Repeat("#", 300))},
	}
	for _, tt := range tests {
		if got := compat.Bounded(tt.prefix, tt.v); got != tt.want {
			t.Errorf("Bounded(%q, %q)\n got %q\nwant %q", tt.prefix, tt.v, got, tt.want)
		}
	}
	if got, want := compat.HostIDFor("my-workspace"), registry.HostID("local-my-workspace-513d0aea38d5c2ab"); got != want {
		t.Errorf("HostIDFor = %q, want %q", got, want)
	}
	if got, want := compat.WorkerIDFor("foo.bar"), registry.WorkerID("local-worker-foo-bar-2595d08ad22c733f"); got != want {
		t.Errorf("WorkerIDFor = %q, want %q", got, want)
	}
}

func TestBoundedIDsDistinctValidResolvable(t *testing.T) {
	long1 := strings.Repeat("LongWorkerName", 16)                     // 224 chars, cut cleanly at 90
	long2 := strings.Repeat("y", 89) + "." + strings.Repeat("z", 150) // cut ends in '-', trimmed to 89
	names := []string{"00001KVWECEQG-Coder.Worker", "foo.bar", "foo-bar", "Ticket#Worker@Reviewer", long1, long2}

	f := newFixture(t)
	for _, n := range names {
		f.pod(n, map[string]any{"worker_name": n})
	}
	s := f.source()

	seen := map[registry.WorkerID]string{}
	at120 := []string{}
	for _, n := range names {
		id := compat.WorkerIDFor(n)
		if prev, dup := seen[id]; dup {
			t.Errorf("%q and %q share id %q", prev, n, id)
		}
		seen[id] = n
		if len(id) > registry.MaxIDLength {
			t.Errorf("id of %q is %d chars", n, len(id))
		}
		if len(id) == registry.MaxIDLength {
			at120 = append(at120, n)
		}
		if strings.ContainsAny(string(id), ".@#") {
			t.Errorf("id %q keeps a forbidden character", id)
		}
		if !registry.ValidID(string(id)) {
			t.Errorf("id %q is not a valid registry id", id)
		}
		w, err := s.Worker(context.Background(), id)
		if err != nil {
			t.Errorf("Worker(%q): %v", id, err)
			continue
		}
		if w.ID != id {
			t.Errorf("Worker(%q).ID = %q", id, w.ID)
		}
	}
	if len(at120) != 1 || at120[0] != long1 {
		t.Errorf("ids of exactly 120 chars: %q, want only the first long name", at120)
	}
	if got := len(list(t, s).Workers); got != len(names) {
		t.Errorf("listed %d workers, want %d", got, len(names))
	}
}
