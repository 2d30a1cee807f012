package tpm

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestSandboxDeclared(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name string
		cfg  string
		want sdk.Sandbox
	}{
		{"default: the resource manager", `{}`, sdk.Sandbox{Devices: []string{"/dev/tpmrm0"}}},
		{"another device", `{"device":"/dev/tpm0","require_tpm":true}`, sdk.Sandbox{Devices: []string{"/dev/tpm0"}}},
		{"swtpm instead of a device", `{"swtpm_socket":"/run/swtpm/tpm.sock"}`, sdk.Sandbox{UnixSockets: []string{"/run/swtpm/tpm.sock"}}},
	} {
		sb, ok, err := sdk.DeclaredSandbox(context.Background(), New(), []byte(tc.cfg))
		if err != nil || !ok {
			t.Fatalf("Test %d (%s): DeclaredSandbox = %v, %v", i, tc.name, ok, err)
		}
		if !reflect.DeepEqual(sb, tc.want) {
			t.Errorf("Test %d (%s): declared %+v\nwant     %+v", i, tc.name, sb, tc.want)
		}
		if err := sb.Validate(); err != nil {
			t.Errorf("Test %d (%s): Validate: %v", i, tc.name, err)
		}
	}
}

// TestSandboxedSubprocess: the real plugin, started as the daemon starts
// it, confines itself to the swtpm socket and still reads, quotes and
// verifies the PCRs; reconfigured to a device afterwards, it cannot open
// it, while a fresh process can. With the default device, missing on a
// machine without a TPM, it reports the TPM unavailable.
func TestSandboxedSubprocess(t *testing.T) {
	sw := startSwtpm(t)
	zero := make([]byte, 32)
	expected := map[string]string{}
	sw.do(t, func(tpm transport.TPM) {
		for p := range 8 {
			ev := digestOf("sandboxed boot event for PCR " + strconv.Itoa(p))
			extend(t, tpm, p, ev)
			expected[strconv.Itoa(p)] = hexs(extended(zero, ev))
		}
	})
	cfg := func(c map[string]any) []byte {
		b, _ := json.Marshal(c)
		return b
	}

	p := startSandboxed(t, "tpm")
	p.configure(t, cfg(map[string]any{"require_tpm": true, "swtpm_socket": sw.sock, "expected_pcrs": expected}))
	wm := p.measure(t)
	m := decodeResult(t, toResult(wm))
	if len(wm.Findings) != 0 || !m.available || !m.verified || m.quote == nil || !reflect.DeepEqual(m.pcrs, expected) {
		t.Fatalf("sandboxed swtpm measurement: %+v findings %+v", m, wm.Findings)
	}

	notATPM := cfg(map[string]any{"device": "/dev/zero"})
	fresh := startSandboxed(t, "tpm")
	fresh.configure(t, notATPM)
	if wm := fresh.measure(t); len(wm.Findings) != 1 || wm.Findings[0].Code != CodeOpenFailed || !strings.Contains(wm.Findings[0].Message, "response header declares 0 bytes") {
		t.Fatalf("fresh process on /dev/zero: findings %+v, want the TPM answered zeros", wm.Findings)
	}

	absent := startSandboxed(t, "tpm")
	missing := filepath.Join(t.TempDir(), "tpmrm0")
	absent.configure(t, cfg(map[string]any{"device": missing}))
	if wm := absent.measure(t); len(wm.Findings) != 1 || wm.Findings[0].Code != CodeUnavailable || wm.Findings[0].Subject != missing {
		t.Fatalf("missing device: findings %+v, want %s unavailable", wm.Findings, CodeUnavailable)
	}

	needLandlock(t)
	p.configure(t, notATPM)
	wm = p.measure(t)
	if len(wm.Findings) != 1 || wm.Findings[0].Code != CodeOpenFailed || !strings.Contains(wm.Findings[0].Message, "permission denied") {
		t.Fatalf("device outside the sandbox: findings %+v, want open_failed: permission denied", wm.Findings)
	}
}
