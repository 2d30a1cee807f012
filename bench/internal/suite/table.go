package suite

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/secure-ai/runtime-attestor/bench/internal/report"
	"github.com/secure-ai/runtime-attestor/bench/internal/stats"
)

func ratio(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", x)
}

func mbps(x float64) string { return fmt.Sprintf("%.0f MB/s", x) }

func msec(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f ms", x)
	case x >= 10:
		return fmt.Sprintf("%.1f ms", x)
	default:
		return fmt.Sprintf("%.2f ms", x)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// size is a file size in the largest unit that keeps it at least 1.
func size(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func rate(x float64) string {
	if x >= 1000 {
		return fmt.Sprintf("%.1fk req/s", x/1000)
	}
	return fmt.Sprintf("%.0f req/s", x)
}

func spreadMS(s stats.Summary) string {
	return fmt.Sprintf("%s–%s (p25–p75, n=%d)", strings.TrimSuffix(msec(s.P25), " ms"), msec(s.P75), s.N)
}

func rangeMS(s stats.Summary) string {
	return fmt.Sprintf("%s–%s (min–max, n=%d)", strings.TrimSuffix(msec(s.Min), " ms"), msec(s.Max), s.N)
}

func (rep *Report) hashResult(set *HashSet, name string) *HashResult {
	for i := range set.Contenders {
		if set.Contenders[i].Name == name {
			return &set.Contenders[i]
		}
	}
	return nil
}

// mainTable is the one table the benchmark prints and publishes.
func (rep *Report) mainTable() report.Table {
	t := report.Table{Columns: []string{"#", "measure", "result", "baseline", "ratio", "spread", "target"}}
	if h := rep.Hashing; h != nil {
		for _, c := range h.Comparisons {
			set := &h.Single
			sec := "1a"
			if c.Set == h.Many.Name {
				set, sec = &h.Many, "1b"
			}
			a, b := rep.hashResult(set, c.A), rep.hashResult(set, c.B)
			what := fmt.Sprintf("hash %s in %d file%s: %s", mib(set.Bytes), set.Files, plural(set.Files), c.A)
			target := c.Target
			if c.Met != nil {
				target += map[bool]string{true: ": met", false: ": MISSED"}[*c.Met]
			}
			t.Add(sec, what, mbps(a.MBps), c.B+": "+mbps(b.MBps), ratio(c.Ratio),
				fmt.Sprintf("ratio %s–%s per round; %.0f–%.0f vs %.0f–%.0f MB/s (min–max, n=%d); CPU time ratio %s", strings.TrimSuffix(ratio(c.RoundMin), "x"), ratio(c.RoundMax), a.MBpsMin, a.MBpsMax, b.MBpsMin, b.MBpsMax, a.Seconds.N, ratio(c.CPURatio)), target)
		}
	}
	if c := rep.Cycle; c != nil {
		n := len(c.Plugins)
		t.Add("2", fmt.Sprintf("attestation, %d plugins resident (warm), median: POST /api/v1/refresh", n), msec(c.WarmDaemonMS.Median),
			"same checks in process, no RPC: "+msec(c.WarmInprocMS.Median), ratio(c.Overhead), spreadMS(c.WarmDaemonMS)+" vs "+spreadMS(c.WarmInprocMS), "")
		t.Add("2", "attestation, resident, p99", msec(c.WarmDaemonMS.P99), "in process: "+msec(c.WarmInprocMS.P99), ratio(c.OverheadP99),
			fmt.Sprintf("max %s vs %s", msec(c.WarmDaemonMS.Max), msec(c.WarmInprocMS.Max)), "")
		t.Add("2", fmt.Sprintf("attestation, %d plugins on demand (policy default: started for each attestation), median", n), msec(c.OnDemandMS.Median),
			"in process: "+msec(c.WarmInprocMS.Median), ratio(stats.Ratio(c.OnDemandMS.Median, c.WarmInprocMS.Median)), spreadMS(c.OnDemandMS)+"; p99 "+msec(c.OnDemandMS.P99), "")
		t.Add("2", "first attestation after start, cold (runtime-attestor --once: start, attest, stop), median", msec(c.ColdOnceMS.Median), "", "", rangeMS(c.ColdOnceMS), "")
	}
	if a := rep.API; a != nil {
		type key struct{ ep, mode string }
		byKey := map[key]map[string]APIRun{}
		var order []key
		for _, run := range a.Runs {
			k := key{run.Endpoint, run.Mode}
			if byKey[k] == nil {
				byKey[k] = map[string]APIRun{}
				order = append(order, k)
			}
			byKey[k][run.Target] = run
		}
		for _, k := range order {
			d, b := byKey[k]["daemon"], byKey[k]["bare"]
			desc := func(x APIRun) string {
				return fmt.Sprintf("%s, p50 %s, p99 %s", rate(x.RPS.Median), msec(x.P50MS.Median), msec(x.P99MS.Median))
			}
			mode := "idle"
			if k.mode == "busy" {
				mode = "while attesting back to back"
			}
			t.Add("3", fmt.Sprintf("GET %s (%d), %s", k.ep, d.Status, mode), desc(d), "bare net/http: "+desc(b),
				ratio(stats.Ratio(d.RPS.Median, b.RPS.Median))+" req/s",
				fmt.Sprintf("%s–%s (min–max, n=%d)", strings.TrimSuffix(rate(d.RPS.Min), " req/s"), rate(d.RPS.Max), d.RPS.N), "")
		}
	}
	if f := rep.Footprint; f != nil {
		for _, m := range f.Modes {
			p := m.DuringAttestations
			t.Add("4", fmt.Sprintf("peak during attestations, plugins %s: RSS summed over the tree; threads; processes", m.Mode),
				fmt.Sprintf("%s; %d threads; %d processes", mib(p.RSSBytes), p.Threads, p.Procs), "", "", fmt.Sprintf("%d samples", p.Samples), rep.Limits.verdict(p))
		}
		if u := f.UnderLoad; u != nil {
			t.Add("4", "peak under API load (section 3, plugins on demand)", fmt.Sprintf("%s; %d threads; %d processes", mib(u.RSSBytes), u.Threads, u.Procs), "", "", fmt.Sprintf("%d samples", u.Samples), rep.Limits.verdict(*u))
		}
		for _, m := range f.Modes {
			t.Add("4", fmt.Sprintf("CPU time per attestation, plugins %s (whole tree, exited plugins included)", m.Mode), msec(m.CPUPerAttestationMS), "", "", "", rep.Limits.cpuNote(m.CPUPerAttestationMS))
		}
		for _, m := range f.Modes {
			t.Add("4", fmt.Sprintf("idle CPU over %.0f s, plugins %s (whole tree)", f.IdleWindowS, m.Mode),
				fmt.Sprintf("%.3f%% of one core (%.0f ms)", m.IdleCPUPercent, m.IdleCPUPercent/100*f.IdleWindowS*1000), "", "",
				fmt.Sprintf("at rest: %s, %d threads, %d processes", mib(m.Idle.RSSBytes), m.Idle.Threads, m.Idle.Procs), "")
		}
		t.Add("4", "start to first verdict (exec to /health not pending), median", msec(f.StartToVerdictMS.Median), "", "", rangeMS(f.StartToVerdictMS), "")
	}
	if s := rep.Scaling; s != nil {
		for _, mode := range modes() {
			for i, p := range s.Files {
				run, base := p.run(mode), s.Files[0].run(mode)
				t.Add("5a", fmt.Sprintf("%d service binaries (%s), 6 plugins %s: attestation median; peak RSS", p.N, mib(p.Bytes), mode),
					fmt.Sprintf("%s; %s", msec(run.WallMS.Median), mib(run.Peak.RSSBytes)),
					baseline(i, fmt.Sprintf("%d binaries", s.Files[0].N)), growth(i, run.WallMS.Median, base.WallMS.Median, run.Peak.RSSBytes, base.Peak.RSSBytes),
					spreadMS(run.WallMS), "")
			}
		}
		for _, mode := range modes() {
			for i, p := range s.Plugins {
				run, base := p.run(mode), s.Plugins[0].run(mode)
				t.Add("5b", fmt.Sprintf("%d light plugins %s: attestation median; peak RSS", p.N, mode),
					fmt.Sprintf("%s; %s", msec(run.WallMS.Median), mib(run.Peak.RSSBytes)),
					baseline(i, fmt.Sprintf("%d plugins", s.Plugins[0].N)), growth(i, run.WallMS.Median, base.WallMS.Median, run.Peak.RSSBytes, base.Peak.RSSBytes),
					spreadMS(run.WallMS), "")
			}
			if n := len(s.Plugins); n >= 2 {
				a, b := s.Plugins[0], s.Plugins[n-1]
				ra, rb := a.run(mode), b.run(mode)
				dt := (rb.WallMS.Median - ra.WallMS.Median) / float64(b.N-a.N)
				dm := float64(rb.Peak.RSSBytes-ra.Peak.RSSBytes) / float64(b.N-a.N)
				t.Add("5b", fmt.Sprintf("one more plugin, %s (slope from %d to %d plugins)", mode, a.N, b.N),
					fmt.Sprintf("%s per attestation; %+.1f MiB peak RSS", msec(dt), dm/(1<<20)), "", "", "", "")
			}
		}
	}
	return t
}

func baseline(i int, s string) string {
	if i == 0 {
		return ""
	}
	return s
}

func growth(i int, t, t0 float64, m, m0 int64) string {
	if i == 0 {
		return ""
	}
	return fmt.Sprintf("%s time, %s memory", ratio(t/t0), ratio(float64(m)/float64(m0)))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// MachineLine says where and when the run happened.
func (rep *Report) MachineLine() string {
	m := rep.Machine
	return fmt.Sprintf("%s; %s; load average %.2f / %.2f / %.2f at start, %.2f / %.2f / %.2f at end (1/5/15 min); %s mode, %.0f s",
		m.Summary(), m.Date, m.LoadAvg[0], m.LoadAvg[1], m.LoadAvg[2], rep.LoadAvgEnd[0], rep.LoadAvgEnd[1], rep.LoadAvgEnd[2], rep.Mode, rep.ElapsedS)
}

// Text writes the machine line and the main table.
func (rep *Report) Text(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "runtime-attestor benchmark: %s\n\n", rep.MachineLine()); err != nil {
		return err
	}
	t := rep.Table
	return t.Text(w)
}

// Markdown writes the report as a Markdown page: machine, main table, and
// the details behind it.
func (rep *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	m := rep.Machine
	b.WriteString("# runtime-attestor benchmark results\n\n")
	b.WriteString("Generated by `make bench` (bench/cmd/attestor-bench); see docs/performance.md for what each figure means. Do not edit by hand.\n\n")
	fmt.Fprintf(&b, "- Machine: %s, %d cores, %s memory; %s; Linux %s; %s\n", m.CPU, m.Cores, mib(m.MemoryBytes), m.OS, m.Kernel, m.Go)
	tools := make([]string, 0, len(m.Tools))
	for k, v := range m.Tools {
		if v != "" {
			tools = append(tools, v)
		} else {
			tools = append(tools, k+": not found")
		}
	}
	sort.Strings(tools)
	fmt.Fprintf(&b, "- Tools: %s\n", strings.Join(tools, "; "))
	fmt.Fprintf(&b, "- Run: %s, %s mode, %.0f s; load average (1/5/15 min) %.2f / %.2f / %.2f at start, %.2f / %.2f / %.2f at end\n",
		m.Date, rep.Mode, rep.ElapsedS, m.LoadAvg[0], m.LoadAvg[1], m.LoadAvg[2], rep.LoadAvgEnd[0], rep.LoadAvgEnd[1], rep.LoadAvgEnd[2])
	fmt.Fprintf(&b, "- Policy: the development policy (policy/examples/development.yaml.in) with: %s\n\n", strings.Join(rep.PolicyChanges, "; "))
	t := rep.Table
	if err := t.Markdown(&b); err != nil {
		return err
	}
	if h := rep.Hashing; h != nil {
		b.WriteString("\n## Hashing runs\n\n")
		ht := report.Table{Columns: []string{"workload", "contender", "MB/s at median time (min–max)", "median s", "CPU s (median)", "CPU s per GiB"}}
		for _, set := range []*HashSet{&h.Single, &h.Many} {
			for _, c := range set.Contenders {
				what := fmt.Sprintf("%s: %d files, %s (%s–%s each)", set.Name, set.Files, mib(set.Bytes), size(set.MinFile), size(set.MaxFile))
				if set.Files == 1 {
					what = fmt.Sprintf("%s: %s", set.Name, size(set.Bytes))
				}
				ht.Add(what, c.Name,
					fmt.Sprintf("%.0f (%.0f–%.0f)", c.MBps, c.MBpsMin, c.MBpsMax), fmt.Sprintf("%.3f", c.Seconds.Median),
					fmt.Sprintf("%.3f", c.CPUSeconds.Median), fmt.Sprintf("%.3f", c.CPUSeconds.Median/(float64(set.Bytes)/(1<<30))))
			}
		}
		if err := ht.Markdown(&b); err != nil {
			return err
		}
		b.WriteString("\nCPU time counts this process and its waited-for children (openssl, sha256sum); \"binaries\" runs in process.\n")
	}
	if c := rep.Cycle; c != nil && len(c.PerPlugin) > 0 {
		b.WriteString("\n## Attestation per plugin (median ms)\n\n")
		pt := report.Table{Columns: []string{"plugin", "resident: checks.<name>.duration_ms (RPC included, whole ms)", "on demand: the same, plugin start included", "in process", "first attestation after start"}}
		for _, p := range c.PerPlugin {
			pt.Add(p.Name, fmt.Sprintf("%.0f", p.ResidentMS), fmt.Sprintf("%.0f", p.OnDemandMS), fmt.Sprintf("%.2f", p.InprocMS), fmt.Sprintf("%.0f", c.ColdFirstMS[p.Name]))
		}
		if err := pt.Markdown(&b); err != nil {
			return err
		}
		fmt.Fprintf(&b, "\nState of the attestations: %s.\n", c.State)
	}
	if a := rep.API; a != nil {
		fmt.Fprintf(&b, "\n## API runs (wrk -t%d -c%d, %.0f s each)\n\n", a.Threads, a.Connections, a.DurationS)
		at := report.Table{Columns: []string{"endpoint", "mode", "target", "status, bytes", "req/s median (min–max)", "p50 ms", "p99 ms", "errors", "attestations per run"}}
		for _, r := range a.Runs {
			errs := r.Errors.Connect + r.Errors.Read + r.Errors.Write + r.Errors.Timeout
			at.Add(r.Endpoint, r.Mode, r.Target, fmt.Sprintf("%d, %d", r.Status, r.BodyBytes),
				fmt.Sprintf("%.0f (%.0f–%.0f)", r.RPS.Median, r.RPS.Min, r.RPS.Max),
				fmt.Sprintf("%.3f", r.P50MS.Median), fmt.Sprintf("%.3f", r.P99MS.Median),
				fmt.Sprint(errs), strings.Trim(fmt.Sprint(r.AttestsPer), "[]"))
		}
		if err := at.Markdown(&b); err != nil {
			return err
		}
		b.WriteString("\nerrors counts connect, read, write and timeout errors; a 503 from /api/v1/verify (state not attested) is an answer, not an error.\n")
	}
	if s := rep.Scaling; s != nil {
		b.WriteString("\n## Scaling\n\n")
		st := report.Table{Columns: []string{"case", "N", "plugins", "MiB hashed", "attestation median ms (p25–p75)", "binaries check ms", "peak RSS MiB", "peak threads", "peak processes", "start to first verdict ms"}}
		add := func(kind string, p ScalePoint) {
			for _, mode := range modes() {
				run := p.run(mode)
				hashed, bin := "", ""
				if kind == "service binaries" {
					hashed = fmt.Sprintf("%.0f", float64(p.Bytes)/(1<<20))
				}
				if run.BinariesMS != nil {
					bin = fmt.Sprintf("%.0f", run.BinariesMS.Median)
				}
				st.Add(kind, fmt.Sprint(p.N), mode, hashed,
					fmt.Sprintf("%.1f (%.1f–%.1f)", run.WallMS.Median, run.WallMS.P25, run.WallMS.P75), bin,
					fmt.Sprintf("%.0f", float64(run.Peak.RSSBytes)/(1<<20)), fmt.Sprint(run.Peak.Threads), fmt.Sprint(run.Peak.Procs), fmt.Sprintf("%.0f", run.StartToVerdictMS))
			}
		}
		for _, p := range s.Files {
			add("service binaries", p)
		}
		for _, p := range s.Plugins {
			add("light plugins", p)
		}
		if err := st.Markdown(&b); err != nil {
			return err
		}
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range rep.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
