package grants

import "github.com/prometheus/client_golang/prometheus"

// metrics are the grant store's Prometheus metrics. Counters count what
// this replica did (created, revoked, consumed) or forgot (expired); the
// gauges are read at scrape time.
type metrics struct {
	created, revoked, expired, consumed prometheus.Counter
}

// newMetrics registers the metrics with reg; with a nil reg they count
// into nothing.
func newMetrics(reg prometheus.Registerer, s *Store) *metrics {
	const ns, sub = "intentpdp", "grants"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		created:  counter("created_total", "Task grants created through this replica."),
		revoked:  counter("revoked_total", "Task grants revoked through this replica."),
		expired:  counter("expired_total", "Task grants that expired and were swept from this replica."),
		consumed: counter("consumed_total", "Uses of limited task grants taken by allows on this replica."),
	}
	if reg == nil {
		return m
	}
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "live",
		Help: "Task grants live now on this replica."}, func() float64 { return float64(s.liveCount()) })
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "store_lag_seconds",
		Help: "Time since the last confirmed contact with the shared grant store (0 for the memory store); " +
			"above --grant-max-staleness no grant is served."}, func() float64 { return s.lag().Seconds() })
	reg.MustRegister(m.created, m.revoked, m.expired, m.consumed, live, lag)
	return m
}
