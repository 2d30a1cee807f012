package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// faultKind is one misbehaving (or well-behaved) test plugin of
// testplugins/ and what the daemon must make of it.
type faultKind struct {
	kind string // testplugins/<kind>
	// code is the core finding the plugin must get; "" means it behaves
	// and must answer its <name>.ok finding.
	code string
	// long is the number of rounds under ATTESTOR_STRESS=1 (0: the
	// default of 50). nohandshake costs the daemon's fixed 10 s start timeout per
	// round, so it runs fewer.
	long int
	// wait is how long one round waits on the plugin by design (its
	// timeout), in units of an ordinary round (about a second).
	wait float64
}

// cost estimates the time of a kind's rounds, in ordinary rounds.
func (k faultKind) cost() float64 {
	n := 50.0
	if k.long > 0 {
		n = float64(k.long)
	}
	return n * (1 + k.wait)
}

// faultKinds are the test plugins that run under rotating names (a fresh
// copy, hence a fresh process and no restart backoff, every round). The
// orphan plugins need configuration and are listed in the policy instead
// (orphanSetup).
var faultKinds = []faultKind{
	{kind: "exitstart", code: "core.plugin_crashed"},
	{kind: "exitmid", code: "core.plugin_crashed"},
	{kind: "panicmeasure", code: "core.plugin_failed"},
	{kind: "panicgoroutine", code: "core.plugin_crashed"},
	{kind: "hang", code: "core.plugin_timeout", wait: 2},
	{kind: "nohandshake", code: "core.plugin_timeout", long: 10, wait: 10},
	{kind: "badcookie", code: "core.plugin_protocol"},
	{kind: "badversion", code: "core.plugin_protocol"},
	{kind: "stdoutgarbage", code: "core.plugin_protocol"},
	{kind: "oversize", code: "core.plugin_protocol"},
	{kind: "badcode", code: "core.plugin_protocol"},
	{kind: "wrongname", code: "core.plugin_protocol"},
	// An unlisted plugin gets the configuration {}, which refuseconfig
	// refuses: at run time that is core.plugin_config.
	{kind: "refuseconfig", code: "core.plugin_config"},
	{kind: "stdoutafter"},
	{kind: "badlog"},
	{kind: "slow"},
	{kind: "light"},
}

// The plugin timeout of the unlisted (rotating) plugins: what a hang costs.
const faultPluginTimeout = 2 * time.Second

// scenario is one daemon under load through a number of rounds.
type scenario struct {
	// rounds[r] are the kinds installed, each under a fresh name, in round r.
	rounds [][]faultKind
	// orphan lists the two orphan-spawning plugins: "orphan" answers (and
	// when resident is killed by the test after each round: a plugin that
	// dies), and "orphanhang" hangs after spawning and is killed by the
	// daemon on its timeout. No grandchild may survive either.
	orphan bool
	// resident is the policy's resident_plugins: false (the default)
	// starts every plugin for its turn and stops it after; true keeps
	// them running between attestations.
	resident bool
	// parallel is the policy's max_parallel_plugins (0: the default, 2).
	parallel int
}

// schedule interleaves n rounds of each kind, one kind per round, so that a
// daemon goes from fault to fault (and back to attested) without restarts.
func schedule(kinds []faultKind, short int) [][]faultKind {
	left := map[string]int{}
	total := 0
	for _, k := range kinds {
		n := short
		switch {
		case stress() && k.long > 0:
			n = k.long
		case stress():
			n = 50
		case k.long > 0:
			n = 0 // too slow for the fast suite; core/pluginhost covers it once
		}
		left[k.kind] = n
		total += n
	}
	var out [][]faultKind
	for len(out) < total {
		for _, k := range kinds {
			if left[k.kind] > 0 {
				left[k.kind]--
				out = append(out, []faultKind{k})
			}
		}
	}
	return out
}

