package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func newDeclarer(t testing.TB, timeout time.Duration) *Declarer {
	t.Helper()
	return NewDeclarer(DeclarerOptions{Launcher: launcher(t), Timeout: timeout})
}

func declareConfig(t testing.TB, cfg map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func declareIn(t *testing.T, d *Declarer, dir, name string, cfg map[string]any) (*Declared, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return d.Declare(ctx, dir, name, "", declareConfig(t, cfg))
}

// TestDeclareFromBinary: the declaration is the one the executable makes
// under the configuration given, with its description.
func TestDeclareFromBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "declarer", "vendor")
	want := sandbox.Rules{ReadOnly: []string{"/etc/hostname", "/usr/share/zoneinfo"}, Devices: []string{"/dev/null"}}
	got, err := declareIn(t, newDeclarer(t, 0), dir, "vendor", map[string]any{"sandbox": want})
	if err != nil {
		t.Fatal(err)
	}
	if !got.HasSandbox || !reflect.DeepEqual(got.Sandbox, want.Merge()) {
		t.Errorf("declared %+v (has %v), want %+v", got.Sandbox, got.HasSandbox, want)
	}
	if got.Description.Name != "vendor" || len(got.Description.Findings) != 3 || got.SHA256 == "" || got.Path != filepath.Join(dir, "attestor-check-vendor") {
		t.Errorf("declared %+v", got)
	}
}

// TestDeclareHostile: whatever a plugin prints in a declare run, or if it
// hangs, exits or floods stdout, the host gets a clear error and no
// declaration, fast, and nothing of the plugin is left running.
func TestDeclareHostile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode    string
		sandbox sandbox.Rules
		kind    string
		msg     string
	}{
		{"garbage", sandbox.Rules{}, FaultProtocol, "not the expected JSON"},
		{"huge", sandbox.Rules{}, FaultProtocol, "more than 1048576 bytes on stdout"},
		{"hang", sandbox.Rules{}, FaultTimeout, "no declaration within"},
		{"twice", sandbox.Rules{}, FaultProtocol, "followed by more output"},
		{"exit", sandbox.Rules{}, FaultCrashed, "exiting before declaring"},
		{"wrongname", sandbox.Rules{}, FaultProtocol, `describes itself as "tpm"`},
		{"raw", sandbox.Rules{ReadOnly: []string{"/"}}, FaultProtocol, `read_only[0]: the root folder "/"`},
		{"raw", sandbox.Rules{ReadWrite: []string{"etc/passwd"}}, FaultProtocol, "not absolute"},
		{"raw", sandbox.Rules{Exec: []string{"/usr/../bin"}}, FaultProtocol, "not clean"},
		{"raw", sandbox.Rules{Devices: []string{"/dev/tpm0\x00/etc"}}, FaultProtocol, "NUL"},
		{"raw", sandbox.Rules{ReadOnly: []string{"/" + strings.Repeat("a", 5000)}}, FaultProtocol, "over 4096"},
	}
	for _, tc := range cases {
		t.Run(tc.mode+tc.kind+tc.msg, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			install(t, dir, "declarer", "vendor")
			start := time.Now()
			got, err := declareIn(t, newDeclarer(t, 2*time.Second), dir, "vendor", map[string]any{"declare": tc.mode, "sandbox": tc.sandbox})
			var de *DeclareError
			if !errors.As(err, &de) || de.Kind != tc.kind || !strings.Contains(de.Msg, tc.msg) || got != nil {
				t.Fatalf("Declare = %+v, %v; want a %s error saying %q", got, err, tc.kind, tc.msg)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("took %s", d)
			}
			if left := waitFor(func() []int { return leftovers(dir) }); left != nil {
				t.Errorf("left running: %v", left)
			}
		})
	}
}

