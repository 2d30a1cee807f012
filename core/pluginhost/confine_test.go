package pluginhost

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk/sandbox"
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
		"append", []string{l.audit, l.key},
		"create", []string{filepath.Join(hs.host.runDir, "planted"), filepath.Join(l.runtime, "planted"), filepath.Join(l.auditDir, "planted"), filepath.Join(dir, FilePrefix+"planted"), "/tmp/planted-" + strconv.Itoa(os.Getpid())},
		"rename", [][2]string{{l.audit, l.audit + ".gone"}, {filepath.Join(dir, FilePrefix+"good"), filepath.Join(dir, FilePrefix+"tpm")}},
		"connect", []string{goodSock},
		"tcp", []string{tcp.Addr().String()},
		"udp", []string{udp.LocalAddr().String()},
		"exec", []string{"/bin/true", "/proc/self/exe"},
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