// TestPluginFaultsUnderLoad runs every test plugin of testplugins/ against
// the real daemon and the six real built-in plugins while readers hammer the
// API:
//
//   - alone: one faulty plugin at a time, each kind under a fresh name
//     every round, going round-robin through the kinds (plugins resident);
//   - orphan, orphan-resident: the orphan-spawning plugins, on demand and
//     resident;
//   - all-at-once: every kind in every round (plugins on demand, the
//     default: each is started for its turn and stopped after).
//
// After every round the daemon is alive, the bundle verifies, the built-ins
// and the good plugin measure exactly what they measured before any fault,
// each faulty plugin has exactly its core finding and no foreign one, the
// score and state follow the policy's weights, no process of a removed
// plugin and no orphaned grandchild survives. Across the rounds the daemon's
// descriptors, goroutines, threads and memory do not grow, and on demand at
// most max_parallel_plugins plugin processes ever run at once. After a clean
// stop no plugin process is left and the audit chain verifies, holding every
// fault.
//
// The fast suite runs each kind once alone and two rounds of the others;
// ATTESTOR_STRESS=1 runs 50 rounds of each (nohandshake, which costs the
// fixed 10 s start timeout per round, 10), the kinds alone split over three
// daemons.
func TestPluginFaultsUnderLoad(t *testing.T) {
	t.Parallel()
	kinds := []string{"good", "orphan"}
	for _, k := range faultKinds {
		if stress() || k.long == 0 {
			kinds = append(kinds, k.kind)
		}
	}
	prebuild(t, kinds...)
	// The kinds alone go to one daemon (fast suite) or four, balanced by
	// what their rounds cost: a hang waits for its timeout, nohandshake for
	// the 10 s start timeout.
	nShards := reps(1, 4)
	shards := make([][]faultKind, nShards)
	load := make([]float64, nShards)
	for _, k := range faultKinds {
		i := slices.Index(load, slices.Min(load))
		shards[i] = append(shards[i], k)
		load[i] += k.cost()
	}
	for i, sh := range shards {
		names := make([]string, len(sh))
		for j, k := range sh {
			names[j] = k.kind
		}
		t.Run(fmt.Sprintf("alone-%d", i+1), func(t *testing.T) {
			t.Parallel()
			t.Logf("kinds: %s", strings.Join(names, ", "))
			runScenario(t, scenario{rounds: schedule(sh, 1), resident: true})
		})
	}
	t.Run("orphan", func(t *testing.T) {
		t.Parallel()
		runScenario(t, scenario{rounds: make([][]faultKind, reps(2, 50)), orphan: true})
	})
	t.Run("orphan-resident", func(t *testing.T) {
		t.Parallel()
		runScenario(t, scenario{rounds: make([][]faultKind, reps(2, 50)), orphan: true, resident: true})
	})
	t.Run("all-at-once", func(t *testing.T) {
		t.Parallel()
		var all []faultKind
		for _, k := range faultKinds {
			if k.long == 0 { // nohandshake would make every round 10 s
				all = append(all, k)
			}
		}
		rounds := make([][]faultKind, reps(2, 50))
		for r := range rounds {
			rounds[r] = all
		}
		// Four plugins at a time: 25 plugins on demand, two of them
		// waiting for their timeouts, every round.
		runScenario(t, scenario{rounds: rounds, orphan: true, parallel: 4})
	})
}

