package pluginhost

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// backoffHarness is a host whose clock the test moves.
func backoffHarness(t *testing.T, kind string, timeout time.Duration) (*harness, *fakeClock, string) {
	t.Helper()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, kind, kind)
	started := filepath.Join(t.TempDir(), "started")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{
		{Name: "good", Enabled: true},
		{Name: kind, Enabled: true, Timeout: timeout, ConfigJSON: cfg("started_file", started)},
	}})
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	hs.host.now = clock.Now
	return hs, clock, started
}

// TestRestartWithBackoff: a plugin that times out or crashes is killed,
// restarted at the next attestation, and after repeated failures restarted
// only once the exponential backoff has passed; meanwhile each attestation
// reports the fault again. The good plugin is untouched throughout.
func TestRestartWithBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind    string
		timeout time.Duration
		fault   string
		code    string
		msg     string
	}{
		{"hang", 300 * time.Millisecond, FaultTimeout, CodeTimeout, "no answer within 300ms; plugin killed"},
		{"panicgoroutine", 0, FaultCrashed, CodeCrashed, "connection to the plugin lost"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			hs, clock, started := backoffHarness(t, tc.kind, tc.timeout)
			hs.start()
			goodPID := hs.pidOf("good")
			step := func(wantStarts int, msg string) {
				t.Helper()
				rs := hs.measure()
				wantGood(t, rs, "good")
				wantFault(t, rs, tc.kind, tc.fault, tc.code, msg)
				if got := lines(t, started); len(got) != wantStarts {
					t.Fatalf("%s started %d times (%v), want %d", tc.kind, len(got), got, wantStarts)
				}
				if hs.pidOf(tc.kind) != 0 {
					t.Fatalf("%s still running after its fault", tc.kind)
				}
				hs.onlyLive()
			}
			step(1, tc.msg) // failure 1: killed
			step(2, tc.msg) // restarted at once, failure 2: backoff 1s
			step(2, "not restarted yet: 2 consecutive failures, next attempt in 1s")
			clock.Add(999 * time.Millisecond)
			step(2, "next attempt in 1ms")
			clock.Add(time.Millisecond)
			step(3, tc.msg) // failure 3: backoff 2s
			clock.Add(time.Second)
			step(3, "not restarted yet: 3 consecutive failures, next attempt in 1s")
			clock.Add(time.Second)
			step(4, tc.msg)
			if hs.pidOf("good") != goodPID {
				t.Error("the good plugin was restarted")
			}
		})
	}
}

func TestBackoffDelays(t *testing.T) {
	t.Parallel()
	h := New(Options{})
	want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for n, w := range want {
		if got := h.delay(n); got != w {
			t.Errorf("Test %d: delay(%d) = %s, want %s", n, n, got, w)
		}
	}
	if got := h.delay(1000); got != time.Minute {
		t.Errorf("delay(1000) = %s", got)
	}
}

// TestSuccessResetsBackoff: a measurement that succeeds forgets earlier
// failures.
func TestSuccessResetsBackoff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "good", Enabled: true}}})
	hs.start()
	p := hs.host.plugin("good")
	p.mu.Lock()
	p.failures = 5
	p.mu.Unlock()
	wantGood(t, hs.measure(), "good")
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures != 0 || p.last != nil {
		t.Errorf("after a good measurement: %d failures, last %v", p.failures, p.last)
	}
}

