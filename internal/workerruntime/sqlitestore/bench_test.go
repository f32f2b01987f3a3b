package sqlitestore_test

import (
	"fmt"
	"path/filepath"
	"testing"

	wr "github.com/workspace-backend/runtime-registry/internal/workerruntime"
	"github.com/workspace-backend/runtime-registry/internal/workerruntime/sqlitestore"
)

// BenchmarkAppendBursts commits 100,000 output lines in bursts of 4,096
// (what the Runtime's pump hands the store), the store alone:
//
//	go test -run '^$' -bench AppendBursts -benchtime 3x ./internal/workerruntime/sqlitestore/
func BenchmarkAppendBursts(b *testing.B) {
	s, err := sqlitestore.Open(b.Context(), filepath.Join(b.TempDir(), "w.db"), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	burst := make([]wr.TranscriptEntry, 4096)
	for i := range burst {
		burst[i] = wr.TranscriptEntry{Role: wr.RoleAssistant, Content: fmt.Sprint("line ", i), At: t0}
	}
	n := 0
	for b.Loop() {
		n++
		id := fmt.Sprint("w", n)
		if err := s.CreateWorker(b.Context(), worker(id, wr.StateActive, wr.StatusRunning), wr.Idempotency{}); err != nil {
			b.Fatal(err)
		}
		for left := 100_000; left > 0; left -= len(burst) {
			if _, err := s.AppendTranscript(b.Context(), id, burst[:min(left, len(burst))]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(100_000*b.N)/b.Elapsed().Seconds(), "lines/s")
}
