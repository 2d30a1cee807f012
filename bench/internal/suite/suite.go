// Package suite is the runtime-attestor benchmark: hashing against openssl
// and sha256sum, the attestation cycle through the daemon against the same
// checks in process, the HTTP API under wrk against a bare net/http
// server, the footprint of the daemon's process tree, and how attestation
// cost grows with service binaries and plugins. Every figure is a median of
// repeated runs, with its spread and, where there is one, a baseline
// measured in the same invocation, interleaved with it.
package suite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secure-ai/runtime-attestor/bench/internal/machine"
	"github.com/secure-ai/runtime-attestor/bench/internal/report"
	"github.com/secure-ai/runtime-attestor/bench/internal/rig"
	"github.com/secure-ai/runtime-attestor/bench/internal/wrk"
)

// Sizes sets how much work each section does.
type Sizes struct {
	SingleBytes    int64         `json:"single_bytes"`    // 1: the one large file
	ManyFiles      int           `json:"many_files"`      // 1: files in the mixed set
	ManyBytes      int64         `json:"many_bytes"`      // 1: their total size
	HashRounds     int           `json:"hash_rounds"`     // 1: interleaved rounds of every contender
	CycleRuns      int           `json:"cycle_runs"`      // 2: resident attestations per path
	OnDemandRuns   int           `json:"on_demand_runs"`  // 2: attestations with plugins on demand
	ColdRuns       int           `json:"cold_runs"`       // 2, 4: cold starts
	APIRounds      int           `json:"api_rounds"`      // 3: rounds of every wrk run; 0 skips section 3
	APIDuration    time.Duration `json:"api_duration_ns"` // 3: one wrk run
	APIEndpoints   []string      `json:"api_endpoints"`   // 3
	APIThreads     int           `json:"api_threads"`     // 3: wrk -t
	APIConnections int           `json:"api_connections"` // 3: wrk -c
	Idle           time.Duration `json:"idle_ns"`         // 4: idle CPU window
	SampleEvery    time.Duration `json:"sample_every_ns"` // 4: memory and thread sampling period
	ScaleFiles     []int         `json:"scale_files"`     // 5: service binaries
	ScalePlugins   []int         `json:"scale_plugins"`   // 5: copies of the light plugin
	ScaleRuns      int           `json:"scale_runs"`      // 5: attestations per point
}

// FullSizes is what `make bench` runs, in about six minutes on two quiet
// cores.
func FullSizes() Sizes {
	return Sizes{
		SingleBytes: 1 << 30, ManyFiles: 2000, ManyBytes: 1 << 30, HashRounds: 5,
		CycleRuns: 200, OnDemandRuns: 30, ColdRuns: 5,
		APIRounds: 3, APIDuration: 3 * time.Second, APIEndpoints: []string{"/api/v1/verify", "/api/v1/attest"},
		APIThreads: 2, APIConnections: 16,
		Idle: 60 * time.Second, SampleEvery: 20 * time.Millisecond,
		ScaleFiles: []int{10, 100, 1000}, ScalePlugins: []int{6, 12, 24}, ScaleRuns: 12,
	}
}

// QuickSizes shrinks everything so the whole run takes about a minute, for
// working on the harness; its figures are not worth publishing.
func QuickSizes() Sizes {
	return Sizes{
		SingleBytes: 128 << 20, ManyFiles: 200, ManyBytes: 128 << 20, HashRounds: 3,
		CycleRuns: 30, OnDemandRuns: 10, ColdRuns: 2,
		APIRounds: 1, APIDuration: time.Second, APIEndpoints: []string{"/api/v1/verify", "/api/v1/attest"},
		APIThreads: 2, APIConnections: 16,
		Idle: 5 * time.Second, SampleEvery: 20 * time.Millisecond,
		ScaleFiles: []int{10, 50, 200}, ScalePlugins: []int{3, 6, 12}, ScaleRuns: 5,
	}
}

// Validate refuses sizes the sections cannot run with.
func (s Sizes) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(s.SingleBytes > 0, "single_bytes must be positive")
	check(s.ManyFiles > 0 && s.ManyBytes >= int64(s.ManyFiles), "many_files must be positive and many_bytes at least many_files")
	check(s.HashRounds > 0 && s.CycleRuns > 0 && s.OnDemandRuns > 0 && s.ColdRuns > 0 && s.ScaleRuns > 0, "hash_rounds, cycle_runs, on_demand_runs, cold_runs and scale_runs must be positive")
	check(s.APIRounds >= 0, "api_rounds must not be negative")
	if s.APIRounds > 0 {
		check(s.APIDuration >= time.Second, "api_duration must be at least 1s (wrk's resolution)")
		check(len(s.APIEndpoints) > 0, "api_endpoints is empty")
		check(s.APIThreads >= 1 && s.APIConnections >= s.APIThreads, "api_threads must be >= 1 and api_connections >= api_threads")
	}
	check(s.Idle > 0 && s.SampleEvery > 0, "idle and sample_every must be positive")
	for _, n := range s.ScaleFiles {
		check(n >= 1 && n <= s.ManyFiles, "scale_files %d must be between 1 and many_files (%d)", n, s.ManyFiles)
	}
	for _, n := range s.ScalePlugins {
		check(n >= 1 && n <= 99, "scale_plugins %d must be between 1 and 99", n)
	}
	return errors.Join(errs...)
}

