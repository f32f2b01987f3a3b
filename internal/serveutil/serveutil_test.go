package serveutil_test

import (
	"flag"
	"io"
	"testing"

	"github.com/workspace-backend/runtime-registry/internal/serveutil"
)

func TestEnvName(t *testing.T) {
	if got := serveutil.EnvName("APP_", "state-dir"); got != "APP_STATE_DIR" {
		t.Errorf("EnvName = %q", got)
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantN    int
		wantBad  string
		wantFail bool
	}{
		{"unset", nil, 1, "", false},
		{"set", map[string]string{"X_COUNT": "7"}, 7, "", false},
		{"empty is unset", map[string]string{"X_COUNT": ""}, 1, "", false},
		{"rejected", map[string]string{"X_COUNT": "seven"}, 1, "X_COUNT", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			n := fs.Int("count", 1, "")
			name, err := serveutil.ApplyEnv(fs, func(k string) string { return tt.env[k] },
				func(f string) string { return serveutil.EnvName("X_", f) })
			if (err != nil) != tt.wantFail || name != tt.wantBad {
				t.Fatalf("ApplyEnv = %q, %v", name, err)
			}
			if !tt.wantFail && *n != tt.wantN {
				t.Errorf("count = %d, want %d", *n, tt.wantN)
			}
		})
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "example.com": false,
	} {
		if got := serveutil.IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
