package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// table holds the figures in the order they are printed.
type table struct {
	rows  []row
	index map[string]int
}

func newTable(cfg config) *table {
	t := &table{index: map[string]int{}}
	q, free := fmt.Sprintf("daemon, %d%% CPU quota", cfg.Quota), "daemon, no quota"
	qs := fmt.Sprintf("%d%% CPU quota", cfg.Quota)
	for _, d := range []struct {
		key, figure, setting, unit string
		goal                       float64
	}{
		{"ready/q", "start → first verdict (READY=1)", q, "s", 1},
		{"ready/f", "start → first verdict (READY=1)", free, "s", 0},
		{"readycpu/q", "CPU from start to READY=1", q, "ms", 0},
		{"readycold/q", "first start after an install → first verdict (caches empty)", q, "s", 0},
		{"readylog/q", "start → first verdict, a full live audit log (16 MiB)", q, "s", 1},
		{"readylogcpu/q", "CPU from start to READY=1, a full live audit log (16 MiB)", q, "ms", 0},
		{"acpu/q", "CPU per on-demand attestation, 6 built-ins", q, "ms", 100},
		{"acpu/f", "CPU per on-demand attestation, 6 built-ins", free, "ms", 0},
		{"awall/q", "wall per attestation", q, "s", 1},
		{"awall/f", "wall per attestation", free, "s", 0},
		{"scpu", "CPU per plugin start, both sides", "BenchmarkPluginStart, GOMAXPROCS=1, no quota", "ms", 8},
		{"swall", "wall per plugin start", "BenchmarkPluginStart, GOMAXPROCS=1, no quota", "ms", 0},
		{"p99busy/q", "/api/v1/verify p99 while attesting", q, "ms", 100},
		{"p50busy/q", "/api/v1/verify p50 while attesting", q, "ms", 0},
		{"maxbusy/q", "/api/v1/verify max while attesting", q, "ms", 0},
		{"nbusy/q", "/api/v1/verify requests answered while attesting, per run", q, "requests", 0},
		{"p99idle/q", "/api/v1/verify p99, idle", q, "ms", 0},
		{"reqcpu/q", "CPU per /api/v1/verify request, idle", q, "ms", 0},
		{"p99busy/f", "/api/v1/verify p99 while attesting", free, "ms", 0},
		{"maxbusy/f", "/api/v1/verify max while attesting", free, "ms", 0},
		{"p99bare/q", "bare net/http, same JSON: p99", "bare server, " + qs + ", GOMAXPROCS=1", "ms", 0},
		{"maxbare/q", "bare net/http, same JSON: max", "bare server, " + qs + ", GOMAXPROCS=1", "ms", 0},
		{"p99bare/f", "bare net/http, same JSON: p99", "bare server, no quota, GOMAXPROCS=1", "ms", 0},
		{"res", fmt.Sprintf("attestation, %d service binaries, resident", cfg.Files), q, "s", 0},
		{"ssl", "openssl dgst -sha256 of the same files, one process", "openssl, " + qs, "s", 0},
		{"resratio", "attestation ÷ hashing alone (wall)", qs, "x", 2},
		{"rescpu", "attestation ÷ hashing alone (CPU time)", qs, "x", 0},
		{"hash1", "binaries.HashFiles ÷ openssl dgst (wall), same files", "in process, GOMAXPROCS=1, no quota", "x", 0},
		{"hash2", "binaries.HashFiles ÷ openssl dgst (wall), same files", "in process, GOMAXPROCS=2, no quota", "x", 0},
		{"hashcpu1", "binaries.HashFiles ÷ openssl dgst (CPU time), same files", "in process, GOMAXPROCS=1, no quota", "x", 0},
		{"tasks/q", "peak tasks of the unit (pids.peak)", q + ", whole run", "tasks", 24},
		{"rss/q", "peak memory of the unit: RSS summed over its processes", q + ", whole run", "MiB", 64},
		{"anon/q", "peak anonymous memory of the unit, summed the same way", q + ", whole run", "MiB", 0},
		{"mem/q", "peak memory charged to the unit (memory.max_usage_in_bytes)", q + ", whole run", "MiB", 0},
		{"tasks/r", "peak tasks of the unit (pids.peak)", "resident run, " + qs + ", no tasks limit", "tasks", 0},
		{"rss/r", "peak memory of the unit: RSS summed over its processes", "resident run, " + qs + ", no tasks limit", "MiB", 0},
	} {
		t.index[d.key] = len(t.rows)
		t.rows = append(t.rows, row{Figure: d.figure, Setting: d.setting, Unit: d.unit, Goal: d.goal})
	}
	return t
}

