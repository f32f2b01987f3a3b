package wrlocal_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/wrlocal"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

const sampleProfiles = "../../../examples/sample-workspace/profiles.yaml"

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("default: x\nprofiles:\n  - name: x\n    command: [\"/bin/true\"]\n    env: {SECRET: hunter2, 'bad name': v}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  wrlocal.Config
		want string
	}{
		{"no state dir", wrlocal.Config{ProfilesFile: sampleProfiles, WorkspaceRoot: dir}, "state directory"},
		{"no profiles", wrlocal.Config{StateDir: dir, WorkspaceRoot: dir}, "profiles file"},
		{"missing profiles", wrlocal.Config{StateDir: dir, ProfilesFile: filepath.Join(dir, "nope.yaml"), WorkspaceRoot: dir}, "nope.yaml"},
		{"bad profiles", wrlocal.Config{StateDir: dir, ProfilesFile: bad, WorkspaceRoot: dir}, `profile "x": field "env"`},
		{"missing root", wrlocal.Config{StateDir: dir, ProfilesFile: sampleProfiles, WorkspaceRoot: filepath.Join(dir, "nope")}, "workspace root"},
		{"root is a file", wrlocal.Config{StateDir: dir, ProfilesFile: sampleProfiles, WorkspaceRoot: file}, "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := wrlocal.Open(t.Context(), tc.cfg)
			if err == nil {
				_ = rt.Close(t.Context())
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q, want it to mention %q (and no env value)", err, tc.want)
			}
		})
	}
}

// TestSampleEchoRoundTrip opens the shipped sample profiles and talks to
// the echo worker, then reopens the state directory.
func TestSampleEchoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state", "nested")
	cfg := wrlocal.Config{StateDir: state, ProfilesFile: sampleProfiles, WorkspaceRoot: dir, Logger: quiet()}
	rt, err := wrlocal.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v", fi, err)
	}
	info, _ := rt.Info(t.Context())
	req := wr.CreateRequest{Intent: wr.Intent{Kind: wr.IntentAssistant}, IdempotencyKey: "create-1"}
	w, err := rt.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rt.Subscribe(t.Context(), wr.SubscribeRequest{WorkerID: w.ID, Cursor: ""})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		if got, _ := rt.Get(ctx, w.ID); got.State == wr.StateActive {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := rt.SendInput(ctx, w.ID, wr.Input{Kind: wr.InputUser, Content: "hi"}); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Entry != nil && ev.Entry.Role == wr.RoleAssistant {
			if ev.Entry.Content != "echo: hi" {
				t.Fatalf("reply %q", ev.Entry.Content)
			}
			break
		}
	}
	if err := rt.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := func(rt *wr.Runtime) wr.Worker {
		g, err := rt.Get(t.Context(), w.ID)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	rt2, err := wrlocal.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rt2.Close(t.Context()) }()
	if g := got(rt2); g.Status != wr.StatusRuntimeShutdown {
		t.Fatalf("after reopen: %s", g.Status)
	}
	// The idempotency key survived the restart: the same create answers
	// the first worker and starts nothing.
	if again, err := rt2.Create(t.Context(), req); err != nil || again.ID != w.ID {
		t.Fatalf("replayed create after restart: %+v %v", again, err)
	}
	info2, _ := rt2.Info(t.Context())
	if info2.InstanceID != info.InstanceID {
		t.Fatal("instance id changed across restarts")
	}
}
