package pluginhost

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// secretsLayout is the daemon's own state as the shipped unit lays it out
// (RuntimeDirectory holding the key, the token and the host's private
// folder; the policy; the audit log), under a test folder.
type secretsLayout struct {
	root, runtime, key, token, policy, audit, auditDir, otherState string
}

func newSecretsLayout(t *testing.T) secretsLayout {
	t.Helper()
	root := t.TempDir()
	l := secretsLayout{
		root:       root,
		runtime:    filepath.Join(root, "run", "secure-ai"),
		policy:     filepath.Join(root, "etc", "secure-ai", "policy", "attestation.yaml"),
		auditDir:   filepath.Join(root, "var", "lib", "secure-ai", "logs"),
		otherState: filepath.Join(root, "var", "lib", "secure-ai", "runtime-attestor", "tpm-clock.json"),
	}
	l.key = filepath.Join(l.runtime, "attestation-hmac-key")
	l.token = filepath.Join(l.runtime, "attestor-api-token")
	l.audit = filepath.Join(l.auditDir, "runtime-attestor-audit.jsonl")
	for _, f := range []string{l.key, l.token, l.policy, l.audit, l.otherState} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// attempts decodes a hostile plugin's outcomes.
func attempts(t *testing.T, r Result) map[string]string {
	t.Helper()
	var out map[string]string
	if err := json.Unmarshal(r.Measurements["attempts"], &out); err != nil || len(out) == 0 {
		t.Fatalf("%s: no attempts in %+v (%v)", r.Name, r, err)
	}
	return out
}

// TestHostileConfined: plugins that attack the daemon from inside, one
// implementing no sdk.Sandboxer and one declaring the whole file system,
// each granted nothing by the policy, are refused everything: the secrets,
// the policy, the audit log, the run folder, another plugin's state and
// socket, the network and other programs. A good plugin beside them keeps
// working. Everything runs under the real host and launcher.
func TestHostileConfined(t *testing.T) {
	t.Parallel()
	l := newSecretsLayout(t)
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, "hostile", "hostile")
	install(t, dir, "hostilewide", "wide")
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	// good is resident, so its socket exists while the others attack it.
	goodGrant := sandbox.Rules{ReadOnly: []string{filepath.Dir(l.otherState)}}
	hs := newStrictHarness(t, Options{Dir: dir, SocketDir: l.runtime, Resident: true, Plugins: []Spec{{Name: "good", Enabled: true, Sandbox: goodGrant}}})
	hs.start()
	goodSock := socketOf(t, hs, "good")
	plan := cfg(
		"read", []string{l.key, l.token, l.policy, l.audit, l.otherState, "/etc/shadow", "/proc/1/environ", "/proc/self/environ", "/proc/" + strconv.Itoa(os.Getpid()) + "/environ"},
		"list", []string{l.runtime, hs.host.runDir, filepath.Dir(goodSock), dir, "/"},
		"append", []string{l.audit, l.key, "/proc/self/fd/4"},
		"write_fd", []int{4},
		"create", []string{filepath.Join(hs.host.runDir, "planted"), filepath.Join(l.runtime, "planted"), filepath.Join(l.auditDir, "planted"), filepath.Join(dir, FilePrefix+"planted"), "/tmp/planted-" + strconv.Itoa(os.Getpid())},
		"rename", [][2]string{{l.audit, l.audit + ".gone"}, {filepath.Join(dir, FilePrefix+"good"), filepath.Join(dir, FilePrefix+"tpm")}},
		"connect", []string{goodSock},
		"tcp", []string{tcp.Addr().String()},
		"udp", []string{udp.LocalAddr().String()},
		"exec", []string{"/bin/true", "/proc/self/exe"},
		"raw", true,
		"renice", true,
	)
	specs := []Spec{{Name: "hostile", Enabled: true, ConfigJSON: plan}, {Name: "wide", Enabled: true, ConfigJSON: plan}}
	hs.host.mu.Lock()
	for _, s := range specs {
		hs.host.plugins[s.Name] = &plugin{name: s.Name, spec: s, listed: true, path: filepath.Join(dir, FilePrefix+s.Name)}
	}
	hs.host.mu.Unlock()
	rs := hs.measure()
	wantGood(t, rs, "good")
	for _, name := range []string{"hostile", "wide"} {
		r := rs[name]
		if r.Fault != "" {
			t.Fatalf("%s: fault %s %v", name, r.Fault, r.Findings)
		}
		t.Logf("%s: %v", name, attempts(t, r))
		for what, outcome := range attempts(t, r) {
			if outcome == "ok" {
				t.Errorf("%s: %s: %s, want refused", name, what, outcome)
			}
		}
		// Granted no socket, the plugin has no connect(2) at all: refused
		// by seccomp whatever the Landlock ABI, before any handshake.
		if o := attempts(t, r)["connect "+goodSock]; !strings.Contains(o, "operation not permitted") {
			t.Errorf("%s: connect %s: %q, want operation not permitted", name, goodSock, o)
		}
	}
	for _, f := range []string{filepath.Join(hs.host.runDir, "planted"), filepath.Join(l.runtime, "planted"), filepath.Join(dir, FilePrefix+"planted"), filepath.Join(dir, FilePrefix+"tpm")} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s exists", f)
		}
	}
	if b, _ := os.ReadFile(l.audit); string(b) != "secret\n" {
		t.Errorf("audit log is now %q", b)
	}
	_ = udp.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := udp.ReadFrom(make([]byte, 16)); err == nil {
		t.Errorf("a plugin sent a %d-byte datagram", n)
	}
	// The good plugin still answers after the attacks on its socket.
	wantGood(t, hs.measure(), "good")
}