// add records one value of the figure key, with the load average now.
func (t *table) add(key string, v float64) {
	r := &t.rows[t.index[key]]
	r.Values = append(r.Values, v)
	r.Loads = append(r.Loads, loadavg())
}

func (t *table) note(key, s string) { t.rows[t.index[key]].Note = s }

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// onDemand runs the daemon with the development policy in a group with
// the given quota (0: none): first verdict, quiet attestations, the API
// probe while idle and while attesting, the unit's peaks.
func (b *bench) onDemand(quota int) error {
	sfx := "/q"
	if quota == 0 {
		sfx = "/f"
	}
	cold := ""
	if quota > 0 {
		cold = "readycold/q"
	}
	d, err := b.start(quota, nil, cold)
	if err != nil {
		return err
	}
	defer d.g.remove()
	defer func() { _, _ = d.stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // the unit's TimeoutStartSec
	defer cancel()
	ready, cpu, err := d.waitReady(ctx)
	if err != nil {
		return err
	}
	b.t.add("ready"+sfx, ready.Seconds())
	if quota > 0 {
		b.t.add("readycpu/q", ms(cpu))
	}
	verify := "http://" + d.l.addr + "/api/v1/verify"
	if err := b.recordVerify(verify); err != nil {
		return err
	}
	if quota > 0 {
		if err := b.probeIdle(d, verify); err != nil {
			return err
		}
	}
	for range b.cfg.Attests {
		wall, cpu, err := d.refresh(ctx)
		if err != nil {
			return err
		}
		b.t.add("acpu"+sfx, ms(cpu))
		b.t.add("awall"+sfx, wall.Seconds())
	}
	lat, err := probeWhile(verify, func(answered func() int64) error { return b.attestFor(ctx, d, answered) })
	if err != nil {
		return err
	}
	b.t.add("p99busy"+sfx, ms(percentile(lat, 0.99)))
	b.t.add("maxbusy"+sfx, ms(percentile(lat, 1)))
	if quota > 0 {
		b.t.add("p50busy/q", ms(percentile(lat, 0.5)))
		b.t.add("nbusy/q", float64(len(lat)))
	}
	p, err := d.stop()
	if err != nil {
		return err
	}
	if quota > 0 {
		b.t.add("tasks/q", float64(p.Tasks))
		b.t.add("rss/q", float64(p.RSS)/(1<<20))
		b.t.add("anon/q", float64(p.Anon)/(1<<20))
		b.t.add("mem/q", float64(p.Charge)/(1<<20))
	}
	return nil
}

// probeIdle probes the idle daemon: latency, and the CPU one request costs
// the unit.
func (b *bench) probeIdle(d *daemon, verify string) error {
	cpu0, err := d.g.cpu()
	if err != nil {
		return err
	}
	lat, err := probeWhile(verify, func(func() int64) error { time.Sleep(b.window()); return nil })
	if err != nil {
		return err
	}
	cpu1, err := d.g.cpu()
	if err != nil {
		return err
	}
	if len(lat) == 0 {
		return errors.New("probe: no request answered")
	}
	b.t.add("p99idle/q", ms(percentile(lat, 0.99)))
	b.t.add("reqcpu/q", ms(cpu1-cpu0)/float64(len(lat)))
	return nil
}

// window is how long the idle daemon and the bare server are probed.
func (b *bench) window() time.Duration { return max(b.cfg.Busy/2, 100*time.Millisecond) }

// attestFor runs attestations back to back: at least one, for at least
// cfg.Busy, and until the probe has had cfg.Samples answers (a p99 of
// fewer is the largest one or two: 90 requests in 3 s under the quota).
func (b *bench) attestFor(ctx context.Context, d *daemon, answered func() int64) error {
	t0 := time.Now()
	for n := 0; n < 1 || time.Since(t0) < b.cfg.Busy || answered() < int64(b.cfg.Samples); n++ {
		if _, _, err := d.refresh(ctx); err != nil {
			return err
		}
	}
	return nil
}

func percentile(lat []time.Duration, q float64) time.Duration {
	v := make([]float64, len(lat))
	for i, d := range lat {
		v[i] = float64(d)
	}
	return time.Duration(quantile(v, q))
}

// start lays out an installation, starts the daemon once in a group of
// its own with the same limits until READY=1 and stops it, as the
// installed appliance's first start did (it learns the plugins'
// declarations and digests, docs/deployment.md), and starts it again in a
// new group: the start measured is a restart, as every boot after the
// first is. The first start's time to READY=1 is recorded under cold,
// when not "".
func (b *bench) start(quota int, services map[string]string, cold string) (*daemon, error) {
	l, err := b.installFresh(services)
	if err != nil {
		return nil, err
	}
	first, err := b.startIn(l, quota, services)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ready, _, err := first.waitReady(ctx)
	_, serr := first.stop()
	first.g.remove()
	if err = errors.Join(err, serr); err != nil {
		return nil, fmt.Errorf("first start: %w", err)
	}
	if cold != "" {
		b.t.add(cold, ready.Seconds())
	}
	return b.startIn(l, quota, services)
}

// installFresh lays out an installation and waits out the daemon's racy
// margin (pluginhost: a file's digest is remembered only once its ctime
// is a second old), as an installation's files are by its first boot.
func (b *bench) installFresh(services map[string]string) (*layout, error) {
	b.n++
	l, err := install(b.cfg.bins, filepath.Join(b.work, fmt.Sprintf("d%d", b.n)), b.runtime, services)
	if err != nil {
		return nil, err
	}
	time.Sleep(1100 * time.Millisecond)
	return l, nil
}

// startIn starts the daemon of l in a new group.
func (b *bench) startIn(l *layout, quota int, services map[string]string) (*daemon, error) {
	// Six resident plugins need more tasks than TasksMax allows (their Go
	// runtimes cannot start threads and crash): the resident run measures
	// time, and its peak tasks without that limit.
	tasks := unitLimits.TasksMax
	if services != nil {
		tasks = -1
	}
	g, err := b.group(quota, tasks)
	if err != nil {
		return nil, err
	}
	d, err := startDaemon(b.cfg.Daemon, l, g)
	if err != nil {
		g.remove()
	}
	return d, err
}

// recordVerify keeps the daemon's answer to url for the bare server.
func (b *bench) recordVerify(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d, %v", url, resp.StatusCode, err)
	}
	return os.WriteFile(filepath.Join(b.work, "verify.json"), body, 0o600)
}