// TestOrphanGrandchild: a plugin's grandchild that called setsid and
// ignores SIGTERM and SIGHUP dies with the plugin: at Close, and when the
// plugin is killed for a timeout. Without a PID namespace, a grandchild
// that stayed in the plugin's process group dies with it.
func TestOrphanGrandchild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		noNS   bool
		setsid bool
		hang   bool
	}{
		{"setsid_close", false, true, false},
		{"setsid_timeout", false, true, true},
		{"process_group_close_no_namespace", true, false, false},
		{"process_group_timeout_no_namespace", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			install(t, dir, "good", "good")
			install(t, dir, "orphan", "orphan")
			pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
			timeout := time.Duration(0)
			if tc.hang {
				timeout = 3 * time.Second
			}
			hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{
				{Name: "good", Enabled: true},
				{Name: "orphan", Enabled: true, Timeout: timeout, ConfigJSON: cfg("pid_file", pidFile, "setsid", tc.setsid, "hang", tc.hang)},
			}})
			hs.host.usePIDNS = !tc.noNS
			hs.start()
			in := hs.host.plugin("orphan").cur.Load()
			if in == nil || in.pidNS == tc.noNS {
				t.Fatalf("orphan instance %+v, want pid namespace %v", in, !tc.noNS)
			}
			plugin := procOf(t, in.pid)
			// Catch the grandchild while it lives (the hanging variant is
			// killed before Measure returns).
			caught := make(chan proc, 1)
			go func() {
				deadline := time.Now().Add(time.Minute)
				for time.Now().Before(deadline) {
					if b, err := os.ReadFile(pidFile); err == nil {
						if pid, err := strconv.Atoi(string(b)); err == nil {
							if st, ok := procStat(pid); ok {
								caught <- proc{pid: pid, start: st[19]}
								return
							}
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
				close(caught)
			}()
			rs := hs.measure()
			wantGood(t, rs, "good")
			grandchild, ok := <-caught
			if !ok {
				t.Fatal("never saw the grandchild alive")
			}
			if tc.hang {
				wantFault(t, rs, "orphan", FaultTimeout, CodeTimeout, "no answer within 3s")
				waitGone(t, "after the timeout", plugin, grandchild)
				hs.onlyLive()
				return
			}
			if rs["orphan"].Fault != "" {
				t.Fatalf("orphan: %+v", rs["orphan"])
			}
			var gpid int
			if err := json.Unmarshal(rs["orphan"].Measurements["grandchild_pid"], &gpid); err != nil || gpid != grandchild.pid {
				t.Fatalf("grandchild_pid %d (%v), want %d", gpid, err, grandchild.pid)
			}
			if grandchild.pid == plugin.pid || !grandchild.alive() {
				t.Fatal("the grandchild is the plugin, or not running")
			}
			hs.host.Close()
			waitGone(t, "after Close", plugin, grandchild)
		})
	}
}

// TestCloseDuringMeasure: Close while a plugin hangs in a measurement ends
// the measurement at once and leaves nothing behind; Close is idempotent.
func TestCloseDuringMeasure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, "hang", "hang")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "good", Enabled: true}, {Name: "hang", Enabled: true, Timeout: time.Hour}}})
	hs.start()
	hang := procOf(t, hs.pidOf("hang"))
	done := make(chan []Result)
	go func() { done <- hs.host.Measure(context.Background(), nonce(t)) }()
	// Close while Measure runs (or, at worst, before it starts: the result
	// is the same fault).
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(200 * time.Millisecond)
			hs.host.Close()
			_ = hs.host.PIDs()
		}()
	}
	wg.Wait()
	var rs map[string]Result
	select {
	case r := <-done:
		rs = byName(t, r)
	case <-time.After(time.Minute):
		t.Fatal("Measure did not return after Close")
	}
	wantFault(t, rs, "hang", FaultCrashed, CodeCrashed, "closed")
	waitGone(t, "after Close", hang)
	if pids := hs.host.PIDs(); pids != nil {
		t.Errorf("PIDs after Close: %v", pids)
	}
	// After Close, Measure reports every plugin as a fault, never nothing.
	rs = byName(t, hs.host.Measure(context.Background(), nonce(t)))
	wantFault(t, rs, "good", FaultCrashed, CodeCrashed, "closed")
	wantFault(t, rs, "hang", FaultCrashed, CodeCrashed, "closed")
	if err := hs.host.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestAttestationDeadline: the caller's deadline ends a measurement that
// the plugin's own timeout would still allow; the plugin is killed and
// started afresh (no backoff) next time.
func TestAttestationDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, "hang", "hang")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "good", Enabled: true}, {Name: "hang", Enabled: true, Timeout: time.Hour}}})
	hs.start()
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rs := byName(t, hs.host.Measure(ctx, nonce(t)))
		cancel()
		wantGood(t, rs, "good")
		wantFault(t, rs, "hang", FaultTimeout, CodeAttestationTimeout, "the attestation's deadline passed before the plugin answered measure; plugin killed")
		hs.onlyLive()
	}
	// A cancelled attestation reports every plugin, never nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs := byName(t, hs.host.Measure(ctx, nonce(t)))
	wantFault(t, rs, "good", FaultTimeout, CodeAttestationTimeout, "the attestation was cancelled")
	wantFault(t, rs, "hang", FaultTimeout, CodeAttestationTimeout, "the attestation was cancelled")
}

