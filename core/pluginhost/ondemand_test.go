package pluginhost

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// TestOnDemandLifecycle: with Resident false (the default), no plugin runs
// between attestations, at most MaxParallel run during one, every plugin's
// result is intact, its GOMAXPROCS is the host's, and a crash or a replaced
// pinned binary is caught on the next attestation all the same.
func TestOnDemandLifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var specs []Spec
	for _, name := range []string{"slow_a", "slow_b", "slow_c", "slow_d"} {
		install(t, dir, "slow", name)
		specs = append(specs, Spec{Name: name, Enabled: true, ConfigJSON: cfg("delay_ms", 200)})
	}
	goodPath := install(t, dir, "good", "good")
	specs = append(specs, Spec{Name: "good", Enabled: true, SHA256: sha256File(t, goodPath)})
	hs := newOnDemandHarness(t, Options{Dir: dir, MaxParallel: 2, GOMAXPROCS: 1, Plugins: specs})
	hs.start()
	if live := leftovers(dir); len(live) != 0 {
		t.Fatalf("plugins still running after Start: %v (%s)", live, describePIDs(live))
	}

	// Sample the live plugin processes while an attestation runs.
	var most atomic.Int32
	var sawGOMAXPROCS atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			live := leftovers(dir)
			if n := int32(len(live)); n > most.Load() {
				most.Store(n)
			}
			for _, pid := range live {
				if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
					for _, kv := range strings.Split(string(env), "\x00") {
						if strings.HasPrefix(kv, "GOMAXPROCS=") {
							sawGOMAXPROCS.Store(kv)
						}
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for round := 0; round < 2; round++ {
		rs := hs.measure()
		for _, name := range []string{"slow_a", "slow_b", "slow_c", "slow_d", "good"} {
			if r := rs[name]; r.Fault != "" || r.Measurements == nil {
				t.Fatalf("round %d: %s: fault %q findings %+v", round, name, r.Fault, r.Findings)
			}
		}
		if live := waitFor(func() []int { return leftovers(dir) }); live != nil {
			t.Fatalf("round %d: plugins still running after the attestation: %v", round, live)
		}
	}
	close(stop)
	wg.Wait()
	if m := most.Load(); m == 0 || m > 2 {
		t.Errorf("at most %d plugin processes were seen at once, want 1..MaxParallel (2)", m)
	}
	if v, _ := sawGOMAXPROCS.Load().(string); v != "GOMAXPROCS=1" {
		t.Errorf("plugin environment had %q, want GOMAXPROCS=1", v)
	}

	// The pinned binary replaced between two attestations is refused before
	// it runs, on demand too.
	install(t, dir, "slow", "good")
	rs := hs.measure()
	if r := rs["good"]; r.Fault != FaultUntrusted {
		t.Fatalf("replaced pinned plugin: fault %q findings %+v, want untrusted", r.Fault, r.Findings)
	}
}

// TestOnDemandCrashRecovers: a plugin that crashes mid-measurement is
// reported and simply started afresh next time (after the backoff).
func TestOnDemandCrashRecovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "exitmid", "exitmid")
	install(t, dir, "good", "good")
	hs := newOnDemandHarness(t, Options{Dir: dir, Plugins: []Spec{
		{Name: "exitmid", Enabled: true}, {Name: "good", Enabled: true},
	}})
	hs.start()
	for round := 0; round < 2; round++ {
		rs := hs.measure()
		if r := rs["exitmid"]; r.Fault != FaultCrashed {
			t.Fatalf("round %d: exitmid fault %q, want crashed: %+v", round, r.Fault, r.Findings)
		}
		if r := rs["good"]; r.Fault != "" {
			t.Fatalf("round %d: good fault %q", round, r.Fault)
		}
	}
	if live := waitFor(func() []int { return leftovers(dir) }); live != nil {
		t.Fatalf("plugins still running: %v", live)
	}
}

// TestDeclaredDescription: a start of the very executable whose declare
// run described it (Spec.DeclaredSHA256) takes that description instead
// of asking; any other file is asked (the good plugin answers version
// 1.0.0). A declared description under another name, or one that breaks
// the protocol's rules, makes the spec invalid.
func TestDeclaredDescription(t *testing.T) {
	t.Parallel()
	declared := func(name string) *sdk.Description {
		return &sdk.Description{Name: name, Version: "2.0.0-declared", Summary: "declared",
			Findings: []sdk.FindingSpec{{Code: "good.ok", DefaultSeverity: sdk.SeverityInfo, Description: "the measurement was taken"}}}
	}
	tests := []struct {
		name     string
		desc     *sdk.Description
		sameFile bool
		want     string
	}{
		{"the declared file", declared("good"), true, "2.0.0-declared"},
		{"another file", declared("good"), false, "1.0.0"},
		{"no declaration", nil, true, "1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sha := sha256File(t, install(t, dir, "good", "good"))
			if !tt.sameFile {
				sha = strings.Repeat("0", 64)
			}
			hs := newOnDemandHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "good", Enabled: true, DeclaredSHA256: sha, Description: tt.desc}}})
			hs.start()
			for round := range 2 {
				r := hs.measure()["good"]
				if r.Fault != "" || r.Version != tt.want {
					t.Fatalf("round %d: version %q fault %q, want version %q", round, r.Version, r.Fault, tt.want)
				}
			}
		})
	}
	for _, bad := range []*sdk.Description{declared("bad"), {Name: "good"}} {
		h := New(Options{Dir: t.TempDir(), Plugins: []Spec{{Name: "good", Enabled: true, DeclaredSHA256: strings.Repeat("0", 64), Description: bad}}})
		err := h.Start(context.Background())
		h.Close()
		if err == nil || !strings.Contains(err.Error(), "declared description") {
			t.Errorf("a declared description %+v was taken: %v", bad, err)
		}
	}
}

// TestReplacedExecutableDescribesItself: another executable renamed over a
// plugin's file is asked to describe itself, on demand and resident; the
// description of the file before does not carry over (this one describes
// itself under another name, a protocol fault).
func TestReplacedExecutableDescribesItself(t *testing.T) {
	t.Parallel()
	for _, resident := range []bool{false, true} {
		t.Run(map[bool]string{false: "on demand", true: "resident"}[resident], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := install(t, dir, "good", "good")
			opts := Options{Dir: dir, Resident: resident, Plugins: []Spec{{Name: "good", Enabled: true}}}
			hs := newHarnessWith(t, opts)
			hs.start()
			wantGood(t, hs.measure(), "good")
			tmp := install(t, t.TempDir(), "wrongname", "good")
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			wantFault(t, hs.measure(), "good", FaultProtocol, CodeProtocol, "describes itself as")
		})
	}
}
