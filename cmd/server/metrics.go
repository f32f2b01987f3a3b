package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/workspace-backend/runtime-registry/internal/compat"
)

// registerIndexMetrics exposes the size and freshness of the local pod index.
func registerIndexMetrics(r prometheus.Registerer, s *compat.Source) {
	gauge := func(name, help string, f func(compat.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(s.Stats()) })
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	r.MustRegister(
		gauge("runtime_registry_local_index_pods", "Entries of the local pods directory in the index.",
			func(st compat.Stats) float64 { return float64(st.Pods) }),
		gauge("runtime_registry_local_index_workers", "Workers the local index lists.",
			func(st compat.Stats) float64 { return float64(st.Workers) }),
		gauge("runtime_registry_local_index_watching", "1 while file watches keep the local index fresh, 0 while it polls.",
			func(st compat.Stats) float64 { return b(st.Watching) }),
		gauge("runtime_registry_local_index_last_refresh_timestamp_seconds",
			"Unix time at which the local index was last known to match the store (0 when not indexed).",
			func(st compat.Stats) float64 {
				if st.RefreshedAt.IsZero() {
					return 0
				}
				return float64(st.RefreshedAt.UnixNano()) / 1e9
			}),
	)
}
