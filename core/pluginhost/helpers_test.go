package pluginhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(denySeccompEnv); v != "" {
		os.Exit(runDenyingSeccomp(v))
	}
	launch.Main()
	if os.Getenv(daemonEnv) != "" {
		os.Exit(runDaemon())
	}
	if sock := os.Getenv(intruderEnv); sock != "" {
		os.Exit(runIntruder(sock))
	}
	os.Exit(testbin.Main(m))
}

// launcher builds the dedicated launcher (cmd/attestor-launcher, C), as the
// daemon ships it, once per test process.
func launcher(t testing.TB) string {
	t.Helper()
	return testbin.Launcher(t)
}

// binary builds testplugins/<kind> once per test process.
func binary(t testing.TB, kind string) string {
	t.Helper()
	return testbin.Build(t, "./testplugins/"+kind, FilePrefix+kind)
}

// install installs testplugins/<kind> in dir as attestor-check-<name>.
func install(t testing.TB, dir, kind, name string) string {
	t.Helper()
	return testbin.Install(t, binary(t, kind), dir, FilePrefix+name)
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// logBuffer collects a host's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeClock is the host's clock in backoff tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a host under test over its own plugin directory.
type harness struct {
	t    *testing.T
	dir  string
	host *Host
	logs *logBuffer
}

// newHarness makes a host over a fresh plugin directory. The cleanup
// closes the host and checks no process runs from the directory.
//
// The harness keeps plugins resident (Options.Resident), so tests can watch
// one process across attestations; newOnDemandHarness tests the default.
func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	opts.Resident = true
	return newHarnessWith(t, opts)
}

// newOnDemandHarness is newHarness with opts as given (Resident false by
// default: plugins live for one turn).
func newOnDemandHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	return newHarnessWith(t, opts)
}

func newHarnessWith(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	for i := range opts.Plugins {
		if reflect.DeepEqual(opts.Plugins[i].Sandbox, sandbox.Rules{}) {
			opts.Plugins[i].Sandbox = scratchGrant(opts.Dir)
		}
	}
	return newStrictHarness(t, opts)
}

// scratchGrant is what the fault and lifecycle tests' plugins get by
// default: the temporary folder, where their started_file, pid_file and
// markers live, and executing the plugins in dir (orphan re-executes
// itself). The confinement tests use newStrictHarness instead, with the
// grants the daemon would give.
func scratchGrant(dir string) sandbox.Rules {
	return sandbox.Rules{ReadWrite: []string{"/tmp", os.TempDir()}, Exec: []string{dir}}
}

// newStrictHarness is newHarnessWith without the default grant: each
// plugin gets exactly its Spec.Sandbox. The launcher is the real
// runtime-attestor executable, built as shipped (no cgo, no race detector).
func newStrictHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Launcher == "" {
		opts.Launcher = launcher(t)
	}
	logs := &logBuffer{}
	opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "pluginhost", Output: logs, Level: hclog.Debug})
	hs := &harness{t: t, dir: opts.Dir, host: New(opts), logs: logs}
	t.Cleanup(func() {
		hs.host.Close()
		hs.noLeftovers()
		if t.Failed() {
			t.Logf("host log:\n%s", logs.String())
		}
	})
	return hs
}

func (hs *harness) start() {
	hs.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := hs.host.Start(ctx); err != nil {
		hs.t.Fatalf("Start: %v", err)
	}
}

func (hs *harness) measure() map[string]Result {
	hs.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return byName(hs.t, hs.host.Measure(ctx, nonce(hs.t)))
}

