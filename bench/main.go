// Command attestor-bench is `make bench`: it runs the real daemon with the
// built-in plugins and the development policy (plugins on demand) under the
// unit's own limits — a cgroup with a 10% quota of one CPU, MemoryMax=128M,
// TasksMax=32, and GOMAXPROCS=1 — beside baselines measured in the same run
// (`openssl dgst -sha256`, a bare net/http server, the daemon without the
// quota), and writes bench/RESULTS.md. See docs/performance.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// bins are the executables of `make build` and the repository root
// (policy template, example policies).
type bins struct{ Root, Daemon, Attestctl, Plugins string }

type config struct {
	bins
	Self        string        // this executable: the bare HTTP baseline
	Runs        int           // daemon runs per setting
	Attests     int           // quiet attestations per run
	Files       int           // service binaries of the resident run
	Busy        time.Duration // least time of attestations under the probe, per run
	Samples     int           // least requests the probe has answered while attesting, per run
	Quota       int           // percent of one CPU
	PluginStart bool          // run core/pluginhost's BenchmarkPluginStart
	Out         string        // RESULTS.md
	Work        string        // parent of the temporary folder
}

// unitLimits are deploy/secure-ai-runtime-attestor.service's.
var unitLimits = limits{CPUPercent: 10, MemoryMax: 128 << 20, TasksMax: 32}

// The main goroutine keeps the main thread: no other goroutine runs on
// it, so the thread that forks into a v1 group (group.start) is never the
// one that owns the process's memory.
func init() { runtime.LockOSThread() }