// bare probes a bare net/http server answering the daemon's own
// /api/v1/verify body, in a group with the given quota.
func (b *bench) bare(quota int) error {
	body := filepath.Join(b.work, "verify.json")
	g, err := b.group(quota, unitLimits.TasksMax)
	if err != nil {
		return err
	}
	defer g.remove()
	lat, err := bareLatency(b.cfg.Self, body, g, b.window())
	if err != nil {
		return err
	}
	if quota > 0 {
		b.t.add("p99bare/q", ms(percentile(lat, 0.99)))
		b.t.add("maxbare/q", ms(percentile(lat, 1)))
	} else {
		b.t.add("p99bare/f", ms(percentile(lat, 0.99)))
	}
	return nil
}

// resident attests cfg.Files service binaries with resident plugins under
// the quota, each attestation next to openssl hashing the same files in a
// group of its own with the same quota; then the plugin's hashing code in
// process against openssl, without quota.
func (b *bench) resident() error {
	services, paths, total, err := serviceFiles(filepath.Join(b.work, "services"), b.cfg.Files)
	if err != nil {
		return err
	}
	b.t.note("res", fmt.Sprintf("%d files of 4–256 KiB (log-uniform), %.0f MiB in all", len(paths), float64(total)/(1<<20)))
	d, err := b.start(b.cfg.Quota, services, "")
	if err != nil {
		return err
	}
	defer d.g.remove()
	defer func() { _, _ = d.stop() }()
	ssl, err := b.group(b.cfg.Quota, unitLimits.TasksMax)
	if err != nil {
		return err
	}
	defer ssl.remove()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, _, err := d.waitReady(ctx); err != nil {
		return err
	}
	for range b.cfg.Runs {
		wall, cpu, err := d.refresh(ctx)
		if err != nil {
			return err
		}
		swall, scpu, err := openssl(paths, ssl)
		if err != nil {
			return err
		}
		b.t.add("res", wall.Seconds())
		b.t.add("ssl", swall.Seconds())
		b.t.add("resratio", float64(wall)/float64(swall))
		b.t.add("rescpu", float64(cpu)/float64(scpu))
	}
	p, err := d.stop()
	if err != nil {
		return err
	}
	b.t.add("tasks/r", float64(p.Tasks))
	b.t.add("rss/r", float64(p.RSS)/(1<<20))
	return b.hashRatios(paths)
}