// socketOf returns the path of name's go-plugin socket.
func socketOf(t *testing.T, hs *harness, name string) string {
	t.Helper()
	in := hs.host.plugin(name).cur.Load()
	ents, err := os.ReadDir(in.sock)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s's socket folder %s: %v %v", name, in.sock, ents, err)
	}
	return filepath.Join(in.sock, ents[0].Name())
}

// TestSwapBetweenVerifyAndStart: a different, working plugin binary is
// renamed over a plugin's file after the host verified it and before it
// started it. The host executes the descriptor it verified, so the bytes it
// hashed run and the swapped-in binary never does; at the next attestation
// the changed identity is noticed: refused when pinned, restarted on the
// new binary when not.
func TestSwapBetweenVerifyAndStart(t *testing.T) {
	t.Parallel()
	for _, pinned := range []bool{true, false} {
		t.Run(map[bool]string{true: "pinned", false: "unpinned"}[pinned], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := install(t, dir, "good", "victim")
			sum := sha256File(t, path)
			// The impostor writes started-victim beside itself when it runs.
			impostor := install(t, t.TempDir(), "marker", "victim")
			spec := Spec{Name: "victim", Enabled: true}
			if pinned {
				spec.SHA256 = sum
			}
			hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{spec}})
			swapped := false
			hs.host.afterVerify = func(p *plugin) {
				if !swapped {
					swapped = true
					if err := os.Rename(impostor, p.path); err != nil {
						t.Error(err)
					}
				}
			}
			hs.start()
			if !swapped {
				t.Fatal("the swap did not happen")
			}
			// What started is the verified binary: good, not the marker.
			if p := hs.host.plugin("victim"); p.sha != sum || p.inst == nil || len(p.desc.Findings) != 1 {
				t.Fatalf("started sha256 %s, want the verified %s", p.sha, sum)
			}
			if got := markerStarts(t, dir, "victim"); got != nil {
				t.Fatalf("the swapped-in binary ran: pids %v", got)
			}
			rs := hs.measure()
			if pinned {
				wantFault(t, rs, "victim", FaultUntrusted, CodeUntrusted, "not the pinned "+sum)
				if got := markerStarts(t, dir, "victim"); got != nil {
					t.Errorf("the swapped-in binary ran after the pin check: pids %v", got)
				}
				return
			}
			wantGood(t, rs, "victim")
			if got := markerStarts(t, dir, "victim"); len(got) != 1 || rs["victim"].SHA256 == sum {
				t.Errorf("the unpinned plugin was not restarted on its new binary: starts %v, sha256 %s", got, rs["victim"].SHA256)
			}
		})
	}
}

