package suite

import (
	"context"
	"fmt"
	"time"

	"github.com/secure-ai/runtime-attestor/bench/internal/hashset"
	"github.com/secure-ai/runtime-attestor/bench/internal/proctree"
	"github.com/secure-ai/runtime-attestor/bench/internal/rig"
	"github.com/secure-ai/runtime-attestor/bench/internal/stats"
)

// Scaling is section 5.
type Scaling struct {
	// Files grows service_binaries (the first N files of the mixed set),
	// the six built-in plugins running.
	Files []ScalePoint `json:"files"`
	// Plugins grows the number of light plugins, the built-ins disabled.
	Plugins []ScalePoint `json:"plugins"`
}

// ScalePoint is one size, measured with plugins on demand and resident.
type ScalePoint struct {
	N int `json:"n"`
	// Bytes is the size of the N service binaries (Files only).
	Bytes    int64    `json:"bytes,omitempty"`
	OnDemand ScaleRun `json:"on_demand"`
	Resident ScaleRun `json:"resident"`
}

// ScaleRun is one size under one mode.
type ScaleRun struct {
	// WallMS is the refresh wall time; BinariesMS the binaries check's
	// duration_ms (Files only).
	WallMS     stats.Summary  `json:"wall_ms"`
	BinariesMS *stats.Summary `json:"binaries_ms,omitempty"`
	// Peak is the process tree's peak during the attestations.
	Peak proctree.Peak `json:"peak"`
	// StartToVerdictMS is this daemon's start to its first verdict.
	StartToVerdictMS float64 `json:"start_to_verdict_ms"`
}

func (p *ScalePoint) run(mode string) *ScaleRun {
	if mode == ModeResident {
		return &p.Resident
	}
	return &p.OnDemand
}

// modes lists the plugin modes in the order they are measured and shown.
func modes() []string { return []string{ModeOnDemand, ModeResident} }

func (r *runner) scaling(ctx context.Context, many hashset.Set) (*Scaling, error) {
	sc := &Scaling{}
	for _, n := range r.cfg.Sizes.ScaleFiles {
		bins := make(map[string]string, n)
		p := ScalePoint{N: n}
		for i, f := range many.Files[:n] {
			bins[fmt.Sprintf("svc%04d", i)] = f.Path
			p.Bytes += f.Size
		}
		if err := hashset.Warm(ctx, hashset.Set{Files: many.Files[:n]}); err != nil {
			return nil, err
		}
		for _, mode := range modes() {
			resident := mode == ModeResident
			run, err := r.scaleRun(ctx, fmt.Sprintf("files-%d-%t", n, resident), rig.Spec{ServiceBinaries: bins, Resident: &resident}, true)
			if err != nil {
				return nil, fmt.Errorf("%d service binaries, %s: %w", n, mode, err)
			}
			*p.run(mode) = run
			r.logf("  %d service binaries (%d MiB), %s: median %.1f ms, binaries check %.0f ms, peak RSS %d MiB, %d threads, %d processes",
				n, p.Bytes>>20, mode, run.WallMS.Median, run.BinariesMS.Median, run.Peak.RSSBytes>>20, run.Peak.Threads, run.Peak.Procs)
		}
		sc.Files = append(sc.Files, p)
	}
	for _, n := range r.cfg.Sizes.ScalePlugins {
		p := ScalePoint{N: n}
		for _, mode := range modes() {
			resident := mode == ModeResident
			run, err := r.scaleRun(ctx, fmt.Sprintf("plugins-%d-%t", n, resident), rig.Spec{Builtins: []string{}, Lights: n, Resident: &resident}, false)
			if err != nil {
				return nil, fmt.Errorf("%d light plugins, %s: %w", n, mode, err)
			}
			*p.run(mode) = run
			r.logf("  %d light plugins, %s: median %.1f ms, peak RSS %d MiB, %d threads, %d processes",
				n, mode, run.WallMS.Median, run.Peak.RSSBytes>>20, run.Peak.Threads, run.Peak.Procs)
		}
		sc.Plugins = append(sc.Plugins, p)
	}
	return sc, nil
}

func (r *runner) scaleRun(ctx context.Context, name string, spec rig.Spec, binaries bool) (ScaleRun, error) {
	var p ScaleRun
	l, err := r.layout(name, spec)
	if err != nil {
		return p, err
	}
	d, err := l.Start()
	if err != nil {
		return p, err
	}
	defer d.Stop()
	wait, _, err := d.WaitVerdict(ctx, 5*time.Millisecond)
	if err != nil {
		return p, err
	}
	p.StartToVerdictMS = ms(wait)
	for range min(2, r.cfg.Sizes.ScaleRuns) { // warm-up
		if _, err := l.Refresh(ctx); err != nil {
			return p, err
		}
	}
	var wall, bin []float64
	noted := false
	var mf ModeFootprint
	err = r.sampled(d, r.cfg.Sizes.ScaleRuns, &mf, func() error {
		a, err := l.Refresh(ctx)
		if err != nil {
			return err
		}
		if a.State != "attested" && !noted {
			noted = true
			r.note("%s: state %s (not attested)", name, a.State)
		}
		wall = append(wall, ms(a.Wall))
		bin = append(bin, float64(a.CheckMS["binaries"]))
		return nil
	})
	if err != nil {
		return p, err
	}
	p.Peak = mf.DuringAttestations
	p.WallMS = stats.Summarize(wall)
	if binaries {
		b := stats.Summarize(bin)
		p.BinariesMS = &b
	}
	return p, d.Stop()
}