// TestDeclareCache: one declare run per executable and configuration; a
// changed configuration or a replaced executable declares again, a
// failure is remembered too (a run out of time is not: that says nothing
// of the executable), and a pin mismatch runs nothing.
func TestDeclareCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := install(t, dir, "declarer", "vendor")
	d := newDeclarer(t, 2*time.Second)
	a := map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/etc"}}}
	b := map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/usr"}}}
	step := func(cfg map[string]any, runs int64) *Declared {
		t.Helper()
		got, err := declareIn(t, d, dir, "vendor", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if d.Runs() != runs {
			t.Fatalf("%d declare runs, want %d", d.Runs(), runs)
		}
		return got
	}
	first := step(a, 1)
	step(a, 1)
	if got := step(b, 2); !reflect.DeepEqual(got.Sandbox.ReadOnly, []string{"/usr"}) {
		t.Errorf("declared %v for b", got.Sandbox)
	}
	step(a, 2)
	// Another executable (the same code, one byte longer) under the same
	// name declares again.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if got := step(a, 3); got.SHA256 == first.SHA256 {
		t.Error("the replaced executable has the old digest")
	}
	exit := map[string]any{"declare": "exit"}
	for range 2 {
		if _, err := declareIn(t, d, dir, "vendor", exit); err == nil {
			t.Fatal("a declare run that exited declared")
		}
	}
	if d.Runs() != 4 {
		t.Errorf("%d declare runs after an exit asked twice, want 4", d.Runs())
	}
	hang := map[string]any{"declare": "hang"}
	for range 2 {
		if _, err := declareIn(t, d, dir, "vendor", hang); err == nil {
			t.Fatal("a hanging declare run declared")
		}
	}
	if d.Runs() != 6 {
		t.Errorf("%d declare runs after a hang asked twice, want 6 (a timeout is not remembered)", d.Runs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = d.Declare(ctx, dir, "vendor", strings.Repeat("0", 64), declareConfig(t, a))
	var de *DeclareError
	if !errors.As(err, &de) || de.Kind != FaultUntrusted || d.Runs() != 6 {
		t.Errorf("pinned to another digest: %v after %d runs, want untrusted and no run", err, d.Runs())
	}
	if _, err := declareIn(t, d, dir, "absent", a); !errors.As(err, &de) || de.Kind != FaultMissing {
		t.Errorf("no executable: %v, want missing", err)
	}
}

// BenchmarkDeclare is the cost of one declare run (the cache off): start
// through the launcher, confinement, Configure, the declaration, exit.
func BenchmarkDeclare(b *testing.B) {
	dir := b.TempDir()
	install(b, dir, "declarer", "vendor")
	d := newDeclarer(b, 0)
	before := cpuTimes(b)
	n := 0
	for i := 0; b.Loop(); i++ {
		n++
		cfg := declareConfig(b, map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/etc"}}, "read": []string{strings.Repeat("x", i%1000+1)}})
		if _, err := d.Declare(context.Background(), dir, "vendor", "", cfg); err != nil {
			b.Fatal(err)
		}
	}
	after := cpuTimes(b)
	b.ReportMetric(float64(after[0]-before[0])/float64(n)/1e6, "plugin-cpu-ms/op")
	b.ReportMetric(float64(after[1]-before[1])/float64(n)/1e6, "host-cpu-ms/op")
}

// cpuTimes is the CPU time (user + system) of the reaped child processes
// and of this process.
func cpuTimes(b *testing.B) [2]time.Duration {
	var out [2]time.Duration
	for i, who := range []int{syscall.RUSAGE_CHILDREN, syscall.RUSAGE_SELF} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		out[i] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return out
}

// TestStaleDeclaration: a plugin whose grant was declared by another
// executable than the one that runs says so in every result, with both
// digests; the daemon's notices ride along; the plugin still measures.
func TestStaleDeclaration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := install(t, dir, "good", "cur")
	install(t, dir, "good", "old")
	sum := sha256.Sum256(mustRead(t, path))
	cur := hex.EncodeToString(sum[:])
	notice := sdk.Finding{Code: CodeSandbox, Severity: sdk.SeverityInfo, Subject: "cur", Message: "from the daemon"}
	hs := newOnDemandHarness(t, Options{Dir: dir, Plugins: []Spec{
		{Name: "cur", Enabled: true, DeclaredSHA256: cur, Notices: []sdk.Finding{notice}},
		{Name: "old", Enabled: true, DeclaredSHA256: strings.Repeat("0", 64)},
	}})
	got := hs.measure()
	var sandboxCodes []string
	for _, f := range got["cur"].Findings {
		if f.Code == CodeSandbox {
			sandboxCodes = append(sandboxCodes, f.Message)
		}
	}
	if len(sandboxCodes) != 1 || sandboxCodes[0] != "from the daemon" || got["cur"].Fault != "" {
		t.Errorf("cur: %+v, want its measurement and the daemon's notice only", got["cur"])
	}
	var stale []string
	for _, f := range got["old"].Findings {
		if f.Code == CodeSandbox {
			stale = append(stale, f.Message)
		}
	}
	if len(stale) != 1 || !strings.Contains(stale[0], "sha256 "+strings.Repeat("0", 64)+", now "+cur) || got["old"].Fault != "" {
		t.Errorf("old: %+v, want its measurement and one stale-declaration finding", got["old"])
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDeclareSameBytesTwoNames: the same executable installed under two
// names, with the same configuration, is two plugins: each gets the
// declaration it makes under its own name, in memory and from the cache
// file, never the other's (and with it the other's grant).
func TestDeclareSameBytesTwoNames(t *testing.T) {
	t.Parallel()
	dir, cache := t.TempDir(), t.TempDir()
	if err := os.Chmod(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	install(t, dir, "declarer", "first")
	install(t, dir, "declarer", "second")
	cfg := map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/etc"}}}
	secret := []byte("0123456789abcdef0123456789abcdef")
	for round, d := range []*Declarer{
		NewDeclarer(DeclarerOptions{Launcher: launcher(t), CacheDir: cache, CacheSecret: secret}),
		NewDeclarer(DeclarerOptions{Launcher: launcher(t), CacheDir: cache, CacheSecret: secret}), // from the file
	} {
		for _, name := range []string{"first", "second"} {
			got, err := declareIn(t, d, dir, name, cfg)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, name, err)
			}
			if got.Name != name || got.Description.Name != name {
				t.Fatalf("round %d: %s got the declaration of %q (described as %q)", round, name, got.Name, got.Description.Name)
			}
		}
		if err := d.Save(); err != nil {
			t.Fatal(err)
		}
		if round == 1 && d.Runs() != 0 {
			t.Errorf("%d declare runs with both declarations in the cache file, want 0", d.Runs())
		}
	}
}
