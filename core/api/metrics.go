package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/secure-ai/runtime-attestor/core/state"
)

// collector exposes the snapshot at scrape time: one Snapshot() per scrape,
// so every value in a scrape comes from the same attestation.
type collector struct {
	s *Server

	state, attestations, degraded, failed, refreshes, refreshRequests *prometheus.Desc
	lastAttested, score                                               *prometheus.Desc
	pluginDuration, pluginFaults, pluginFindings                      *prometheus.Desc
	auditWriteFailures                                                *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(s *Server) *collector {
	const ns = "runtime_attestor_"
	return &collector{
		s: s,
		state: prometheus.NewDesc(ns+"state",
			"Current attestation state: 1 for the current state, 0 for the others.", []string{"state"}, nil),
		attestations: prometheus.NewDesc(ns+"attestations_total",
			"Attestations run, whatever their outcome (attest_count in /api/security/status).", nil, nil),
		degraded: prometheus.NewDesc(ns+"attestations_degraded_total",
			"Attestations that ended degraded (degrade_count in /api/security/status).", nil, nil),
		failed: prometheus.NewDesc(ns+"attestations_failed_total",
			"Attestations that ended failed (fail_count in /api/security/status).", nil, nil),
		refreshes: prometheus.NewDesc(ns+"refreshes_total",
			"Attestations run because of a refresh request.", nil, nil),
		refreshRequests: prometheus.NewDesc(ns+"refresh_requests_total",
			"POST /api/v1/refresh requests by outcome of the token check.", []string{"result"}, nil),
		lastAttested: prometheus.NewDesc(ns+"last_attested_timestamp_seconds",
			"Unix time the last attestation finished; 0 while pending.", nil, nil),
		score: prometheus.NewDesc(ns+"score",
			"Severity-weighted score of the last attestation's findings.", nil, nil),
		pluginDuration: prometheus.NewDesc(ns+"plugin_duration_seconds",
			"Duration of the check plugin's last measurement.", []string{"plugin"}, nil),
		pluginFaults: prometheus.NewDesc(ns+"plugin_faults_total",
			"Faults of the check plugin (crash, timeout, protocol error, ...).", []string{"plugin"}, nil),
		pluginFindings: prometheus.NewDesc(ns+"plugin_findings",
			"Findings of the check plugin's last measurement.", []string{"plugin"}, nil),
		auditWriteFailures: prometheus.NewDesc(ns+"audit_write_failures_total",
			"Audit records that could not be written since the daemon started, as of the last attestation.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.attestations, c.degraded, c.failed, c.refreshes,
		c.refreshRequests, c.lastAttested, c.score, c.pluginDuration, c.pluginFaults, c.pluginFindings, c.auditWriteFailures} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.att.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, st := range []state.State{state.Pending, state.Attested, state.Degraded, state.Failed} {
		v := 0.0
		if snap.State == st {
			v = 1
		}
		gauge(c.state, v, string(st))
	}
	counter(c.attestations, snap.AttestCount)
	counter(c.degraded, snap.DegradeCount)
	counter(c.failed, snap.FailCount)
	counter(c.refreshes, snap.RefreshCount)
	counter(c.refreshRequests, c.s.refreshAuthorized.Load(), "authorized")
	counter(c.refreshRequests, c.s.refreshUnauthorized.Load(), "unauthorized")
	counter(c.refreshRequests, c.s.refreshForbidden.Load(), "forbidden")
	last := 0.0
	if !snap.LastAttested.IsZero() {
		last = float64(snap.LastAttested.UnixNano()) / 1e9
	}
	gauge(c.lastAttested, last)
	gauge(c.score, float64(snap.Score))
	counter(c.auditWriteFailures, snap.AuditWriteFailures)
	seen := make(map[string]bool, len(snap.Plugins))
	for _, p := range snap.Plugins {
		if seen[p.Name] { // one series per plugin, even if the engine repeats a name
			continue
		}
		seen[p.Name] = true
		gauge(c.pluginDuration, p.Duration.Seconds(), p.Name)
		counter(c.pluginFaults, p.FaultCount, p.Name)
		gauge(c.pluginFindings, float64(p.Findings), p.Name)
	}
}
