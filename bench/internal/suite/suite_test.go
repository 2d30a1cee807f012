package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/bench/internal/bare"
	"github.com/secure-ai/runtime-attestor/bench/internal/proctree"
	"github.com/secure-ai/runtime-attestor/bench/internal/rig"
	"github.com/secure-ai/runtime-attestor/bench/internal/wrk"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// TestMain also makes the test binary the bare HTTP baseline of section 3
// when started as `<test binary> -serve-fixed <routes file>`, as the
// benchmark starts attestor-bench; this saves a build.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "-serve-fixed" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := bare.Serve(ctx, os.Args[2], os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(testbin.Main(m))
}

// smokeSizes is every section at a toy size: the harness runs end to end in
// seconds. Its figures mean nothing and are never checked.
func smokeSizes() Sizes {
	return Sizes{
		SingleBytes: 5 << 20, ManyFiles: 6, ManyBytes: 1 << 20, HashRounds: 1,
		CycleRuns: 3, OnDemandRuns: 1, ColdRuns: 1,
		APIRounds: 1, APIDuration: time.Second, APIEndpoints: []string{"/api/v1/verify"},
		APIThreads: 1, APIConnections: 2,
		Idle: 200 * time.Millisecond, SampleEvery: 10 * time.Millisecond,
		ScaleFiles: []int{3}, ScalePlugins: []int{1, 2}, ScaleRuns: 1,
	}
}