func main() {
	if body := os.Getenv(serveEnv); body != "" {
		if err := serveBare(body); err != nil {
			fmt.Fprintln(os.Stderr, "attestor-bench:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	t0 := time.Now()
	load0 := loadavg()
	t, version, err := measure(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "attestor-bench:", err)
		return 1
	}
	m := machine{
		Describe: describeMachine(version),
		Run: fmt.Sprintf("%s, %d runs per setting, %.0f s; load average %.2f at the start, %.2f at the end",
			t0.UTC().Format(time.RFC3339), cfg.Runs, time.Since(t0).Seconds(), load0, loadavg()),
		Setting: fmt.Sprintf("daemon and plugins in one cgroup: %d%% of one CPU (quota per 100 ms period), "+
			"memory %d MiB, %d tasks, GOMAXPROCS=1; the development policy (plugins on demand) with "+
			"refresh_interval 1h and a free loopback port; RUNTIME_DIRECTORY on a tmpfs, as the unit's; /api/v1/verify probed every %s",
			cfg.Quota, unitLimits.MemoryMax>>20, unitLimits.TasksMax, probeEvery),
	}
	f, err := os.Create(cfg.Out)
	if err == nil {
		err = errors.Join(writeResults(io.MultiWriter(f, stdout), m, t.rows), f.Close())
	}
	if err != nil {
		fmt.Fprintln(stderr, "attestor-bench:", err)
		return 1
	}
	fmt.Fprintln(stderr, "attestor-bench: wrote", cfg.Out)
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("attestor-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	bin := fs.String("bin", "bin", "`folder` of make build: runtime-attestor, attestctl, plugins/attestor-check-*")
	fs.StringVar(&cfg.Root, "root", ".", "repository `root`")
	fs.IntVar(&cfg.Runs, "runs", 3, "daemon `runs` per setting")
	fs.IntVar(&cfg.Attests, "attestations", 3, "attestations timed per run, with nothing else asked of the daemon")
	fs.IntVar(&cfg.Files, "files", 2048, "service binaries of the resident run")
	fs.DurationVar(&cfg.Busy, "busy", 3*time.Second, "least time per run of attestations back to back under the API probe")
	fs.IntVar(&cfg.Samples, "samples", 500, "least requests answered per run by the API probe while attesting: its p99")
	fs.IntVar(&cfg.Quota, "cpu-quota", unitLimits.CPUPercent, "CPU quota in `percent` of one CPU (the unit's CPUQuota=)")
	fs.BoolVar(&cfg.PluginStart, "plugin-start", true, "measure plugin starts with go test -bench BenchmarkPluginStart ./core/pluginhost")
	fs.StringVar(&cfg.Out, "o", "bench/RESULTS.md", "results `file`")
	fs.StringVar(&cfg.Work, "work", "", "`folder` for the temporary files (default $TMPDIR)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 || cfg.Runs < 1 || cfg.Attests < 1 || cfg.Files < 1 || cfg.Samples < 1 || cfg.Quota < 1 {
		fmt.Fprintln(stderr, "attestor-bench: want no arguments and positive -runs, -attestations, -files, -samples, -cpu-quota")
		return cfg, errors.New("usage")
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	cfg.Root = abs(cfg.Root)
	cfg.Daemon = abs(filepath.Join(*bin, "runtime-attestor"))
	cfg.Attestctl = abs(filepath.Join(*bin, "attestctl"))
	cfg.Plugins = abs(filepath.Join(*bin, "plugins"))
	self, err := os.Executable()
	cfg.Self = self
	return cfg, err
}

// measure runs every setting and returns the table and the cgroup version.
func measure(cfg config, progress io.Writer) (*table, string, error) {
	// Run once before any group exists: Go probes pidfd support with a
	// child of its own at a process's first exec, which would otherwise
	// be born in the first group.
	if err := exec.Command("openssl", "version").Run(); err != nil {
		return nil, "", fmt.Errorf("openssl is the hashing baseline: %w (make deps)", err)
	}
	work, err := os.MkdirTemp(cfg.Work, "attestor-bench-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(work)
	rt, rtFS, err := runtimeBase(work)
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(rt)
	b := &bench{cfg: cfg, work: work, runtime: rt, t: newTable(cfg), log: progress}
	fmt.Fprintf(progress, "attestor-bench: runtime folders on %s\n", rtFS)
	version, err := b.checkCgroups()
	if err != nil {
		return nil, "", err
	}
	for i := range cfg.Runs {
		fmt.Fprintf(progress, "attestor-bench: round %d of %d, load %.2f\n", i+1, cfg.Runs, loadavg())
		for _, quota := range []int{cfg.Quota, 0} {
			if err := b.onDemand(quota); err != nil {
				return nil, "", err
			}
			if err := b.bare(quota); err != nil {
				return nil, "", err
			}
		}
	}
	fmt.Fprintf(progress, "attestor-bench: %d service binaries, load %.2f\n", cfg.Files, loadavg())
	if err := b.resident(); err != nil {
		return nil, "", err
	}
	fmt.Fprintf(progress, "attestor-bench: restarts with a full audit log, load %.2f\n", loadavg())
	if err := b.longAudit(); err != nil {
		return nil, "", err
	}
	if cfg.PluginStart {
		fmt.Fprintf(progress, "attestor-bench: plugin start, load %.2f\n", loadavg())
		if err := b.pluginStart(); err != nil {
			return nil, "", err
		}
	}
	return b.t, version, nil
}

// bench is one run of the benchmark.
type bench struct {
	cfg     config
	work    string
	runtime string // base of the daemons' runtime folders (runtimeBase)
	t       *table
	log     io.Writer
	n       int // groups and folders made so far
}

// group creates a fresh group with the unit's memory limit, the given
// quota (0: none) and tasks limit (-1: none).
func (b *bench) group(quota, tasksMax int) (*group, error) {
	b.n++
	lim := unitLimits
	lim.CPUPercent, lim.TasksMax = quota, tasksMax
	return newGroup(fmt.Sprintf("attestor-bench-%d-%d", os.Getpid(), b.n), lim)
}

func (b *bench) checkCgroups() (string, error) {
	g, err := b.group(b.cfg.Quota, unitLimits.TasksMax)
	if err != nil {
		return "", fmt.Errorf("make bench measures under the unit's limits and creates cgroups for them "+
			"(as root, with systemd not owning the hierarchy): %w", err)
	}
	defer g.remove()
	if g.v2 {
		return "v2", nil
	}
	return "v1 (" + strings.Join([]string{"cpu", "cpuacct", "memory", "pids"}, ", ") + " hierarchies)", nil
}
