package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// TestMain removes the executables testbin built. It is the package's only
// TestMain: every file of the suite shares it.
func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// stressEnv set to 1 selects the long variants (make stress).
const stressEnv = "ATTESTOR_STRESS"

// reportEnv names a file to which every test appends its figures, one line
// each (scripts/stress.sh prints it).
const reportEnv = "ATTESTOR_REPORT"

// stallLimit is the generous per-request limit of the load generator: a read
// that takes longer counts as a stall (an error), never as a timing result.
const stallLimit = 10 * time.Second

func stress() bool { return os.Getenv(stressEnv) == "1" }

// reps returns short in the fast suite and long under ATTESTOR_STRESS=1.
func reps(short, long int) int {
	if stress() {
		return long
	}
	return short
}

var reportMu sync.Mutex

// report logs a figure and appends it to $ATTESTOR_REPORT.
func report(t testing.TB, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("%s: %s", t.Name(), fmt.Sprintf(format, args...))
	t.Log(line)
	path := os.Getenv(reportEnv)
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Errorf("report: %v", err)
	}
}

// newRand returns a generator seeded from the clock; the seed is logged so a
// failing run can be replayed (ATTESTOR_SEED).
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ATTESTOR_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ATTESTOR_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("random seed %d (ATTESTOR_SEED=%d replays it)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Bundle as far as the suite reads it.
type bundleDoc struct {
	Sequence uint64              `json:"sequence"`
	State    string              `json:"state"`
	Score    int                 `json:"score"`
	Failures []failureDoc        `json:"failures"`
	Checks   map[string]checkDoc `json:"checks"`
	raw      []byte
}

type findingDoc struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Subject  string `json:"subject"`
}

type failureDoc struct {
	findingDoc
	Plugin string `json:"plugin"`
}

type checkDoc struct {
	Name         string          `json:"name"`
	DurationMS   int64           `json:"duration_ms"`
	Measurements json.RawMessage `json:"measurements"`
	Findings     []findingDoc    `json:"findings"`
}

// hasCore reports whether a core.* finding is in the check.
func (c checkDoc) hasCore() bool {
	for _, f := range c.Findings {
		if strings.HasPrefix(f.Code, "core.") {
			return true
		}
	}
	return false
}

// coreFindings returns the engine's own findings (plugin "core").
func (b bundleDoc) coreFindings() []failureDoc {
	var out []failureDoc
	for _, f := range b.Failures {
		if f.Plugin == "core" {
			out = append(out, f)
		}
	}
	return out
}

// Default weights and thresholds of the development policy (docs/policy.md).
var weights = map[string]int{"info": 0, "low": 1, "medium": 5, "high": 20, "critical": 100}

const (
	thresholdDegraded = 5
	thresholdFailed   = 100
)

// expectScore recomputes the score of b from its findings with the policy's
// weights, and the state it gives (before latching).
func expectScore(b bundleDoc) (int, string) {
	score, critical := 0, false
	add := func(f findingDoc) {
		score += weights[f.Severity]
		critical = critical || f.Severity == "critical"
	}
	for _, c := range b.Checks {
		for _, f := range c.Findings {
			add(f)
		}
	}
	for _, f := range b.coreFindings() {
		add(f.findingDoc)
	}
	switch {
	case critical || score >= thresholdFailed:
		return score, "failed"
	case score >= thresholdDegraded:
		return score, "degraded"
	}
	return score, "attested"
}