// TestRaceExecPath: a plugin that watches the plugin and run folders and
// keeps trying to put itself where the host executes another plugin (a
// link in the run folder, a rename over the victim's file) while that
// plugin is restarted again and again has nothing to race: every attempt
// is refused, and the victim that runs is always the verified one.
func TestRaceExecPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "racer", "racer")
	victim := install(t, dir, "good", "victim")
	sum := sha256File(t, victim)
	runtime := t.TempDir()
	hs := newStrictHarness(t, Options{Dir: dir, SocketDir: runtime, MaxParallel: 2, Plugins: []Spec{
		{Name: "victim", Enabled: true, SHA256: sum},
	}})
	hs.start()
	hs.host.mu.Lock()
	hs.host.plugins["racer"] = &plugin{name: "racer", listed: true, path: filepath.Join(dir, FilePrefix+"racer"), spec: Spec{
		Name: "racer", Enabled: true, ConfigJSON: cfg("run_dir", hs.host.runDir, "plugin_dir", dir, "victim", "victim", "duration_ms", 1500),
	}}
	hs.host.mu.Unlock()
	for round := range 3 {
		// On demand: the victim is started afresh while the racer races.
		hs.host.opts.Resident = false
		rs := hs.measure()
		wantGood(t, rs, "victim")
		if rs["victim"].SHA256 != sum {
			t.Errorf("round %d: victim sha256 %s, want %s", round, rs["victim"].SHA256, sum)
		}
		var st struct {
			Attempts, Successes int
			Errors              map[string]string
		}
		if err := json.Unmarshal(rs["racer"].Measurements["race"], &st); err != nil || st.Attempts == 0 {
			t.Fatalf("round %d: racer %+v (%v)", round, rs["racer"], err)
		}
		if st.Successes != 0 {
			t.Errorf("round %d: %d of %d attempts worked: %v", round, st.Successes, st.Attempts, st.Errors)
		}
		if round == 0 {
			t.Logf("racer: %d attempts, first errors %v", st.Attempts, st.Errors)
		}
	}
	if sha256File(t, victim) != sum {
		t.Error("the victim's file changed")
	}
}

// TestConfinementReported: every measured result says what confined the
// plugin; on a kernel without Landlock (simulated) it says so, and each
// plugin's result carries a core.plugin_unconfined finding.
func TestConfinementReported(t *testing.T) {
	t.Parallel()
	for _, abi := range []int{sandbox.ABI(), 0} {
		if abi == 0 && sandbox.ABI() == 0 {
			continue
		}
		dir := t.TempDir()
		install(t, dir, "good", "good")
		hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "good", Enabled: true}}})
		hs.host.landlockABI = func() int { return abi }
		hs.start()
		r := hs.measure()["good"]
		codes := map[string]bool{}
		for _, f := range r.Findings {
			codes[f.Code] = true
		}
		switch {
		case abi > 0 && (!strings.HasPrefix(r.Confinement, "landlock v") || codes[CodeUnconfined]):
			t.Errorf("ABI %d: confinement %q, findings %v", abi, r.Confinement, r.Findings)
		case abi == 0 && (!strings.Contains(r.Confinement, "no landlock") || !codes[CodeUnconfined] || !codes["good.ok"]):
			t.Errorf("no Landlock: confinement %q, findings %v; want it said, with core.plugin_unconfined", r.Confinement, r.Findings)
		}
	}
}

