package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
)

// row is one figure: a value per run, with the load average at the time.
type row struct {
	Figure, Setting string
	Unit            string    // printed after each value
	Values          []float64 // in Unit
	Loads           []float64 // 1-minute load average when each value was taken
	Goal            float64   // 0: a baseline, no goal
	Note            string
}

// result is "pass" when the worst run meets the goal.
func (r row) result() string {
	switch {
	case r.Goal == 0:
		return ""
	case len(r.Values) == 0:
		return "not measured"
	case len(r.Values) > 0 && slices.Max(r.Values) <= r.Goal:
		return "pass"
	default:
		return "**FAIL**"
	}
}

func (r row) markdown() string {
	goal := ""
	if r.Goal > 0 {
		goal = "≤ " + num(r.Goal) + " " + r.Unit
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %d | %s | %s | %s |", r.Figure, r.Setting,
		span(r.Values, r.Unit), num(median(r.Values)), len(r.Values), goal, r.result(), span(r.Loads, ""))
}

// span is "min–max unit" ("–" when nothing was measured).
func span(v []float64, unit string) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	s := num(lo)
	if num(hi) != s {
		s += "–" + num(hi)
	}
	return strings.TrimSpace(s + " " + unit)
}

// num prints three significant digits without an exponent.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 1 && v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func median(v []float64) float64 { return quantile(v, 0.5) }

// quantile interpolates between the two nearest of the sorted samples.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// writeResults writes the machine, the setting and the table.
func writeResults(w io.Writer, m machine, rows []row) error {
	var b strings.Builder
	b.WriteString("# Benchmark results\n\nWritten by `make bench` (bench/, docs/performance.md); do not edit.\n\n")
	fmt.Fprintf(&b, "- Machine: %s\n- Run: %s\n- Setting: %s\n\n", m.Describe, m.Run, m.Setting)
	b.WriteString("Each figure is min–max over its runs (n), median beside it; a goal is met when the worst run meets it. ")
	b.WriteString("Load is the 1-minute load average when the runs were taken.\n\n")
	b.WriteString("| figure | setting | min–max | median | n | goal | result | load |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	var notes []string
	for _, r := range rows {
		b.WriteString(r.markdown() + "\n")
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("- %s (%s): %s", r.Figure, r.Setting, r.Note))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// machine describes where and how the benchmark ran.
type machine struct {
	Describe, Run, Setting string
}

func describeMachine(cgroupVersion string) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	pid1, _ := os.ReadFile("/proc/1/comm")
	ssl, _ := exec.Command("openssl", "version").Output()
	// The quota's slice: how much of a period's quota one CPU takes at a
	// time (docs/deployment.md, "The CPU quota's slice").
	slice, err := os.ReadFile("/proc/sys/kernel/sched_cfs_bandwidth_slice_us")
	if err != nil {
		slice = []byte("unknown")
	}
	return fmt.Sprintf("%s, %d cores; Linux %s; cgroup %s; kernel.sched_cfs_bandwidth_slice_us %s; PID 1 is %s; %s; %s", model, runtime.NumCPU(),
		strings.TrimSpace(string(kernel)), cgroupVersion, strings.TrimSpace(string(slice)), strings.TrimSpace(string(pid1)),
		runtime.Version(), strings.TrimSpace(string(ssl)))
}

// loadavg is the 1-minute load average.
func loadavg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	var v float64
	_, _ = fmt.Sscan(string(b), &v)
	return v
}