// parseAttest decodes an /api/v1/attest or /api/v1/refresh body and checks
// the bundle's signature with the key.
func parseAttest(t testing.TB, body, key []byte) bundleDoc {
	t.Helper()
	var r struct {
		State  string          `json:"state"`
		Bundle json.RawMessage `json:"bundle"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decode attest body: %v: %.300s", err, body)
	}
	var b bundleDoc
	if err := json.Unmarshal(r.Bundle, &b); err != nil {
		t.Fatalf("decode bundle: %v: %.300s", err, r.Bundle)
	}
	if err := bundle.Verify(r.Bundle, key); err != nil {
		t.Fatalf("bundle %d does not verify: %v", b.Sequence, err)
	}
	if r.State != b.State {
		t.Fatalf("response state %q, bundle state %q", r.State, b.State)
	}
	b.raw = r.Bundle
	return b
}

func readKey(t testing.TB, env *daemontest.Env) []byte {
	t.Helper()
	key, err := os.ReadFile(env.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// refresh asks for an attestation with the token and returns its bundle.
func refresh(t testing.TB, env *daemontest.Env, key []byte) bundleDoc {
	t.Helper()
	code, body, err := env.Do(http.MethodPost, "/api/v1/refresh", env.Token)
	if err != nil || code != http.StatusOK {
		t.Fatalf("refresh = %d %.300s (%v)", code, body, err)
	}
	return parseAttest(t, body, key)
}

// refreshUntil refreshes until cond holds on the bundle (a refresh may join
// an attestation that began before the change the caller waits for).
func refreshUntil(t testing.TB, env *daemontest.Env, key []byte, what string, cond func(bundleDoc) bool) bundleDoc {
	t.Helper()
	var b bundleDoc
	for range 8 {
		b = refresh(t, env, key)
		if cond(b) {
			return b
		}
	}
	t.Fatalf("no bundle with %s after 8 refreshes; last: %s", what, b.raw)
	return b
}

// Load generator: workers that read /health, /api/v1/verify and
// /api/v1/attest in a loop over keep-alive connections and record every
// latency and every error.

type loadGen struct {
	start  time.Time
	env    *daemontest.Env
	key    []byte
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	latencies []time.Duration
	errors    []string
	badState  []string
}

type loadStats struct {
	Requests      int
	PerSecond     float64
	Errors        int
	ErrorSamples  []string
	P50, P99, Max time.Duration
}

func (s loadStats) String() string {
	return fmt.Sprintf("%d reads (%.0f/s), %d errors, latency p50 %s p99 %s max %s",
		s.Requests, s.PerSecond, s.Errors, s.P50.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond), s.Max.Round(10*time.Microsecond))
}

var loadPaths = []string{"/health", "/api/v1/verify", "/api/v1/attest"}

// loadPause is what each load worker waits between two reads.
const loadPause = 2 * time.Millisecond

func startLoad(t testing.TB, env *daemontest.Env, workers int) *loadGen {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadGen{start: time.Now(), env: env, key: readKey(t, env), cancel: cancel}
	client := &http.Client{
		Timeout:   stallLimit,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true},
	}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				l.one(ctx, client, loadPaths[i%len(loadPaths)])
				// A short pause keeps a few scenarios side by side from
				// starving the daemons of CPU on a 2-core machine.
				time.Sleep(loadPause)
			}
		}()
	}
	t.Cleanup(func() { l.stop() })
	return l
}

// one sends one read and checks its answer is well formed: /health 200,
// /api/v1/verify 200 exactly when attested, /api/v1/attest a bundle that
// verifies with the key.
func (l *loadGen) one(ctx context.Context, client *http.Client, path string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.env.URL(path), nil)
	start := time.Now()
	resp, err := client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	d := time.Since(start)
	if ctx.Err() != nil {
		return // stopped mid-request: not the daemon's doing
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errors = append(l.errors, fmt.Sprintf("GET %s after %s: %v", path, d.Round(time.Millisecond), err))
		return
	}
	l.latencies = append(l.latencies, d)
	if msg := checkRead(path, resp.StatusCode, body, l.key); msg != "" {
		l.badState = append(l.badState, msg)
	}
}

func checkRead(path string, code int, body, key []byte) string {
	var r struct {
		State    string          `json:"state"`
		Verified *bool           `json:"verified"`
		Bundle   json.RawMessage `json:"bundle"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Sprintf("GET %s: %d, body not JSON: %.200s", path, code, body)
	}
	switch path {
	case "/health":
		if code != http.StatusOK || r.State == "" {
			return fmt.Sprintf("GET /health = %d %.200s", code, body)
		}
	case "/api/v1/verify":
		want := http.StatusServiceUnavailable
		if r.State == "attested" {
			want = http.StatusOK
		}
		if code != want || r.Verified == nil || *r.Verified != (code == http.StatusOK) {
			return fmt.Sprintf("GET /api/v1/verify = %d %.200s", code, body)
		}
	case "/api/v1/attest":
		if code != http.StatusOK {
			return fmt.Sprintf("GET /api/v1/attest = %d %.200s", code, body)
		}
		if r.State != "pending" {
			if err := bundle.Verify(r.Bundle, key); err != nil {
				return fmt.Sprintf("GET /api/v1/attest: bundle does not verify: %v", err)
			}
		}
	}
	return ""
}

