package remote_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/workspace-backend/runtime-registry/internal/remote"
)

const canaryURL = "http://127.0.0.1:59999/secret-path-canary"
const canaryToken = "tok-canary-0123456789"

func readFiles(files map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, errors.New("no such file /etc/" + p)
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig(t *testing.T) {
	files := readFiles(map[string]string{"tok": "  " + canaryToken + "\n", "empty": "\n"})
	getenv := env(map[string]string{"RT_TOKEN": canaryToken})
	good := "runtimes:\n  - id: build-1\n    label: Build 1\n    url: " + canaryURL + "\n    token_file: tok\n  - id: build-2\n    url: https://10.0.0.2:8181\n    token_env: RT_TOKEN\n    timeout: 750ms\n"
	cfg, err := remote.ParseConfig([]byte(good), files, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Runtimes) != 2 || cfg.Runtimes[0].ID != "build-1" || cfg.Runtimes[0].Timeout != remote.DefaultTimeout ||
		cfg.Runtimes[1].Timeout != 750*time.Millisecond || cfg.Runtimes[1].Label != "build-2" {
		t.Fatalf("parsed %v", cfg)
	}
	entry := func(fields string) string { return "runtimes:\n  - id: a\n" + fields }
	bad := []struct{ name, yaml, want string }{
		{"unknown field", entry("    url: http://x:1\n    token_file: tok\n    command: x\n"), "not a valid runtimes file"},
		{"bad id", "runtimes:\n  - id: 'a b'\n    url: http://x:1\n    token_file: tok\n", "id must be"},
		{"reserved local", "runtimes:\n  - id: local-worker-runtime\n    url: http://x:1\n    token_file: tok\n", "backend's own"},
		{"reserved embedded", "runtimes:\n  - id: embedded-worker-runtime\n    url: http://x:1\n    token_file: tok\n", "backend's own"},
		{"duplicate", "runtimes:\n  - id: a\n    url: http://x:1\n    token_file: tok\n  - id: a\n    url: http://x:2\n    token_file: tok\n", "listed twice"},
		{"no url", entry("    token_file: tok\n"), "url is required"},
		{"ftp url", entry("    url: ftp://x:1\n    token_file: tok\n"), "http or https"},
		{"no host", entry("    url: 'http:///x'\n    token_file: tok\n"), "host"},
		{"credentials in url", entry("    url: http://u:" + canaryToken + "@x:1\n    token_file: tok\n"), "credentials"},
		{"query", entry("    url: http://x:1/?a=1\n    token_file: tok\n"), "query"},
		{"both tokens", entry("    url: http://x:1\n    token_file: tok\n    token_env: RT_TOKEN\n"), "exactly one"},
		{"no token", entry("    url: http://x:1\n"), "exactly one"},
		{"empty token file", entry("    url: http://x:1\n    token_file: empty\n"), "empty"},
		{"unreadable token file", entry("    url: http://x:1\n    token_file: missing\n"), "cannot be read"},
		{"unset token env", entry("    url: http://x:1\n    token_env: NOPE\n"), "not set"},
		{"bad timeout", entry("    url: http://x:1\n    token_file: tok\n    timeout: soon\n"), "timeout"},
		{"negative timeout", entry("    url: http://x:1\n    token_file: tok\n    timeout: -1s\n"), "timeout"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := remote.ParseConfig([]byte(tc.yaml), files, getenv)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canaryToken) || strings.Contains(err.Error(), "/etc/") {
				t.Fatalf("error leaks: %q", err)
			}
		})
	}
}

// No way of printing the config shows the URL or the token.
func TestConfigRedacts(t *testing.T) {
	rc, err := remote.NewRuntimeConfig("build-1", "Build", canaryURL, canaryToken, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := remote.Config{Runtimes: []remote.RuntimeConfig{rc}}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("x", slog.Any("cfg", cfg), slog.Any("rc", rc), "plain", rc)
	src := remote.New(rc, remote.Options{})
	log.Info("y", "source", src)
	outs := []string{
		fmt.Sprintf("%v %+v %#v %s", src, src, src, src), fmt.Sprint([]*remote.Source{src}),
		fmt.Sprintf("%v %+v %#v %s %q", rc, rc, rc, rc, rc),
		fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v %+v", &rc, []remote.RuntimeConfig{rc}),
		fmt.Sprint(rc, cfg), rc.String(), logged.String(),
	}
	for _, o := range outs {
		if strings.Contains(o, canaryToken) || strings.Contains(o, "secret-path-canary") || strings.Contains(o, "59999") {
			t.Fatalf("printed config leaks: %s", o)
		}
	}
	if !strings.Contains(outs[0], "build-1") {
		t.Fatalf("the printed config does not name its runtime: %s", outs[0])
	}
}
