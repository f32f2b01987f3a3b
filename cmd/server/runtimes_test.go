package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --runtimes (flag or env) registers remote runtimes; an unreachable one is
// listed unavailable, and neither its address nor its token is logged or
// answered.
func TestRemoteRuntimesWired(t *testing.T) {
	dir := t.TempDir()
	// A free loopback port that nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	_ = ln.Close()
	tok := filepath.Join(dir, "tok")
	if err := os.WriteFile(tok, []byte("tok-canary-wired\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "runtimes.yaml")
	yaml := "runtimes:\n  - id: far-away\n    label: Far away\n    url: http://" + deadAddr + "/canary-path\n    token_file: " + tok + "\n    timeout: 500ms\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(nil, func(k string) string {
		if k == "RUNTIME_REGISTRY_RUNTIMES" {
			return file
		}
		return ""
	}, io.Discard)
	if err != nil || cfg.Runtimes != file {
		t.Fatalf("env: %v %q", err, cfg.Runtimes)
	}
	s := startRun(t, cfg)
	r := get(t, "GET", s.url("/api/runtimes"), nil)
	body := string(r.body)
	if r.status != 200 || !strings.Contains(body, `"runtime_id":"far-away"`) || !strings.Contains(body, "remote_runtime_unreachable") {
		t.Fatalf("runtimes: %d %s", r.status, body)
	}
	if r := get(t, "GET", s.url("/api/runtimes/far-away/workers"), nil); r.status != 503 {
		t.Fatalf("workers of an unreachable runtime: %d %s", r.status, r.body)
	}
	for _, secret := range []string{deadAddr, "canary-path", "tok-canary-wired", tok} {
		if strings.Contains(body, secret) || strings.Contains(s.logs.String(), secret) {
			t.Errorf("%q leaked into an answer or the log", secret)
		}
	}
}

// A bad runtimes file stops the start with an error that names the field,
// never the URL or the token.
func TestBadRuntimesFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "runtimes.yaml")
	if err := os.WriteFile(file, []byte("runtimes:\n  - id: x\n    url: ftp://secret-host-canary\n    token_env: NOPE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"--runtimes", file}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	err = run(context.Background(), cfg, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "url must be http or https") || strings.Contains(err.Error(), "secret-host-canary") {
		t.Fatalf("run: %v", err)
	}
}