// hashRatios compares the binaries plugin's hashing, in process, with
// openssl on the same files, interleaved, at GOMAXPROCS 1 and 2, in at
// least five rounds (each takes a fraction of a second).
func (b *bench) hashRatios(paths []string) error {
	for range max(5, b.cfg.Runs) {
		swall, scpu, err := openssl(paths, nil)
		if err != nil {
			return err
		}
		for _, procs := range []int{1, 2} {
			wall, cpu, err := hashInProcess(paths, procs)
			if err != nil {
				return err
			}
			b.t.add(fmt.Sprintf("hash%d", procs), float64(wall)/float64(swall))
			if procs == 1 {
				b.t.add("hashcpu1", float64(cpu)/float64(scpu))
			}
		}
	}
	return nil
}

// pluginStart runs core/pluginhost's BenchmarkPluginStart (one on-demand
// turn of the light plugin: verify, launch, handshake, configure, measure,
// stop), -count cfg.Runs, and reads its ns/op and cpu-ms/op.
func (b *bench) pluginStart() error {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkPluginStart$", "-benchtime", "20x",
		"-count", strconv.Itoa(b.cfg.Runs), "./core/pluginhost/")
	cmd.Dir = b.cfg.Root
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, b.log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test -bench BenchmarkPluginStart: %w\n%s", err, out.String())
	}
	n, err := parseBench(out.String(), func(wallNS, cpuMS float64) {
		b.t.add("swall", wallNS/1e6)
		b.t.add("scpu", cpuMS)
	})
	if err == nil && n == 0 {
		err = fmt.Errorf("go test -bench BenchmarkPluginStart printed no result:\n%s", out.String())
	}
	return err
}

// parseBench calls f with ns/op and cpu-ms/op of every Benchmark line.
func parseBench(out string, f func(wallNS, cpuMS float64)) (int, error) {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		metric := map[string]float64{}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return n, fmt.Errorf("benchmark line %q: %w", sc.Text(), err)
			}
			metric[fields[i+1]] = v
		}
		wall, ok1 := metric["ns/op"]
		cpu, ok2 := metric["cpu-ms/op"]
		if !ok1 || !ok2 {
			return n, fmt.Errorf("benchmark line %q: want ns/op and cpu-ms/op", sc.Text())
		}
		f(wall, cpu)
		n++
	}
	return n, sc.Err()
}
