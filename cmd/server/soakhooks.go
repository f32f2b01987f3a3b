//go:build soakhooks

package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// In a binary built with -tags soakhooks (make soak does; the shipped server
// is not), SIGUSR1 makes the server write one JSON line with its goroutine
// count to stderr, so that the soak can tell whether goroutines leak.
func init() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		for range ch {
			_, _ = fmt.Fprintf(os.Stderr, "{\"msg\":\"soak_stats\",\"goroutines\":%d}\n", runtime.NumGoroutine())
		}
	}()
}