func runScenario(t *testing.T, sc scenario) {
	if sc.parallel == 0 {
		sc.parallel = 2
	}
	env := daemontest.New(t, daemontest.Options{})
	// Build every plugin first, so the rounds time the daemon, not the
	// compiler.
	for _, kinds := range sc.rounds {
		for _, k := range kinds {
			testbin.Build(t, "./testplugins/"+k.kind, "attestor-check-"+k.kind)
		}
	}
	env.InstallTestPlugin("good", "good")
	orphanPID := filepath.Join(mkOrphanDir(t, env), "orphan.pid")
	hangPID := filepath.Join(mkOrphanDir(t, env), "orphanhang.pid")
	if sc.orphan {
		env.InstallTestPlugin("orphan", "orphan")
		env.InstallTestPlugin("orphan", "orphanhang")
	}
	quietPolicy(t, env, func(doc map[string]any) {
		// Attestations come from the rounds' refreshes, one after the
		// other, so that every round's bundle is the one it caused.
		doc["refresh_interval"] = "1h"
		doc["resident_plugins"] = sc.resident
		doc["max_parallel_plugins"] = sc.parallel
		doc["plugin_timeout"] = faultPluginTimeout.String()
		// The plugins that must stay intact get all the time they need on
		// a loaded machine; only the faulty ones run on the short timeout.
		for _, name := range append(slices.Clone(builtin.Names()), "good") {
			daemontest.SetPolicyKey(doc, "30s", "plugins", name, "timeout")
		}
		if sc.orphan {
			daemontest.SetPolicyKey(doc, map[string]any{"pid_file": orphanPID}, "plugins", "orphan", "config")
			daemontest.SetPolicyKey(doc, "30s", "plugins", "orphan", "timeout")
			daemontest.SetPolicyKey(doc, map[string]any{"pid_file": hangPID, "hang": true}, "plugins", "orphanhang", "config")
			grantOrphan(doc, env, "orphan")
			grantOrphan(doc, env, "orphanhang")
			daemontest.SetPolicyKey(doc, "1s", "plugins", "orphanhang", "timeout")
		}
	})
	key := readKey(t, env)
	p := env.Start()
	daemonPID := p.PID()

	// The reference: what the intact plugins measure with no fault about.
	rc := &roundChecker{t: t, env: env, orphan: sc.orphan, intact: slices.Concat(builtin.Names(), []string{"good"})}
	rc.base = refresh(t, env, key)
	rc.baseScore = rc.base.Score
	if sc.orphan {
		rc.baseScore -= weights["high"] // orphanhang's timeout, already in the first bundle
	}
	for _, name := range rc.intact {
		c, ok := rc.base.Checks[name]
		if !ok || c.hasCore() || len(c.Measurements) == 0 || string(c.Measurements) == "null" {
			t.Fatalf("before any fault, %s is not intact: %+v", name, c)
		}
	}

	load := startLoad(t, env, 4)
	peak := func() int { return 0 }
	if !sc.resident {
		peak = watchPluginProcs(t, env, daemonPID)
	}
	var (
		samples   []resources
		grandkids []int
		prev      []string           // file names of the last round
		perKind   = map[string]int{} // rounds of each kind
		started   = time.Now()
	)
	for r, kinds := range sc.rounds {
		roundStart := time.Now()
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = fmt.Sprintf("%s_%d", k.kind, r+1)
			env.InstallTestPlugin(k.kind, names[i])
		}
		for _, old := range prev {
			if err := os.Remove(pluginPath(env, old)); err != nil {
				t.Fatal(err)
			}
		}
		b := refreshUntil(t, env, key, fmt.Sprintf("round %d's plugins %v", r+1, names), func(b bundleDoc) bool {
			for _, n := range names {
				if _, ok := b.Checks[n]; !ok {
					return false
				}
			}
			for _, n := range prev {
				if _, ok := b.Checks[n]; ok {
					return false
				}
			}
			return true
		})
		if !p.Alive() {
			t.Fatalf("round %d: the daemon died; log:\n%s", r+1, p.Stderr())
		}
		prev = names
		if testing.Verbose() {
			var slow []string
			for n, c := range b.Checks {
				if c.DurationMS >= 500 {
					slow = append(slow, fmt.Sprintf("%s %dms", n, c.DurationMS))
				}
			}
			sort.Strings(slow)
			t.Logf("round %d: %s; slow turns: %s", r+1, time.Since(roundStart).Round(time.Millisecond), strings.Join(slow, ", "))
		}

		rc.check(r+1, b, kinds, names)
		for _, k := range kinds {
			perKind[k.kind]++
		}

		if sc.orphan {
			grandkids = append(grandkids, orphanRound(t, env, daemonPID, orphanPID, hangPID, r+1, sc.resident)...)
		}
		// No process of an earlier round's plugin survives, and no plugin
		// runs twice.
		if msg := waitNoStrays(env, 10*time.Second); msg != "" {
			t.Fatalf("round %d: %s", r+1, msg)
		}
		samples = append(samples, sample(t, env, daemonPID))
	}
	ls := load.stop()
	peakProcs := peak()
	growth := checkGrowth(t, samples)
	if !sc.resident && peakProcs > sc.parallel {
		t.Errorf("up to %d plugin processes at once on demand, want at most max_parallel_plugins = %d", peakProcs, sc.parallel)
	}
	attest, _ := env.Counters()
	if !p.Alive() {
		t.Fatalf("the daemon died; log:\n%s", p.Stderr())
	}
	p.Stop()
	if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 10*time.Second); len(left) > 0 {
		t.Fatalf("plugin processes survive the daemon:\n%s", daemontest.Describe(left))
	}
	if left := waitGone(grandkids, 5*time.Second); len(left) > 0 {
		t.Fatalf("orphaned grandchildren survive: %v", left)
	}
	rep, err := audit.VerifyFile(env.AuditPath)
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	// Every fault the bundles showed is in the audit log; count the fresh
	// ones (a plugin that really ran and failed) apart from the repeats of
	// a plugin waiting for its restart backoff.
	recs := env.AuditRecords()
	faultsByPlugin := map[string]int{}
	injected, backoff := 0, 0
	for _, rec := range recs {
		if rec.Type != audit.TypePluginFault {
			continue
		}
		msg, _ := rec.Data["message"].(string)
		if strings.Contains(msg, "not restarted yet") {
			backoff++
			continue
		}
		injected++
		name, _ := rec.Data["plugin"].(string)
		faultsByPlugin[name]++
	}
	for r, kinds := range sc.rounds {
		for _, k := range kinds {
			if name := fmt.Sprintf("%s_%d", k.kind, r+1); k.code != "" && faultsByPlugin[name] == 0 {
				t.Errorf("round %d: %s's fault is not in the audit log", r+1, name)
			}
		}
	}
	if ls.Errors > 0 {
		t.Errorf("load: %s; first errors:\n%s", ls, strings.Join(ls.ErrorSamples, "\n"))
	}
	if rc.starved*10 > rc.wellBehaved {
		t.Errorf("%d of %d turns of well-behaved plugins timed out: more than a starved machine explains", rc.starved, rc.wellBehaved)
	}
	if rc.starved > 0 {
		report(t, "%d of %d turns of well-behaved plugins ran past the %s timeout on the loaded machine (reported as core.plugin_timeout, as they should)", rc.starved, rc.wellBehaved, faultPluginTimeout)
	}
	var kinds []string
	for k, n := range perKind {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(kinds)
	report(t, "%d rounds in %s (%s); %d attestations; %d fault injections survived (+%d backoff repeats); %d orphaned grandchildren killed; %d audit records verified",
		len(sc.rounds), time.Since(started).Round(time.Second), strings.Join(kinds, " "), attest, injected, backoff, len(grandkids), rep.Records)
	report(t, "load: %s", ls)
	procs := "plugins resident"
	if !sc.resident {
		procs = fmt.Sprintf("plugins on demand, at most %d processes at once (max_parallel_plugins %d)", peakProcs, sc.parallel)
	}
	report(t, "daemon resources: %s; %s", growth, procs)
}

