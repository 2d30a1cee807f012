package suite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/bench/internal/inproc"
	"github.com/secure-ai/runtime-attestor/bench/internal/proctree"
	"github.com/secure-ai/runtime-attestor/bench/internal/rig"
	"github.com/secure-ai/runtime-attestor/bench/internal/stats"
	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/engine"
)

// The two ways the daemon can run its plugins (policy resident_plugins).
const (
	ModeOnDemand = "on demand" // resident_plugins: false, the policy's default
	ModeResident = "resident"  // resident_plugins: true
)

// Cycle is section 2.
type Cycle struct {
	Plugins []string `json:"plugins"`
	State   string   `json:"state"`
	// WarmDaemonMS is the wall time of POST /api/v1/refresh with resident
	// plugins, already running (HTTP, engine, go-plugin gRPC, the checks).
	WarmDaemonMS stats.Summary `json:"warm_daemon_ms"`
	// WarmInprocMS is the engine's Refresh with the same checks called in
	// this process (no HTTP, no RPC, no plugin process), the same merge,
	// signature and audit. Interleaved with WarmDaemonMS.
	WarmInprocMS stats.Summary `json:"warm_inproc_ms"`
	// Overhead is WarmDaemonMS.Median / WarmInprocMS.Median, OverheadP99
	// the same for p99.
	Overhead    float64 `json:"overhead"`
	OverheadP99 float64 `json:"overhead_p99"`
	// OnDemandMS is POST /api/v1/refresh under the policy's default, where
	// every attestation starts each plugin for its turn and stops it.
	OnDemandMS stats.Summary `json:"on_demand_ms"`
	// PerPlugin compares each check's duration as the daemon saw it
	// (checks.<name>.duration_ms, whole ms) with its in-process duration.
	PerPlugin []PluginTimes `json:"per_plugin"`
	// ColdOnceMS is `runtime-attestor --once` under the default policy:
	// start the plugins, attest, print, stop.
	ColdOnceMS stats.Summary `json:"cold_once_ms"`
	// ColdFirstMS is each check's duration_ms in the first attestation
	// after the daemon started (median over cold starts).
	ColdFirstMS map[string]float64 `json:"cold_first_check_ms"`
}

// PluginTimes is one check's median duration each way.
type PluginTimes struct {
	Name       string  `json:"name"`
	ResidentMS float64 `json:"resident_ms"`
	OnDemandMS float64 `json:"on_demand_ms"`
	InprocMS   float64 `json:"inproc_ms"`
}

// Footprint is section 4.
type Footprint struct {
	// Modes holds the footprint under each way of running plugins, the
	// policy's default (on demand) first.
	Modes []ModeFootprint `json:"modes"`
	// UnderLoad is the peak of the default daemon's tree during the API
	// runs of section 3.
	UnderLoad *proctree.Peak `json:"under_load,omitempty"`
	// IdleWindowS is the idle window, the same for both modes (their
	// daemons idle side by side).
	IdleWindowS float64 `json:"idle_window_s"`
	// StartToVerdictMS is from exec of the daemon (default policy) to
	// /health answering a state other than pending.
	StartToVerdictMS stats.Summary `json:"start_to_verdict_ms"`
}

