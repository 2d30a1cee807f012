package suite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/bench/internal/hashset"
	"github.com/secure-ai/runtime-attestor/bench/internal/stats"
	"github.com/secure-ai/runtime-attestor/plugins/binaries"
)

// Hashing is section 1.
type Hashing struct {
	Single      HashSet      `json:"single"`
	Many        HashSet      `json:"many"`
	Comparisons []Comparison `json:"comparisons"`
}

// HashSet is one workload and how each contender did on it.
type HashSet struct {
	Name       string       `json:"name"`
	Files      int          `json:"files"`
	Bytes      int64        `json:"bytes"`
	MinFile    int64        `json:"min_file_bytes"`
	MaxFile    int64        `json:"max_file_bytes"`
	Contenders []HashResult `json:"contenders"`
}

// HashResult is one contender on one workload.
type HashResult struct {
	Name    string        `json:"name"`
	Seconds stats.Summary `json:"seconds"`
	// MBps is the throughput at the median time (10^6 bytes per second);
	// MBpsMin and MBpsMax at the slowest and fastest run.
	MBps    float64   `json:"mbps"`
	MBpsMin float64   `json:"mbps_min"`
	MBpsMax float64   `json:"mbps_max"`
	Runs    []float64 `json:"runs_seconds"`
	// CPUSeconds is the CPU time (user+system, this process and its
	// children) of each run: unlike the wall time, it hardly depends on
	// what else the machine is doing.
	CPUSeconds stats.Summary `json:"cpu_seconds"`
	CPURuns    []float64     `json:"runs_cpu_seconds"`
}

// Comparison is the throughput ratio of contender A over contender B.
type Comparison struct {
	Set string `json:"set"`
	A   string `json:"a"`
	B   string `json:"b"`
	// Ratio is median time of B / median time of A (above 1: A is faster).
	Ratio float64 `json:"ratio"`
	// RoundMin and RoundMax bound the ratio within single interleaved
	// rounds.
	RoundMin float64 `json:"round_min"`
	RoundMax float64 `json:"round_max"`
	// CPURatio is B's median CPU time / A's: above 1, A needs less CPU for
	// the same work. It hardly depends on the machine's load.
	CPURatio float64 `json:"cpu_ratio"`
	Target   string  `json:"target,omitempty"`
	Met      *bool   `json:"met,omitempty"`
}

const hashSeed = 1

func (r *runner) hashing(ctx context.Context) (*Hashing, hashset.Set, error) {
	s := r.cfg.Sizes
	dir := filepath.Join(r.tmp, "hash")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, hashset.Set{}, err
	}
	need := s.SingleBytes + s.ManyBytes + 64<<20
	free, err := hashset.FreeBytes(dir)
	if err != nil {
		return nil, hashset.Set{}, err
	}
	if free < need {
		return nil, hashset.Set{}, fmt.Errorf("%s has %d MiB free, the hashing workloads need %d MiB: free some space or point BENCH_DIR at a bigger file system", dir, free>>20, need>>20)
	}
	r.logf("creating %d MiB in 1 file and %d MiB in %d files under %s (%d MiB free)", s.SingleBytes>>20, s.ManyBytes>>20, s.ManyFiles, dir, free>>20)
	single, err := hashset.Create(dir, "single", []int64{s.SingleBytes})
	if err != nil {
		return nil, hashset.Set{}, err
	}
	sizes, err := hashset.MixedSizes(s.ManyFiles, s.ManyBytes, hashSeed)
	if err != nil {
		return nil, hashset.Set{}, err
	}
	many, err := hashset.Create(dir, "many", sizes)
	if err != nil {
		return nil, hashset.Set{}, err
	}
	par := binaries.DefaultMaxParallel
	plugin := hashset.Plugin(par)
	h := &Hashing{}
	h.Single, err = r.hashRounds(ctx, single, "one large file", []hashset.Contender{plugin, hashset.OpenSSL(1, 0), hashset.Sha256sum()})
	if err != nil {
		return nil, hashset.Set{}, err
	}
	if err := os.Remove(single.Files[0].Path); err != nil {
		return nil, hashset.Set{}, err
	}
	one := hashset.Plugin(1)
	h.Many, err = r.hashRounds(ctx, many, "many files", []hashset.Contender{plugin, one, hashset.OpenSSL(1, 0), hashset.OpenSSL(par, 50), hashset.Sha256sum()})
	if err != nil {
		return nil, hashset.Set{}, err
	}
	yes := func(b bool) *bool { return &b }
	add := func(set *HashSet, a, b int, target string, met func(float64) bool) {
		c := compare(set, a, b)
		c.Target = target
		if met != nil {
			c.Met = yes(met(c.Ratio))
		}
		h.Comparisons = append(h.Comparisons, c)
	}
	add(&h.Single, 0, 1, ">= 0.95x openssl", func(x float64) bool { return x >= 0.95 })
	add(&h.Single, 0, 2, "", nil)
	add(&h.Many, 0, 2, "> 1x sequential openssl", func(x float64) bool { return x > 1 })
	add(&h.Many, 1, 2, "", nil)
	add(&h.Many, 0, 3, "", nil)
	add(&h.Many, 0, 4, "", nil)
	return h, many, nil
}