// TestMaxParallel: no more measurements overlap than MaxParallel, going by
// the times the host itself records.
func TestMaxParallel(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{1, 2} {
		dir := t.TempDir()
		var specs []Spec
		for _, name := range []string{"slow_a", "slow_b", "slow_c", "slow_d"} {
			install(t, dir, "slow", name)
			specs = append(specs, Spec{Name: name, Enabled: true, ConfigJSON: cfg("delay_ms", 150)})
		}
		hs := newHarness(t, Options{Dir: dir, MaxParallel: limit, Plugins: specs})
		hs.start()
		rs := hs.host.Measure(context.Background(), nonce(t))
		type edge struct {
			at    time.Time
			delta int
		}
		var edges []edge
		for _, r := range rs {
			if r.Fault != "" {
				t.Fatalf("%s: %+v", r.Name, r.Findings)
			}
			edges = append(edges, edge{r.Started, +1}, edge{r.Started.Add(r.Duration), -1})
		}
		slices.SortFunc(edges, func(a, b edge) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return a.delta - b.delta // an end before a start at the same instant
		})
		running, most := 0, 0
		for _, e := range edges {
			running += e.delta
			most = max(most, running)
		}
		if most > limit {
			t.Errorf("MaxParallel %d: %d measurements overlapped", limit, most)
		}
		hs.host.Close()
	}
}

// TestPIDs: PIDs lists the live plugins.
func TestPIDs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "one")
	install(t, dir, "good", "two")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "one", Enabled: true}, {Name: "two", Enabled: true}}})
	if pids := hs.host.PIDs(); pids != nil {
		t.Errorf("PIDs before Start: %v", pids)
	}
	hs.start()
	pids := hs.host.PIDs()
	want := []int{hs.pidOf("one"), hs.pidOf("two")}
	slices.Sort(want)
	if !slices.Equal(pids, want) || want[0] == 0 {
		t.Errorf("PIDs = %v, want %v", pids, want)
	}
	hs.onlyLive()
	// Each plugin made its go-plugin socket in its own private folder.
	for _, name := range []string{"one", "two"} {
		in := hs.host.plugin(name).cur.Load()
		ents, err := os.ReadDir(in.sock)
		if err != nil || len(ents) != 1 || ents[0].Type()&os.ModeSocket == 0 || filepath.Dir(in.sock) != hs.host.runDir {
			t.Errorf("%s: socket folder %s: %v %v", name, in.sock, ents, err)
		}
	}
	if fi, err := os.Stat(hs.host.runDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("private folder %s: %v %v", hs.host.runDir, fi, err)
	}
	hs.host.Close()
	if _, err := os.Stat(hs.host.runDir); !os.IsNotExist(err) {
		t.Errorf("private folder %s left after Close: %v", hs.host.runDir, err)
	}
}

// TestMeasureBeforeStart: Measure on a host that was not started starts it.
func TestMeasureBeforeStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "good", Enabled: true}}})
	wantGood(t, hs.measure(), "good")
}

// TestSocketDir: plugins make their sockets under Options.SocketDir; one
// too long for a Unix socket path is left out, with a warning, for private
// folders in the temporary folder, and the plugins still work.
func TestSocketDir(t *testing.T) {
	t.Parallel()
	for _, long := range []bool{false, true} {
		base := t.TempDir()
		if long {
			base = filepath.Join(base, strings.Repeat("d", 80))
			if err := os.Mkdir(base, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		dir := t.TempDir()
		install(t, dir, "good", "good")
		hs := newHarness(t, Options{Dir: dir, SocketDir: base, Plugins: []Spec{{Name: "good", Enabled: true}}})
		hs.start()
		wantGood(t, hs.measure(), "good")
		in := hs.host.plugin("good").cur.Load()
		if filepath.Dir(hs.host.runDir) != base || (filepath.Dir(in.sock) == hs.host.runDir) == long {
			t.Errorf("long %v: private folder %s, socket folder %q", long, hs.host.runDir, in.sock)
		}
		if warned := strings.Contains(hs.logs.String(), "too long for a Unix socket"); warned != long {
			t.Errorf("long %v: warned %v", long, warned)
		}
		hs.host.Close()
	}
}