// ModeFootprint is the daemon's process tree under one mode.
type ModeFootprint struct {
	Mode string `json:"mode"`
	// DuringAttestations is the peak of the tree's summed RSS, threads and
	// processes, sampled every sample_every during back-to-back
	// attestations.
	DuringAttestations proctree.Peak `json:"during_attestations"`
	// CPUPerAttestationMS is the tree's CPU time (user+system) per
	// attestation.
	CPUPerAttestationMS float64 `json:"cpu_per_attestation_ms"`
	// Idle is the tree at rest; IdleCPUPercent its CPU use over the idle
	// window, in percent of one core.
	Idle           proctree.Usage `json:"idle"`
	IdleCPUPercent float64        `json:"idle_cpu_percent"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// daemonSections runs sections 2, 4 and 3 on the development policy with
// the six built-in plugins, on demand (its default) and resident.
func (r *runner) daemonSections(ctx context.Context) error {
	s := r.cfg.Sizes
	yes := true
	lDef, err := r.layout("dev", rig.Spec{})
	if err != nil {
		return err
	}
	lRes, err := r.layout("dev-resident", rig.Spec{Resident: &yes})
	if err != nil {
		return err
	}
	cyc := &Cycle{ColdFirstMS: map[string]float64{}}
	fp := &Footprint{}
	r.rep.Cycle, r.rep.Footprint = cyc, fp

	if err := r.cold(ctx, lDef, cyc, fp); err != nil {
		return err
	}

	dDef, err := startWait(ctx, lDef)
	if err != nil {
		return err
	}
	defer dDef.Stop()
	dRes, err := startWait(ctx, lRes)
	if err != nil {
		return err
	}
	defer dRes.Stop()

	// Resident daemon against the in-process engine, interleaved.
	eng, closeEng, names, err := r.inprocEngine(ctx, lRes)
	if err != nil {
		return err
	}
	defer closeEng()
	cyc.Plugins = names
	for range 3 { // warm both paths up
		if _, err := lRes.Refresh(ctx); err != nil {
			return err
		}
		if _, err := eng.Refresh(ctx); err != nil {
			return fmt.Errorf("in-process attestation: %w", err)
		}
	}
	res := ModeFootprint{Mode: ModeResident}
	var dwall, iwall []float64
	dcheck, icheck := map[string][]float64{}, map[string][]float64{}
	err = r.sampled(dRes, s.CycleRuns, &res, func() error {
		a, err := lRes.Refresh(ctx)
		if err != nil {
			return err
		}
		dwall = append(dwall, ms(a.Wall))
		cyc.State = a.State
		for name, v := range a.CheckMS {
			dcheck[name] = append(dcheck[name], float64(v))
		}
		t0 := time.Now()
		snap, err := eng.Refresh(ctx)
		if err != nil {
			return fmt.Errorf("in-process attestation: %w", err)
		}
		iwall = append(iwall, ms(time.Since(t0)))
		if string(snap.State) != a.State {
			r.note("in-process state %s differs from the daemon's %s", snap.State, a.State)
		}
		for _, p := range snap.Plugins {
			icheck[p.Name] = append(icheck[p.Name], ms(p.Duration))
		}
		return nil
	})
	if err != nil {
		return err
	}
	cyc.WarmDaemonMS, cyc.WarmInprocMS = stats.Summarize(dwall), stats.Summarize(iwall)
	cyc.Overhead = stats.Ratio(cyc.WarmDaemonMS.Median, cyc.WarmInprocMS.Median)
	cyc.OverheadP99 = stats.Ratio(cyc.WarmDaemonMS.P99, cyc.WarmInprocMS.P99)
	r.logf("  resident: daemon median %.1f ms p99 %.1f ms; in-process median %.1f ms p99 %.1f ms; peak RSS %d MiB, %d threads, %d processes",
		cyc.WarmDaemonMS.Median, cyc.WarmDaemonMS.P99, cyc.WarmInprocMS.Median, cyc.WarmInprocMS.P99,
		res.DuringAttestations.RSSBytes>>20, res.DuringAttestations.Threads, res.DuringAttestations.Procs)

	// The default: plugins started for each attestation.
	def := ModeFootprint{Mode: ModeOnDemand}
	var owall []float64
	ocheck := map[string][]float64{}
	if _, err := lDef.Refresh(ctx); err != nil {
		return err
	}
	err = r.sampled(dDef, s.OnDemandRuns, &def, func() error {
		a, err := lDef.Refresh(ctx)
		if err != nil {
			return err
		}
		owall = append(owall, ms(a.Wall))
		for name, v := range a.CheckMS {
			ocheck[name] = append(ocheck[name], float64(v))
		}
		return nil
	})
	if err != nil {
		return err
	}
	cyc.OnDemandMS = stats.Summarize(owall)
	r.logf("  on demand: median %.1f ms p99 %.1f ms; peak RSS %d MiB, %d threads, %d processes",
		cyc.OnDemandMS.Median, cyc.OnDemandMS.P99, def.DuringAttestations.RSSBytes>>20, def.DuringAttestations.Threads, def.DuringAttestations.Procs)
	for name, v := range dcheck {
		cyc.PerPlugin = append(cyc.PerPlugin, PluginTimes{
			Name: name, ResidentMS: stats.Summarize(v).Median, OnDemandMS: stats.Summarize(ocheck[name]).Median, InprocMS: stats.Summarize(icheck[name]).Median,
		})
	}
	sort.Slice(cyc.PerPlugin, func(i, j int) bool { return cyc.PerPlugin[i].Name < cyc.PerPlugin[j].Name })

	// Idle: both daemons side by side.
	if err := r.idle(ctx, fp, []*rig.Daemon{dDef, dRes}, []*ModeFootprint{&def, &res}); err != nil {
		return err
	}
	fp.Modes = []ModeFootprint{def, res}

	if s.APIRounds > 0 {
		if err := dRes.Stop(); err != nil {
			return err
		}
		api, load, err := r.api(ctx, lDef, dDef)
		if err != nil {
			return fmt.Errorf("API: %w", err)
		}
		r.rep.API, fp.UnderLoad = api, &load
	} else {
		r.note("section 3 (API under load) was not run")
	}
	if err := dRes.Stop(); err != nil {
		return err
	}
	return dDef.Stop()
}

// cold measures attest --once and the daemon's start to first verdict.
func (r *runner) cold(ctx context.Context, l *rig.Layout, cyc *Cycle, fp *Footprint) error {
	var once, verdict []float64
	first := map[string][]float64{}
	for i := range r.cfg.Sizes.ColdRuns {
		a, err := l.Once(ctx)
		if err != nil {
			return fmt.Errorf("cold attestation: %w", err)
		}
		once = append(once, ms(a.Wall))
		d, err := l.Start()
		if err != nil {
			return err
		}
		wait, st, err := d.WaitVerdict(ctx, 2*time.Millisecond)
		if err != nil {
			_ = d.Stop()
			return fmt.Errorf("first verdict: %w", err)
		}
		verdict = append(verdict, ms(wait))
		_, _, body, err := l.Get(ctx, "/api/v1/attest")
		if err != nil {
			_ = d.Stop()
			return err
		}
		fb, err := rig.ParseAttest(body)
		if err != nil {
			_ = d.Stop()
			return err
		}
		for name, v := range fb.CheckMS {
			first[name] = append(first[name], float64(v))
		}
		if err := d.Stop(); err != nil {
			return err
		}
		r.logf("  cold %d: --once %.0f ms (%s); daemon start to first verdict %.0f ms (%s)", i+1, ms(a.Wall), a.State, ms(wait), st)
	}
	cyc.ColdOnceMS = stats.Summarize(once)
	fp.StartToVerdictMS = stats.Summarize(verdict)
	for name, v := range first {
		cyc.ColdFirstMS[name] = stats.Summarize(v).Median
	}
	return nil
}

func startWait(ctx context.Context, l *rig.Layout) (*rig.Daemon, error) {
	d, err := l.Start()
	if err != nil {
		return nil, err
	}
	if _, _, err := d.WaitVerdict(ctx, 5*time.Millisecond); err != nil {
		_ = d.Stop()
		return nil, err
	}
	return d, nil
}

// sampled runs one n times while sampling d's process tree, and fills the
// peak and the CPU time per run.
func (r *runner) sampled(d *rig.Daemon, n int, mf *ModeFootprint, one func() error) error {
	before, err := proctree.Read(d.PID())
	if err != nil {
		return err
	}
	sampler := proctree.Sample(d.PID(), r.cfg.Sizes.SampleEvery)
	for range n {
		if err := one(); err != nil {
			_, _ = sampler.Stop()
			return err
		}
	}
	peak, err := sampler.Stop()
	if err != nil {
		return err
	}
	after, err := proctree.Read(d.PID())
	if err != nil {
		return err
	}
	mf.DuringAttestations = peak
	// Processes that ended meanwhile (plugins on demand) took their CPU
	// time with them into the daemon's cutime, which Read does not count;
	// cpuTicks therefore adds the children's reaped time.
	mf.CPUPerAttestationMS = float64(cpuTicks(after)-cpuTicks(before)) * 1000 / proctree.TicksPerSecond / float64(n)
	return nil
}

func cpuTicks(u proctree.Usage) uint64 { return u.CPUTicks + u.ChildTicks }

// idle measures the daemons' trees over the idle window, all at once.
func (r *runner) idle(ctx context.Context, fp *Footprint, ds []*rig.Daemon, mfs []*ModeFootprint) error {
	time.Sleep(min(2*time.Second, r.cfg.Sizes.Idle))
	u0 := make([]proctree.Usage, len(ds))
	for i, d := range ds {
		u, err := proctree.Read(d.PID())
		if err != nil {
			return err
		}
		u0[i] = u
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.cfg.Sizes.Idle):
	}
	fp.IdleWindowS = time.Since(t0).Seconds()
	for i, d := range ds {
		u1, err := proctree.Read(d.PID())
		if err != nil {
			return err
		}
		mfs[i].Idle = u1
		mfs[i].IdleCPUPercent = float64(cpuTicks(u1)-cpuTicks(u0[i])) / proctree.TicksPerSecond / fp.IdleWindowS * 100
		r.logf("  idle, %s: %.3f%% of one core over %.0f s; RSS %d MiB, %d threads, %d processes",
			mfs[i].Mode, mfs[i].IdleCPUPercent, fp.IdleWindowS, u1.RSSBytes>>20, u1.Threads, u1.Procs)
	}
	return nil
}

// inprocEngine builds the real engine over the in-process checks of the
// layout's policy, with its own audit log.
func (r *runner) inprocEngine(ctx context.Context, l *rig.Layout) (*engine.Engine, func(), []string, error) {
	pol, err := l.LoadPolicy()
	if err != nil {
		return nil, nil, nil, err
	}
	raw, err := os.ReadFile(l.PolicyPath)
	if err != nil {
		return nil, nil, nil, err
	}
	sum := sha256.Sum256(raw)
	host, err := inproc.New(ctx, pol, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	log, err := audit.Open(filepath.Join(l.Dir, "inproc-audit.jsonl"), hclog.NewNullLogger())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("in-process audit log: %w", err)
	}
	eng, err := engine.New(engine.Options{Policy: pol, PolicySHA256: hex.EncodeToString(sum[:]), Host: host, Audit: log, Logger: hclog.NewNullLogger(), Version: "bench"})
	if err != nil {
		log.Close()
		return nil, nil, nil, err
	}
	return eng, func() { eng.Close(); log.Close() }, host.Names(), nil
}