// stop ends the load and returns its figures; the test fails on any
// transport error, stall or malformed answer.
func (l *loadGen) stop() loadStats {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	lat := slices.Clone(l.latencies)
	slices.Sort(lat)
	s := loadStats{Requests: len(lat) + len(l.errors), Errors: len(l.errors) + len(l.badState)}
	s.PerSecond = float64(s.Requests) / time.Since(l.start).Seconds()
	if n := len(lat); n > 0 {
		s.P50, s.P99, s.Max = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	}
	s.ErrorSamples = append(s.ErrorSamples, l.errors[:min(5, len(l.errors))]...)
	s.ErrorSamples = append(s.ErrorSamples, l.badState[:min(5, len(l.badState))]...)
	return s
}

// Process inspection.

type resources struct {
	FDs        int
	RSSKiB     int
	Threads    int
	Goroutines int
}

func (r resources) String() string {
	return fmt.Sprintf("%d fds, %d KiB RSS, %d threads, %d goroutines", r.FDs, r.RSSKiB, r.Threads, r.Goroutines)
}

// sample reads the daemon's open descriptors, resident memory and threads
// from /proc and its goroutines from /metrics.
func sample(t testing.TB, env *daemontest.Env, pid int) resources {
	t.Helper()
	var r resources
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("daemon fds: %v", err)
	}
	r.FDs = len(fds)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("daemon status: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.Atoi(f[0])
		switch k {
		case "VmRSS":
			r.RSSKiB = n
		case "Threads":
			r.Threads = n
		}
	}
	_, body := env.Get("/metrics")
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			r.Goroutines = int(f)
		}
	}
	return r
}