// roundChecker checks the bundle of each round against the one taken
// before any fault.
type roundChecker struct {
	t           *testing.T
	env         *daemontest.Env
	base        bundleDoc // the first bundle, before any fault
	baseScore   int       // its score without the faults it already had
	intact      []string  // the plugins that must measure as in base
	orphan      bool      // the orphan plugins are installed
	latched     bool      // an attestation ended failed
	wellBehaved int       // turns of well-behaved rotating plugins
	starved     int       // of which timed out on a starved machine
}

// check checks round's bundle b, in which kinds ran under names.
func (rc *roundChecker) check(round int, b bundleDoc, kinds []faultKind, names []string) {
	rc.t.Helper()
	// Every other plugin is intact: the same measurements and
	// findings as before any fault.
	want := map[string]bool{}
	for _, name := range rc.intact {
		want[name] = true
		got, ok := b.Checks[name]
		if !ok {
			rc.t.Fatalf("round %d: no result for %s", round, name)
		}
		if ref := rc.base.Checks[name]; !bytes.Equal(got.Measurements, ref.Measurements) || !slices.Equal(got.Findings, ref.Findings) {
			rc.t.Fatalf("round %d: %s is not intact:\n got  %s %+v\n want %s %+v", round, name, got.Measurements, got.Findings, ref.Measurements, ref.Findings)
		}
	}
	// The faulty plugins have exactly their finding.
	faulty := 0
	for i, k := range kinds {
		name := names[i]
		want[name] = true
		c := b.Checks[name]
		if k.code == "" {
			rc.wellBehaved++
			// On a starved machine a well-behaved plugin may run past
			// its timeout; the daemon is then right to say so.
			if len(c.Findings) == 1 && c.Findings[0].Code == "core.plugin_timeout" && c.DurationMS >= faultPluginTimeout.Milliseconds() {
				rc.starved++
				faulty++
				continue
			}
			if len(c.Findings) != 1 || c.Findings[0].Code != name+".ok" || c.Findings[0].Severity != "info" {
				rc.t.Fatalf("round %d: well-behaved %s answered %+v (in %d ms)", round, name, c.Findings, c.DurationMS)
			}
			continue
		}
		faulty++
		if len(c.Findings) != 1 || c.Findings[0].Code != k.code || c.Findings[0].Severity != "high" || c.Findings[0].Subject != name {
			rc.t.Fatalf("round %d: %s has findings %+v, want one %s (high)", round, name, c.Findings, k.code)
		}
		if len(c.Measurements) != 0 && string(c.Measurements) != "null" {
			rc.t.Fatalf("round %d: faulty %s kept measurements %s", round, name, c.Measurements)
		}
	}
	if rc.orphan {
		want["orphan"], want["orphanhang"] = true, true
		c := b.Checks["orphan"]
		var m struct {
			GrandchildPID int `json:"grandchild_pid"`
		}
		if c.hasCore() || json.Unmarshal(c.Measurements, &m) != nil || m.GrandchildPID == 0 {
			rc.t.Fatalf("round %d: orphan answered %s %+v", round, c.Measurements, c.Findings)
		}
		h := b.Checks["orphanhang"]
		if len(h.Findings) != 1 || h.Findings[0].Code != "core.plugin_timeout" {
			rc.t.Fatalf("round %d: orphanhang has %+v, want core.plugin_timeout", round, h.Findings)
		}
		faulty++
	}
	for name, c := range b.Checks {
		if !want[name] {
			rc.t.Fatalf("round %d: unexpected check %s in the bundle (a removed plugin?)", round, name)
		}
		for _, f := range c.Findings {
			if !strings.HasPrefix(f.Code, name+".") && !strings.HasPrefix(f.Code, "core.") {
				rc.t.Fatalf("round %d: %s carries a foreign finding %s", round, name, f.Code)
			}
		}
	}
	if cf := b.coreFindings(); len(cf) > 0 {
		rc.t.Fatalf("round %d: engine findings %+v", round, cf)
	}
	// Score and state follow the weights: each fault is one high
	// finding (20) on top of the fault-free score.
	score, st := expectScore(b)
	rc.latched = rc.latched || st == "failed"
	if rc.latched {
		st = "failed"
	}
	if b.Score != score || b.Score != rc.baseScore+weights["high"]*faulty || b.State != st {
		rc.t.Fatalf("round %d: score %d state %s, want score %d (= %d + 20 × %d faults) state %s\nfailed attestations in the audit log:\n%s",
			round, b.Score, b.State, score, rc.baseScore, faulty, st, failedAttestations(rc.env))
	}
}

