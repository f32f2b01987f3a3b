//go:build pprof

package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// In a binary built with -tags pprof (cmd/loadbench's -cpuprofile builds
// one; the shipped server is not), RUNTIME_REGISTRY_PPROF_LISTEN names a
// loopback address on which net/http/pprof is served, apart from the API,
// so that a load run can take CPU profiles of the real server.
func init() {
	addr := os.Getenv("RUNTIME_REGISTRY_PPROF_LISTEN")
	if addr == "" || !isLoopback(addr) {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
}