// hashRounds runs every contender once per round, in the same order each
// round, with the page cache warmed right before each run, and checks in
// the first round that all contenders agree on every digest.
func (r *runner) hashRounds(ctx context.Context, set hashset.Set, name string, cs []hashset.Contender) (HashSet, error) {
	hs := HashSet{Name: name, Files: len(set.Files), Bytes: set.Bytes(), MinFile: set.Files[0].Size, MaxFile: set.Files[0].Size}
	for _, f := range set.Files {
		hs.MinFile, hs.MaxFile = min(hs.MinFile, f.Size), max(hs.MaxFile, f.Size)
	}
	runs := make([][]float64, len(cs))
	cpus := make([][]float64, len(cs))
	var ref hashset.Digests
	for round := range r.cfg.Sizes.HashRounds {
		for i, c := range cs {
			if err := hashset.Warm(ctx, set); err != nil {
				return hs, err
			}
			c0 := cpuTime()
			t0 := time.Now()
			d, err := c.Hash(ctx, set)
			sec := time.Since(t0).Seconds()
			cpu := cpuTime() - c0
			if err != nil {
				return hs, fmt.Errorf("%s on %s: %w", c.Name, name, err)
			}
			if round == 0 {
				if ref == nil {
					ref = d
				} else if err := hashset.Check(set, ref, d); err != nil {
					return hs, fmt.Errorf("%s disagrees with %s on %s: %w", c.Name, cs[0].Name, name, err)
				}
			}
			runs[i] = append(runs[i], sec)
			cpus[i] = append(cpus[i], cpu)
			r.logf("  %s, %s: %.3f s (%.0f MB/s), CPU %.3f s", name, c.Name, sec, float64(hs.Bytes)/sec/1e6, cpu)
		}
	}
	for i, c := range cs {
		sum := stats.Summarize(runs[i])
		hs.Contenders = append(hs.Contenders, HashResult{
			Name: c.Name, Seconds: sum, Runs: runs[i],
			MBps:       float64(hs.Bytes) / sum.Median / 1e6,
			MBpsMin:    float64(hs.Bytes) / sum.Max / 1e6,
			MBpsMax:    float64(hs.Bytes) / sum.Min / 1e6,
			CPUSeconds: stats.Summarize(cpus[i]), CPURuns: cpus[i],
		})
	}
	return hs, nil
}

func compare(set *HashSet, a, b int) Comparison {
	ca, cb := set.Contenders[a], set.Contenders[b]
	c := Comparison{Set: set.Name, A: ca.Name, B: cb.Name, Ratio: stats.Ratio(cb.Seconds.Median, ca.Seconds.Median),
		CPURatio: stats.Ratio(cb.CPUSeconds.Median, ca.CPUSeconds.Median)}
	for i := range ca.Runs {
		x := stats.Ratio(cb.Runs[i], ca.Runs[i])
		if i == 0 {
			c.RoundMin, c.RoundMax = x, x
		}
		c.RoundMin, c.RoundMax = min(c.RoundMin, x), max(c.RoundMax, x)
	}
	return c
}

// cpuTime is the CPU time, in seconds, used so far by this process and by
// its children that have been waited for.
func cpuTime() float64 {
	var self, children unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &children)
	sec := func(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return sec(self.Utime) + sec(self.Stime) + sec(children.Utime) + sec(children.Stime)
}