// orphanRound checks the two orphan plugins after a round and returns the
// grandchildren it saw. orphan answered with its grandchild's pid. Resident,
// the grandchild lives (in the plugin's PID namespace) until the test kills
// the plugin, and must then die with it; on demand, the daemon stopped the
// plugin at the end of its turn and the grandchild must be gone with it.
// orphanhang spawned a grandchild and hung: the daemon killed it on its
// timeout, and the grandchild must die too.
func orphanRound(t *testing.T, env *daemontest.Env, daemonPID int, orphanPID, hangPID string, round int, resident bool) []int {
	t.Helper()
	gpid := readPID(t, orphanPID)
	if gpid == 0 {
		t.Fatalf("round %d: orphan wrote no grandchild pid", round)
	}
	seen := []int{gpid}
	if resident {
		if !alive(gpid) {
			t.Fatalf("round %d: orphan's grandchild %d is not running beside its resident plugin", round, gpid)
		}
		var plugin int
		for _, pi := range pluginProcs(env.PluginDir) {
			if pi.Exe == pluginPath(env, "orphan") && pi.PPID == daemonPID {
				plugin = pi.PID
			}
		}
		if plugin == 0 {
			t.Fatalf("round %d: resident orphan plugin process not found", round)
		}
		killProc(t, plugin)
		if left := waitGone([]int{plugin, gpid}, 5*time.Second); len(left) > 0 {
			t.Fatalf("round %d: orphan's grandchild %d survives its plugin %d", round, gpid, plugin)
		}
		// Let the daemon reap its plugin and notice, so that the next
		// round restarts it instead of finding a dead connection.
		deadline := time.Now().Add(5 * time.Second)
		for _, err := os.Stat(fmt.Sprintf("/proc/%d", plugin)); err == nil && time.Now().Before(deadline); _, err = os.Stat(fmt.Sprintf("/proc/%d", plugin)) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
	} else if left := waitGone([]int{gpid}, 5*time.Second); len(left) > 0 {
		t.Fatalf("round %d: orphan's grandchild %d survives its plugin's turn", round, gpid)
	}
	// The next measurement must not find this round's pid file.
	if err := os.Remove(orphanPID); err != nil {
		t.Fatal(err)
	}
	if hp := readPID(t, hangPID); hp != 0 {
		seen = append(seen, hp)
		if left := waitGone([]int{hp}, 5*time.Second); len(left) > 0 {
			t.Fatalf("round %d: orphanhang's grandchild %d survives its plugin's timeout", round, hp)
		}
	}
	return seen
}

