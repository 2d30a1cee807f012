package suite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/secure-ai/runtime-attestor/bench/internal/bare"
	"github.com/secure-ai/runtime-attestor/bench/internal/proctree"
	"github.com/secure-ai/runtime-attestor/bench/internal/rig"
	"github.com/secure-ai/runtime-attestor/bench/internal/stats"
	"github.com/secure-ai/runtime-attestor/bench/internal/wrk"
)

// API is section 3.
type API struct {
	Threads     int      `json:"threads"`
	Connections int      `json:"connections"`
	DurationS   float64  `json:"duration_s"`
	Runs        []APIRun `json:"runs"`
}

// APIRun is one endpoint, one mode, one target, over every round.
type APIRun struct {
	Endpoint string `json:"endpoint"`
	// Mode is "idle" or "busy" (attestations running back to back on the
	// daemon meanwhile, whatever the target).
	Mode string `json:"mode"`
	// Target is "daemon" or "bare" (a plain net/http process serving the
	// bytes recorded from the daemon).
	Target     string        `json:"target"`
	Status     int           `json:"status"`
	BodyBytes  int           `json:"body_bytes"`
	RPS        stats.Summary `json:"rps"`
	P50MS      stats.Summary `json:"p50_ms"`
	P99MS      stats.Summary `json:"p99_ms"`
	Errors     wrk.Errors    `json:"errors"`
	AttestsPer []int         `json:"attestations_per_run,omitempty"`
	Raw        []wrk.Result  `json:"raw"`
}

func (r *runner) api(ctx context.Context, l *rig.Layout, d *rig.Daemon) (*API, proctree.Peak, error) {
	s := r.cfg.Sizes
	routes := bare.Routes{}
	for _, ep := range s.APIEndpoints {
		code, h, body, err := l.Get(ctx, ep)
		if err != nil {
			return nil, proctree.Peak{}, err
		}
		h = h.Clone()
		h.Del("Date")
		h.Del("Content-Length")
		routes[ep] = bare.Answer{Status: code, Header: h, Body: body}
	}
	routesFile := filepath.Join(r.tmp, "bare-routes.json")
	if err := bare.Save(routesFile, routes); err != nil {
		return nil, proctree.Peak{}, err
	}
	srv, err := bare.Start(ctx, r.cfg.Bins.Bench, "-serve-fixed", routesFile)
	if err != nil {
		return nil, proctree.Peak{}, err
	}
	defer srv.Stop()

	out := &API{Threads: s.APIThreads, Connections: s.APIConnections, DurationS: s.APIDuration.Seconds()}
	type key struct{ ep, mode, target string }
	runs := map[key]*APIRun{}
	var order []key
	sampler := proctree.Sample(d.PID(), s.SampleEvery)
	for round := range s.APIRounds {
		for _, mode := range []string{"idle", "busy"} {
			var count atomic.Int64
			stopBusy := func() error { return nil }
			if mode == "busy" {
				stopBusy = busyLoop(ctx, l, &count)
			}
			for _, ep := range s.APIEndpoints {
				for _, target := range []string{"daemon", "bare"} {
					base := "http://" + l.Addr
					if target == "bare" {
						base = "http://" + srv.Addr
					}
					n0 := count.Load()
					res, err := wrk.Run(ctx, r.tmp, wrk.Options{URL: base + ep, Threads: s.APIThreads, Connections: s.APIConnections, Duration: s.APIDuration})
					if err != nil {
						_ = stopBusy()
						_, _ = sampler.Stop()
						return nil, proctree.Peak{}, err
					}
					k := key{ep, mode, target}
					run := runs[k]
					if run == nil {
						run = &APIRun{Endpoint: ep, Mode: mode, Target: target, Status: routes[ep].Status, BodyBytes: len(routes[ep].Body)}
						runs[k] = run
						order = append(order, k)
					}
					run.Raw = append(run.Raw, res)
					if mode == "busy" {
						run.AttestsPer = append(run.AttestsPer, int(count.Load()-n0))
					}
					r.logf("  round %d %s %s %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms", round+1, mode, ep, target, res.RPS(), res.LatencyUS.P50/1000, res.LatencyUS.P99/1000)
				}
			}
			if err := stopBusy(); err != nil {
				_, _ = sampler.Stop()
				return nil, proctree.Peak{}, err
			}
		}
	}
	peak, err := sampler.Stop()
	if err != nil {
		return nil, proctree.Peak{}, err
	}
	for _, k := range order {
		run := runs[k]
		var rps, p50, p99 []float64
		for _, x := range run.Raw {
			rps = append(rps, x.RPS())
			p50 = append(p50, x.LatencyUS.P50/1000)
			p99 = append(p99, x.LatencyUS.P99/1000)
			run.Errors.Connect += x.Errors.Connect
			run.Errors.Read += x.Errors.Read
			run.Errors.Write += x.Errors.Write
			run.Errors.Status += x.Errors.Status
			run.Errors.Timeout += x.Errors.Timeout
		}
		run.RPS, run.P50MS, run.P99MS = stats.Summarize(rps), stats.Summarize(p50), stats.Summarize(p99)
		out.Runs = append(out.Runs, *run)
	}
	return out, peak, nil
}

// busyLoop refreshes back to back until the returned stop is called, and
// returns the first error a refresh met.
func busyLoop(ctx context.Context, l *rig.Layout, count *atomic.Int64) func() error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var firstErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := l.Refresh(ctx); err != nil {
				if ctx.Err() == nil {
					firstErr = err
				}
				return
			}
			count.Add(1)
		}
	}()
	return func() error {
		cancel()
		wg.Wait()
		if firstErr != nil {
			return fmt.Errorf("attestations while under load: %w", firstErr)
		}
		return nil
	}
}