// Config is one benchmark run.
type Config struct {
	Mode     string // "full", "quick" or a name for custom sizes
	Root     string // repository root
	Bins     rig.Bins
	WorkDir  string // parent of the temporary folder (files, layouts); "" = os.TempDir()
	Sizes    Sizes
	Progress io.Writer // progress lines; nil = discard
}

// Report is everything a run measured. It is written as JSON as is.
type Report struct {
	Mode       string       `json:"mode"`
	Machine    machine.Info `json:"machine"`
	LoadAvgEnd [3]float64   `json:"load_avg_end"`
	Sizes      Sizes        `json:"sizes"`
	// PolicyChanges lists how the benchmark's policy differs from the
	// development policy.
	PolicyChanges []string `json:"policy_changes"`
	// Limits are the systemd unit's resource limits the footprint is
	// compared with.
	Limits    Limits       `json:"unit_limits"`
	ElapsedS  float64      `json:"elapsed_s"`
	Hashing   *Hashing     `json:"hashing,omitempty"`
	Cycle     *Cycle       `json:"cycle,omitempty"`
	API       *API         `json:"api,omitempty"`
	Footprint *Footprint   `json:"footprint,omitempty"`
	Scaling   *Scaling     `json:"scaling,omitempty"`
	Notes     []string     `json:"notes,omitempty"`
	Table     report.Table `json:"table"`
}

type runner struct {
	cfg   Config
	tmp   string
	start time.Time
	rep   *Report
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Progress == nil {
		return
	}
	fmt.Fprintf(r.cfg.Progress, "bench %6.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *runner) note(format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
}

// Run runs every section and returns the report. The temporary folder it
// makes under cfg.WorkDir is removed before it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Sizes.Validate(); err != nil {
		return nil, fmt.Errorf("bench sizes: %w", err)
	}
	for name, p := range map[string]string{"daemon": cfg.Bins.Daemon, "attestctl": cfg.Bins.Attestctl, "light plugin": cfg.Bins.Light, "attestor-bench": cfg.Bins.Bench} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("bench: %s executable: %w (run make build)", name, err)
		}
	}
	if cfg.Sizes.APIRounds > 0 {
		if _, err := wrk.Path(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(cfg.WorkDir, "attestor-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: make work folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	info, err := machine.Describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r := &runner{cfg: cfg, tmp: tmp, start: time.Now(), rep: &Report{
		Mode: cfg.Mode, Machine: info, Sizes: cfg.Sizes, Limits: readLimits(cfg.Root),
		PolicyChanges: []string{
			"listen on a free loopback port; plugin_dir, HMAC key, API token and audit log in a temporary folder",
			"refresh_interval " + rig.RefreshInterval + ": no periodic attestation while measuring",
			"log_level " + rig.LogLevel + ": debug logs every HTTP request, which a load test would measure instead of the API",
		},
	}}
	r.logf("machine: %s; load average %.2f %.2f %.2f", info.Summary(), info.LoadAvg[0], info.LoadAvg[1], info.LoadAvg[2])
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	if la, err := machine.LoadAvg(); err == nil {
		r.rep.LoadAvgEnd = la
	}
	r.rep.ElapsedS = time.Since(r.start).Seconds()
	r.rep.Table = r.rep.mainTable()
	r.logf("done in %.0f s", r.rep.ElapsedS)
	return r.rep, nil
}

func (r *runner) run(ctx context.Context) error {
	r.logf("[1/5] hashing")
	h, many, err := r.hashing(ctx)
	if err != nil {
		return fmt.Errorf("hashing: %w", err)
	}
	r.rep.Hashing = h
	r.logf("[2-4/5] attestation cycle, footprint, API")
	if err := r.daemonSections(ctx); err != nil {
		return err
	}
	r.logf("[5/5] scaling")
	sc, err := r.scaling(ctx, many)
	if err != nil {
		return fmt.Errorf("scaling: %w", err)
	}
	r.rep.Scaling = sc
	return nil
}

// WriteFiles writes the report as JSON to jsonPath and as Markdown to
// mdPath (through mdTmp, renamed into place; "" = mdPath+".tmp").
func (rep *Report) WriteFiles(jsonPath, mdPath, mdTmp string) error {
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := report.WriteFile(jsonPath, "", append(js, '\n')); err != nil {
		return err
	}
	var md strings.Builder
	if err := rep.Markdown(&md); err != nil {
		return err
	}
	return report.WriteFile(mdPath, mdTmp, []byte(md.String()))
}

func (r *runner) layout(name string, spec rig.Spec) (*rig.Layout, error) {
	return rig.New(r.cfg.Root, filepath.Join(r.tmp, name), r.cfg.Bins, spec)
}