// watchPluginProcs counts, every 50 ms until the returned function is
// called, the plugin processes the daemon runs (its children under the
// plugin folder), and returns the peak.
func watchPluginProcs(t *testing.T, env *daemontest.Env, daemonPID int) (peak func() int) {
	done := make(chan struct{})
	result := make(chan int, 1)
	prefix := filepath.Clean(env.PluginDir) + string(filepath.Separator)
	go func() {
		m := 0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			n := 0
			for _, pid := range childrenOf(daemonPID) {
				if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && strings.HasPrefix(exe, prefix) {
					n++
				}
			}
			m = max(m, n)
			select {
			case <-done:
				result <- m
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	peak = func() int {
		once.Do(func() { close(done) })
		m := <-result
		result <- m
		return m
	}
	t.Cleanup(func() { peak() })
	return peak
}

// waitNoStrays waits up to d for strayPlugins to find nothing, and returns
// what it still finds.
func waitNoStrays(env *daemontest.Env, d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		msg := strayPlugins(env)
		if msg == "" || time.Now().After(deadline) {
			return msg
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// strayPlugins describes what should not run under the plugin folder: a
// process of a removed plugin file, or two plugin processes of one file
// (the orphan plugins' grandchildren aside). "" when all is well.
func strayPlugins(env *daemontest.Env) string {
	perExe := map[string][]int{}
	var b strings.Builder
	for _, pi := range pluginProcs(env.PluginDir) {
		if strings.HasSuffix(pi.Exe, " (deleted)") {
			fmt.Fprintf(&b, "process %d of a removed plugin survives: %s\n", pi.PID, pi.Exe)
		}
		perExe[pi.Exe] = append(perExe[pi.Exe], pi.PID)
	}
	for exe, pids := range perExe {
		base := filepath.Base(exe)
		if len(pids) > 1 && base != "attestor-check-orphan" && base != "attestor-check-orphanhang" {
			fmt.Fprintf(&b, "%d processes of %s: %v\n", len(pids), exe, pids)
		}
	}
	return b.String()
}

// failedAttestations lists the audit log's attestations that ended failed,
// with their failures, for a failure message.
func failedAttestations(env *daemontest.Env) string {
	var b strings.Builder
	for _, rec := range env.AuditRecords() {
		if rec.Type == audit.TypeAttestation && rec.Data["state"] == "failed" {
			f, _ := json.Marshal(rec.Data["failures"])
			fmt.Fprintf(&b, "seq %v: %s\n", rec.Data["sequence"], f)
		}
	}
	return b.String()
}

// TestConfigRefusedAtStart: a built-in plugin that refuses its
// configuration makes the policy bad. The daemon does not start (exit 3),
// names the key and the plugin's reason, writes no audit record and leaves
// no plugin process behind. A third-party plugin that refuses its
// configuration never stops the daemon: it is the finding core.plugin_config
// in every bundle.
func TestConfigRefusedAtStart(t *testing.T) {
	t.Parallel()
	t.Run("builtin", func(t *testing.T) {
		t.Parallel()
		env := daemontest.New(t, daemontest.Options{})
		quietPolicy(t, env, func(doc map[string]any) {
			daemontest.SetPolicyKey(doc, "sometimes", "plugins", "kernel", "config", "min_lockdown")
		})
		p := env.StartNoWait()
		if code := p.Wait(60 * time.Second); code != 3 {
			t.Fatalf("exit %d, want 3; log:\n%s", code, p.Stderr())
		}
		if want := "plugins.kernel.config"; !strings.Contains(p.Stderr(), want) || !strings.Contains(p.Stderr(), "min_lockdown") {
			t.Errorf("the daemon's error does not name %s.min_lockdown:\n%s", want, p.Stderr())
		}
		if _, err := os.Stat(env.AuditPath); !os.IsNotExist(err) {
			t.Errorf("a daemon refused at start wrote the audit log (stat: %v)", err)
		}
		if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 5*time.Second); len(left) > 0 {
			t.Fatalf("plugin processes survive the refused start:\n%s", daemontest.Describe(left))
		}
	})
	t.Run("third_party", func(t *testing.T) {
		t.Parallel()
		env := daemontest.New(t, daemontest.Options{})
		env.InstallTestPlugin("refuseconfig", "refuser")
		quietPolicy(t, env, func(doc map[string]any) {
			daemontest.SetPolicyKey(doc, map[string]any{}, "plugins", "refuser", "config")
		})
		p := env.Start()
		defer p.Stop()
		var r struct {
			Bundle struct {
				Failures []struct{ Code, Subject, Message string } `json:"failures"`
			} `json:"bundle"`
		}
		if _, body := env.Get("/api/v1/attest"); json.Unmarshal(body, &r) != nil {
			t.Fatalf("/api/v1/attest: %s", body)
		}
		found := false
		for _, f := range r.Bundle.Failures {
			found = found || f.Code == "core.plugin_config" && f.Subject == "refuser" && strings.Contains(f.Message, "refused by the refuseconfig test plugin")
		}
		if !found {
			t.Errorf("failures %+v, want core.plugin_config for refuser", r.Bundle.Failures)
		}
	})
}

// TestPluginCopiedInPlace copies a well-behaved, unpinned plugin into the
// plugin folder the way cp does (the file is visible while it is written)
// while refreshes run. The daemon runs exactly the bytes it hashed, so a
// half-written copy fails to start, but a benign copy must not be mistaken
// for tampering: an unpinned binary caught mid-copy is a transient start
// failure (core.plugin_crashed, retried), never core.plugin_untrusted, which
// would latch the state failed.
func TestPluginCopiedInPlace(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	quietPolicy(t, env, func(doc map[string]any) {
		doc["refresh_interval"] = "1h"
		doc["resident_plugins"] = true
	})
	key := readKey(t, env)
	env.Start()
	data, err := os.ReadFile(testbin.Build(t, "./testplugins/good", "attestor-check-good"))
	if err != nil {
		t.Fatal(err)
	}
	stop := startRefresher(env)
	const copies = 10
	for i := range copies {
		// One write(2) of the whole file after an O_TRUNC open, as cp does.
		if err := os.WriteFile(pluginPath(env, fmt.Sprintf("copied_%d", i)), data, 0o755); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if cut := stop(); cut > 0 {
		t.Fatal("a refresh failed")
	}
	untrusted := map[any]bool{}
	for _, r := range env.AuditRecords() {
		if r.Type == audit.TypePluginFault && r.Data["fault"] == "untrusted" {
			untrusted[r.Data["plugin"]] = true
		}
	}
	b := refresh(t, env, key)
	if len(untrusted) > 0 || b.State == "failed" {
		t.Fatalf("%d of %d plugins copied in place were reported untrusted; state %s:\n%s", len(untrusted), copies, b.State, failedAttestations(env))
	}
}