// bins builds the daemon, the six built-in plugins and the light plugin,
// in parallel. The development policy's second service binary (attestctl)
// is any executable to hash: the daemon's copy serves.
func bins(t *testing.T) rig.Bins {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := rig.Bins{Plugins: dir, Bench: self}
	t.Run("build", func(t *testing.T) {
		build := func(name string, f func(t *testing.T)) {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f(t)
			})
		}
		build("daemon", func(t *testing.T) { b.Daemon = testbin.Build(t, "./cmd/runtime-attestor", "runtime-attestor") })
		build("light", func(t *testing.T) { b.Light = testbin.Build(t, "./testplugins/light", "attestor-check-light") })
		for _, p := range builtin.Names() {
			build(p, func(t *testing.T) { testbin.Plugin(t, dir, p) })
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	b.Attestctl = b.Daemon
	return b
}

func TestSmoke(t *testing.T) {
	sizes := smokeSizes()
	_, wrkErr := wrk.Path()
	if wrkErr != nil {
		sizes.APIRounds = 0
	}
	var progress bytes.Buffer
	t0 := time.Now()
	b := bins(t)
	t.Logf("built the executables in %s", time.Since(t0).Round(time.Millisecond))
	cfg := Config{Mode: "smoke", Root: testbin.Root(t), Bins: b, WorkDir: t.TempDir(), Sizes: sizes, Progress: &progress}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())

	h := rep.Hashing
	if h == nil || len(h.Single.Contenders) != 3 || len(h.Many.Contenders) != 5 || len(h.Comparisons) != 6 {
		t.Fatalf("hashing = %+v", h)
	}
	if h.Many.Files != 6 || h.Many.Bytes != 1<<20 || h.Single.Bytes != 5<<20 {
		t.Errorf("hashing workloads %+v / %+v", h.Many, h.Single)
	}
	for _, c := range append(h.Single.Contenders, h.Many.Contenders...) {
		if c.Seconds.N != 1 || c.MBps <= 0 {
			t.Errorf("contender %s: %+v", c.Name, c)
		}
	}
	for _, c := range h.Comparisons {
		if c.Target != "" && c.Met == nil {
			t.Errorf("comparison %s vs %s has a target and no verdict", c.A, c.B)
		}
	}

	c := rep.Cycle
	if c == nil || len(c.Plugins) != 6 || len(c.PerPlugin) != 6 || c.WarmDaemonMS.N != 3 || c.WarmInprocMS.N != 3 || c.ColdOnceMS.N != 1 {
		t.Fatalf("cycle = %+v", c)
	}
	if c.State != "attested" {
		t.Errorf("the development policy gave state %q, want attested", c.State)
	}
	if len(c.ColdFirstMS) != 6 {
		t.Errorf("cold first-attestation durations for %d plugins, want 6", len(c.ColdFirstMS))
	}

	f := rep.Footprint
	if f == nil || len(f.Modes) != 2 || f.StartToVerdictMS.N != 1 || f.IdleWindowS <= 0 {
		t.Fatalf("footprint = %+v", f)
	}
	od, res := f.Modes[0], f.Modes[1]
	if od.Mode != ModeOnDemand || res.Mode != ModeResident {
		t.Fatalf("footprint modes %q, %q", od.Mode, res.Mode)
	}
	// max_parallel_plugins is 2 in the development policy: on demand, the
	// daemon and at most two plugins; resident, the daemon and all six.
	if p := od.DuringAttestations; p.Procs < 2 || p.Procs > 3 || p.RSSBytes <= 0 || od.Idle.Procs != 1 || od.CPUPerAttestationMS <= 0 {
		t.Errorf("on-demand footprint = %+v", od)
	}
	if p := res.DuringAttestations; p.Procs != 7 || p.Threads < 7 || res.Idle.Procs != 7 {
		t.Errorf("resident footprint = %+v", res)
	}
	if c.OnDemandMS.N != 1 {
		t.Errorf("on-demand attestations: %+v", c.OnDemandMS)
	}

	if wrkErr == nil {
		a := rep.API
		if a == nil || len(a.Runs) != 4 {
			t.Fatalf("api = %+v", a)
		}
		for _, r := range a.Runs {
			if len(r.Raw) != 1 || r.Raw[0].Requests < 1 || r.Status != 200 || r.BodyBytes == 0 {
				t.Errorf("api run %s %s %s: %+v", r.Endpoint, r.Mode, r.Target, r)
			}
			if (r.Mode == "busy") != (len(r.AttestsPer) == 1) {
				t.Errorf("api run %s %s %s: attestations %v", r.Endpoint, r.Mode, r.Target, r.AttestsPer)
			}
		}
		if f.UnderLoad == nil || f.UnderLoad.Procs < 1 || f.UnderLoad.Procs > 3 {
			t.Errorf("footprint under load = %+v", f.UnderLoad)
		}
	}

	s := rep.Scaling
	if s == nil || len(s.Files) != 1 || len(s.Plugins) != 2 {
		t.Fatalf("scaling = %+v", s)
	}
	for _, p := range s.Files {
		if p.Bytes <= 0 || p.Resident.BinariesMS == nil || p.OnDemand.BinariesMS == nil || p.Resident.WallMS.N != 1 || p.Resident.Peak.Procs != 7 || p.OnDemand.Peak.Procs > 3 {
			t.Errorf("files point %d: %+v", p.N, p)
		}
	}
	for _, p := range s.Plugins {
		if p.Resident.Peak.Procs != p.N+1 || p.OnDemand.Peak.Procs > min(p.N, 2)+1 || p.Resident.BinariesMS != nil {
			t.Errorf("plugins point %d: %+v", p.N, p)
		}
	}

	out := t.TempDir()
	jsonPath, mdPath := filepath.Join(out, "results.json"), filepath.Join(out, "RESULTS.md")
	if err := rep.WriteFiles(jsonPath, mdPath, filepath.Join(out, "results.md.tmp")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if back.Machine.Cores < 1 || len(back.Table.Rows) != len(rep.Table.Rows) {
		t.Errorf("results.json round trip: %+v", back.Machine)
	}
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| # | measure | result |", "- Machine: ", "## Attestation per plugin", "## Scaling", "| 1a |", "| 2 |", "| 4 |", "| 5b |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	var text bytes.Buffer
	if err := rep.Text(&text); err != nil || !strings.Contains(text.String(), "measure") {
		t.Errorf("Text: %v\n%s", err, text.String())
	}
	if _, err := os.Stat(filepath.Join(out, "results.md.tmp")); !os.IsNotExist(err) {
		t.Error("the temporary Markdown file was left behind")
	}
	if wrkErr != nil {
		t.Skipf("everything but section 3 checked; section 3 needs wrk: %v", wrkErr)
	}
}

func TestSizes(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]Sizes{"full": FullSizes(), "quick": QuickSizes(), "smoke": smokeSizes()} {
		if err := s.Validate(); err != nil {
			t.Errorf("%s sizes: %v", name, err)
		}
	}
	bad := smokeSizes()
	bad.ScaleFiles = []int{7}
	bad.APIDuration = time.Millisecond
	bad.CycleRuns = 0
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad sizes accepted")
	}
	for _, want := range []string{"scale_files 7", "api_duration", "cycle_runs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in   string
		want int64
	}{{"128M", 128 << 20}, {"2G", 2 << 30}, {"4096", 4096}, {"1K", 1024}, {"infinity", 0}, {"", 0}, {"-5", 0}, {"9223372036854775807T", 0}, {"8589934592G", 0}} {
		if got := parseBytes(tc.in); got != tc.want {
			t.Errorf("Test %d: parseBytes(%q) = %d, want %d", i, tc.in, got, tc.want)
		}
	}
	l := readLimits("testdata")
	if l != (Limits{MemoryMaxBytes: 128 << 20, TasksMax: 96, CPUQuotaPct: 10}) {
		t.Fatalf("readLimits = %+v", l)
	}
	if got := l.verdict(proctree.Peak{RSSBytes: 100 << 20, Threads: 97}); got != "MemoryMax=128 MiB: within; TasksMax=96: OVER" {
		t.Errorf("verdict = %q", got)
	}
	if got := l.cpuNote(40); got != "CPUQuota=10%: at least 400 ms per attestation" {
		t.Errorf("cpuNote = %q", got)
	}
	if (readLimits(t.TempDir()) != Limits{}) || (Limits{}).verdict(proctree.Peak{}) != "" || (Limits{}).cpuNote(1) != "" {
		t.Error("no unit file should give no limits")
	}
}

func FuzzParseBytes(f *testing.F) {
	f.Add("128M")
	f.Add("infinity")
	f.Fuzz(func(t *testing.T, s string) {
		if v := parseBytes(s); v < 0 {
			t.Fatalf("parseBytes(%q) = %d", s, v)
		}
	})
}