func nonce(t testing.TB) []byte {
	n := make([]byte, 32)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

func byName(t testing.TB, rs []Result) map[string]Result {
	t.Helper()
	out := map[string]Result{}
	if !slices.IsSortedFunc(rs, func(a, b Result) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("results are not sorted by name: %v", names(rs))
	}
	for _, r := range rs {
		out[r.Name] = r
	}
	return out
}

func names(rs []Result) []string {
	var n []string
	for _, r := range rs {
		n = append(n, r.Name)
	}
	return n
}

// pidOf returns the live process id of plugin name, 0 if none.
func (hs *harness) pidOf(name string) int {
	p := hs.host.plugin(name)
	if p == nil {
		return 0
	}
	if in := p.cur.Load(); in != nil {
		return in.pid
	}
	return 0
}

// leftovers returns the processes whose executable is in dir: plugins and
// their descendants (the orphan plugin re-executes itself).
func leftovers(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue // gone, a zombie or a kernel thread
		}
		if strings.HasPrefix(exe, dir+"/") {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// onlyLive checks that every process running from the plugin directory is
// a plugin the host reports as live.
func (hs *harness) onlyLive() {
	hs.t.Helper()
	want := hs.host.PIDs()
	got := waitFor(func() []int {
		got := leftovers(hs.dir)
		if slices.Equal(got, want) {
			return nil
		}
		return got
	})
	if got != nil {
		hs.t.Errorf("processes running from the plugin directory: %v (%s); the host's live plugins: %v", got, describePIDs(got), want)
	}
}

func (hs *harness) noLeftovers() {
	hs.t.Helper()
	if got := waitFor(func() []int { return leftovers(hs.dir) }); got != nil {
		hs.t.Errorf("processes left running from the plugin directory after Close: %v (%s)", got, describePIDs(got))
		for _, pid := range got {
			_ = syscallKill(pid)
		}
	}
}

// waitFor polls f until it returns nil, for at most 10s, and returns its
// last answer. The bound only keeps a failing test from hanging.
func waitFor(f func() []int) []int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := f()
		if got == nil || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describePIDs(pids []int) string {
	var parts []string
	for _, pid := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		parts = append(parts, fmt.Sprintf("%d=%q", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	return strings.Join(parts, ", ")
}

// proc identifies a process across pid reuse: its pid and start time.
type proc struct {
	pid   int
	start string
}

func procOf(t testing.TB, pid int) proc {
	t.Helper()
	st, ok := procStat(pid)
	if !ok {
		t.Fatalf("process %d is not running", pid)
	}
	return proc{pid: pid, start: st[19]}
}

// procStat returns the fields of /proc/<pid>/stat after the command, and
// false when the process is gone or a zombie.
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return nil, false
	}
	return f, true
}

func (p proc) alive() bool {
	st, ok := procStat(p.pid)
	return ok && st[19] == p.start
}

// waitGone waits until none of procs runs (a zombie counts as gone).
func waitGone(t testing.TB, what string, procs ...proc) {
	t.Helper()
	alive := waitFor(func() []int {
		var a []int
		for _, p := range procs {
			if p.alive() {
				a = append(a, p.pid)
			}
		}
		return a
	})
	if alive != nil {
		t.Errorf("%s: still running: %v (%s)", what, alive, describePIDs(alive))
	}
}

// wantGood checks a well-behaved plugin's result.
func wantGood(t testing.TB, rs map[string]Result, name string) {
	t.Helper()
	r, ok := rs[name]
	if !ok {
		t.Fatalf("no result for %s; results: %v", name, keys(rs))
	}
	if r.Fault != "" {
		t.Fatalf("%s: fault %s: %+v", name, r.Fault, r.Findings)
	}
	if r.Version != "1.0.0" || len(r.SHA256) != 64 || r.Path == "" || r.Started.IsZero() || r.Duration < 0 {
		t.Errorf("%s: result metadata %+v", name, r)
	}
	var n int
	if err := json.Unmarshal(r.Measurements["nonce_len"], &n); err != nil || n != 32 {
		t.Errorf("%s: nonce_len = %s (%v), want 32", name, r.Measurements["nonce_len"], err)
	}
	if len(r.Findings) != 1 || r.Findings[0].Code != name+".ok" || r.Findings[0].Severity != sdk.SeverityInfo {
		t.Errorf("%s: findings %+v, want one %s.ok info finding", name, r.Findings, name)
	}
}

// wantFault checks a result carries exactly the fault finding.
func wantFault(t testing.TB, rs map[string]Result, name, fault, code, msg string) Result {
	t.Helper()
	r, ok := rs[name]
	if !ok {
		t.Fatalf("no result for %s; results: %v", name, keys(rs))
	}
	if r.Fault != fault || r.Measurements != nil || len(r.Findings) != 1 {
		t.Fatalf("%s: fault %q, measurements %v, findings %+v; want fault %q with one finding", name, r.Fault, r.Measurements, r.Findings, fault)
	}
	f := r.Findings[0]
	if f.Code != code || f.Severity != DefaultSeverity(code) || f.Subject != name || !strings.Contains(f.Message, msg) {
		t.Fatalf("%s: finding %+v; want code %s, severity %s, subject %s, message containing %q", name, f, code, DefaultSeverity(code), name, msg)
	}
	return r
}

func keys(rs map[string]Result) []string {
	var k []string
	for n := range rs {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func lines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func cfg(kv ...any) []byte {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

// waitNoticed waits until the host has seen process p exit.
func (hs *harness) waitNoticed(p proc) {
	hs.t.Helper()
	if waitFor(func() []int {
		if slices.Contains(hs.host.PIDs(), p.pid) {
			return []int{p.pid}
		}
		return nil
	}) != nil {
		hs.t.Fatalf("the host still reports process %d live", p.pid)
	}
}