// checkGrowth compares the first and the last third of the samples (taken
// at the same point of every round): descriptors, goroutines and threads may
// not grow beyond a small slack, resident memory not beyond 50% + 16 MiB.
// It returns a summary of the figures.
func checkGrowth(t testing.TB, samples []resources) string {
	t.Helper()
	if len(samples) < 2 {
		return "too few samples"
	}
	third := max(1, len(samples)/3)
	first, last := samples[:third], samples[len(samples)-third:]
	peak := func(rs []resources, f func(resources) int) int {
		m := 0
		for _, r := range rs {
			m = max(m, f(r))
		}
		return m
	}
	median := func(rs []resources, f func(resources) int) int {
		v := make([]int, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fd := func(r resources) int { return r.FDs }
	gr := func(r resources) int { return r.Goroutines }
	th := func(r resources) int { return r.Threads }
	rss := func(r resources) int { return r.RSSKiB }
	if a, b := median(first, fd), median(last, fd); b > a+12 {
		t.Errorf("daemon file descriptors grow: median %d in the first third of the rounds, %d in the last", a, b)
	}
	if a, b := median(first, gr), median(last, gr); b > a+40 {
		t.Errorf("daemon goroutines grow: median %d in the first third of the rounds, %d in the last", a, b)
	}
	if a, b := peak(first, th), peak(last, th); b > a+8 {
		t.Errorf("daemon threads grow: peak %d in the first third of the rounds, %d in the last", a, b)
	}
	if a, b := median(first, rss), median(last, rss); b > a*3/2+16<<10 {
		t.Errorf("daemon memory grows: median RSS %d KiB in the first third of the rounds, %d KiB in the last", a, b)
	}
	return fmt.Sprintf("fds %d→%d, goroutines %d→%d, threads %d→%d, RSS %d→%d KiB (median first→last third of %d samples)",
		median(first, fd), median(last, fd), median(first, gr), median(last, gr),
		peak(first, th), peak(last, th), median(first, rss), median(last, rss), len(samples))
}

// procInfo is a live process whose executable is under the plugin folder.
type procInfo struct {
	PID  int
	PPID int
	Exe  string // as /proc/<pid>/exe reads, " (deleted)" kept
}

// pluginProcs lists the live processes running an executable of dir.
func pluginProcs(dir string) []procInfo {
	var out []procInfo
	for _, pid := range daemontest.ProcessesUnder(dir) {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		out = append(out, procInfo{PID: pid, PPID: ppid(pid), Exe: exe})
	}
	return out
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, ent := range ents {
		c, err := strconv.Atoi(ent.Name())
		if err == nil && ppid(c) == pid {
			out = append(out, c)
		}
	}
	return out
}

func ppid(pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// alive reports whether pid runs (a zombie does not count: it holds no
// resources but its slot, and whoever inherited it reaps it).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

// waitGone waits up to d for every pid to be gone and returns the ones left.
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readPID reads a pid file the orphan test plugin wrote; 0 when absent.
func readPID(t testing.TB, path string) int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	return pid
}

// killProc sends SIGKILL to pid; a process already gone is fine.
func killProc(t testing.TB, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill %d: %v", pid, err)
	}
}

// pluginPath is the plugin executable of name in env.
func pluginPath(env *daemontest.Env, name string) string {
	return filepath.Join(env.PluginDir, "attestor-check-"+name)
}

// quietPolicy renders the development policy with the given edits on top of
// a quieter log level (the daemon logs every request at debug), private
// copies of the files the policies plugin hashes (the repository's own may
// change while a long test runs, and the suite compares what the built-ins
// measure round after round) and small service binaries.
func quietPolicy(t testing.TB, env *daemontest.Env, edit func(doc map[string]any)) {
	t.Helper()
	copyTo := func(src string) string {
		raw, err := os.ReadFile(filepath.Join(env.Root, src))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(env.Dir, "policyfiles", filepath.Base(src))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	files := []any{copyTo("policy/examples/production.yaml"), copyTo("policy/examples/development.yaml.in")}
	manifest := copyTo("policy/examples/registry-manifest.json")
	// Two small service binaries instead of the daemon's and attestctl's
	// 45 MB: hashing those at each of thousands of attestations would be
	// most of what a long run costs.
	services := map[string]any{}
	for _, name := range []string{"svc_a", "svc_b"} {
		path := filepath.Join(env.Dir, "services", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, bytes.Repeat([]byte(name), 16<<10), 0o700); err != nil {
			t.Fatal(err)
		}
		services[name] = path
	}
	env.EditPolicy(func(doc map[string]any) {
		doc["log_level"] = "info"
		doc["policy_files"] = files
		doc["service_binaries"] = services
		// The scenarios drop test plugins into the folder without listing
		// them; they run with config {} and nothing granted.
		doc["run_unlisted_plugins"] = true
		daemontest.SetPolicyKey(doc, manifest, "plugins", "policies", "config", "registry_manifest_path")
		if edit != nil {
			edit(doc)
		}
	})
}

// buildTB collects a build failure instead of stopping the goroutine that
// hit it (FailNow may only be called from the test's goroutine).
type buildTB struct {
	testing.TB
	mu  sync.Mutex
	err []string
}

func (b *buildTB) Helper() {}

func (b *buildTB) Fatalf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = append(b.err, fmt.Sprintf(format, args...))
}

func (b *buildTB) Fatal(args ...any) { b.Fatalf("%s", fmt.Sprint(args...)) }

// prebuild builds the daemon, attestctl, the built-in plugins and the given
// test plugins two at a time (linking is what takes long, and a link keeps
// one core busy), so that the tests that need them find them built.
func prebuild(t *testing.T, testPlugins ...string) {
	t.Helper()
	type job struct{ pkg, name string }
	jobs := []job{{"./cmd/runtime-attestor", "runtime-attestor"}, {"./cmd/attestctl", "attestctl"}}
	for _, p := range builtin.Names() {
		jobs = append(jobs, job{"./cmd/attestor-check-" + p, "attestor-check-" + p})
	}
	for _, k := range testPlugins {
		jobs = append(jobs, job{"./testplugins/" + k, "attestor-check-" + k})
	}
	btb := &buildTB{TB: t}
	ch := make(chan job)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				testbin.Build(btb, j.pkg, j.name)
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	if len(btb.err) > 0 {
		t.Fatal(strings.Join(btb.err, "\n"))
	}
}

// grantOrphan lets the orphan test plugin listed as name do what it does:
// re-execute itself (the plugin folder) and write its pid file (in
// orphanDir). Plugins get nothing the policy does not grant, and the
// daemon refuses a grant that reaches its run folder (its keys, its logs).
func grantOrphan(doc map[string]any, env *daemontest.Env, name string) {
	daemontest.SetPolicyKey(doc, map[string]any{"exec": []any{env.PluginDir}, "read_write": []any{orphanDir(env)}}, "plugins", name, "sandbox")
}

// orphanDir is the folder, under the test's, where orphan plugins write
// their pid files: apart from the daemon's run folder.
func orphanDir(env *daemontest.Env) string {
	return filepath.Join(env.Dir, "pids")
}

// mkOrphanDir makes orphanDir and returns it.
func mkOrphanDir(t *testing.T, env *daemontest.Env) string {
	t.Helper()
	d := orphanDir(env)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}
