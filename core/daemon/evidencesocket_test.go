package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"github.com/secure-ai/runtime-attestor/policy"
)

// TestEvidenceSocketReach: below Landlock ABI 9 an evidence_tpm_socket is
// refused while any plugin's grant lets it connect (a Unix socket or a TCP
// port) without listing that socket; a plugin granted nothing to connect
// to has no connect(2) at all, and from ABI 9 on Landlock confines the
// rest.
func TestEvidenceSocketReach(t *testing.T) {
	t.Parallel()
	const sock = "/run/swtpm/evidence.sock"
	cases := []struct {
		name   string
		socket string
		grants map[string]sandbox.Rules
		abi    int
		want   string // "" = accepted
	}{
		{"no evidence socket", "", map[string]sandbox.Rules{"vendor": {ConnectTCP: []uint16{443}}}, 7, ""},
		{"nobody may connect", sock, map[string]sandbox.Rules{"vendor": {ReadOnly: []string{"/etc"}}, "binaries": {}}, 7, ""},
		{"a TCP client below ABI 9", sock, map[string]sandbox.Rules{"vendor": {ConnectTCP: []uint16{443}}}, 7,
			"evidence_tpm_socket: /run/swtpm/evidence.sock is reachable by plugin vendor"},
		{"a D-Bus client below ABI 9", sock, map[string]sandbox.Rules{"ostree": {UnixSockets: []string{"/run/dbus/system_bus_socket"}}, "kernel": {}}, 8,
			"by plugin ostree: its grant lets it connect"},
		{"no Landlock at all", sock, map[string]sandbox.Rules{"a": {ConnectTCP: []uint16{1}}, "b": {UnixSockets: []string{"/x"}}}, 0,
			"by plugin a, b"},
		{"granted the evidence socket itself", sock, map[string]sandbox.Rules{"tpm": {UnixSockets: []string{sock}}}, 7, ""},
		{"Landlock ABI 9 confines them", sock, map[string]sandbox.Rules{"vendor": {ConnectTCP: []uint16{443}, UnixSockets: []string{"/x"}}}, 9, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := policy.Default()
			p.EvidenceTPMSocket = c.socket
			err := evidenceSocketReach(p, c.grants, c.abi)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q, want %q in it", err, c.want)
			}
		})
	}
}

// TestEvidenceSocketRefusedForConnectingPlugin: the real daemon with an
// evidence_tpm_socket and a third-party plugin granted a Unix socket to
// connect to (a D-Bus socket) does not start below Landlock ABI 9, and says why and what to
// do; from ABI 9 on it starts.
func TestEvidenceSocketRefusedForConnectingPlugin(t *testing.T) {
	t.Parallel()
	e := daemontest.New(t, daemontest.Options{})
	e.InstallTestPlugin("good", "vendor")
	tpm := swtpmtest.Start(t)
	e.EditPolicy(func(doc map[string]any) {
		doc["evidence_tpm_socket"] = tpm.Socket
		plugins, _ := doc["plugins"].(map[string]any)
		plugins["vendor"] = map[string]any{"sandbox": map[string]any{"unix_sockets": []string{"/run/dbus/system_bus_socket"}}}
	})
	if sandbox.ABI() >= unixSocketABI {
		p := e.Start()
		p.Stop()
		return
	}
	p := e.StartNoWait()
	code := p.Wait(30 * time.Second)
	msg := p.Stderr()
	for _, want := range []string{"evidence_tpm_socket: " + filepath.Clean(tpm.Socket) + " is reachable by plugin vendor", "evidence_tpm_device", "Landlock ABI"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q:\n%s", want, msg)
		}
	}
	if code != ExitNoRun {
		t.Errorf("exit %d, want %d", code, ExitNoRun)
	}
	if _, err := os.Stat(e.AuditPath); err == nil {
		t.Errorf("a refused start wrote %s", e.AuditPath)
	}
}