// TestHostileWithTCPGrant: a plugin granted one TCP port to connect to
// gets TCP and nothing else of the network: no UDP, no raw or SCTP socket,
// and no MPTCP socket, with which it could bind any port (the daemon's
// included) past Landlock, which confines TCP ports only.
func TestHostileWithTCPGrant(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "hostile", "hostile")
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	port := uint16(tcp.Addr().(*net.TCPAddr).Port)
	free := freeTCPAddr(t)
	other, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	plan := cfg("tcp", []string{tcp.Addr().String()}, "udp", []string{udp.LocalAddr().String()},
		"bind_mptcp", []string{free}, "raw", true, "fastopen", []string{other.Addr().String()})
	hs := newStrictHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "hostile", Enabled: true, ConfigJSON: plan,
		Sandbox: sandbox.Rules{ConnectTCP: []uint16{port}}}}})
	hs.start()
	r := hs.measure()["hostile"]
	if r.Fault != "" {
		t.Fatalf("fault %s %v", r.Fault, r.Findings)
	}
	got := attempts(t, r)
	t.Logf("attempts: %v", got)
	if got["tcp "+tcp.Addr().String()] != "ok" {
		t.Errorf("the granted TCP port: %q, want ok", got["tcp "+tcp.Addr().String()])
	}
	refused := []string{"udp " + udp.LocalAddr().String(), "fastopen " + other.Addr().String(), "socket raw", "socket sctp", "socket dgram", "socket unix dgram", "socket unix seqpacket"}
	if mptcpWorks() {
		refused = append(refused, "bind_mptcp "+free)
	} else {
		t.Log("this kernel has no MPTCP: its refusal proves nothing here")
	}
	for _, what := range refused {
		if o := got[what]; !strings.Contains(o, "operation not permitted") {
			t.Errorf("%s: %q, want operation not permitted", what, o)
		}
	}
}

// freeTCPAddr is a loopback address whose port nobody listens on.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// mptcpWorks reports whether this process, unconfined, can open an MPTCP
// socket.
func mptcpWorks() bool {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 262)
	if err != nil {
		return false
	}
	syscall.Close(fd)
	return true
}

// TestDeclaredAsGrantedNarrowsSyscalls: a plugin whose grant is exactly
// its declaration is not confined again with Landlock (the launcher's
// domain is the same), but still installs its own seccomp filter, the
// program the host assembled: it cannot clear its parent-death signal
// (to outlive the daemon) nor execute a memory file it wrote (which
// Landlock does not check).
func TestDeclaredAsGrantedNarrowsSyscalls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "hostiledeclared", "declared")
	declared := sandbox.Rules{ReadOnly: []string{"/etc/os-release"}}
	// debug: the plugin logs how it narrowed itself at that level.
	hs := newStrictHarness(t, Options{Dir: dir, LogLevel: "debug", Plugins: []Spec{{Name: "declared", Enabled: true, Sandbox: declared,
		ConfigJSON: cfg("narrowing", true, "read", []string{"/etc/os-release", "/etc/passwd"})}}})
	hs.start()
	r := hs.measure()["declared"]
	if r.Fault != "" {
		t.Fatalf("fault %s %v", r.Fault, r.Findings)
	}
	got := attempts(t, r)
	for what, want := range map[string]string{
		"prctl pdeathsig":      "operation not permitted",
		"execveat memfd":       "execveat: operation not permitted",
		"read /etc/passwd":     "permission denied",
		"read /etc/os-release": "ok",
	} {
		if !strings.Contains(got[what], want) {
			t.Errorf("%s: %q, want %q", what, got[what], want)
		}
	}
	if logs := hs.logs.String(); !strings.Contains(logs, "filter=\"host's program\"") {
		t.Errorf("the plugin did not narrow with the host's program:\n%s", logs)
	}
}
