package tpm

import (
	"context"
	"encoding/json"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestSandboxDeclared(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name string
		cfg  string
		want sdk.Sandbox
	}{
		{"default: the resource manager and the state folder", `{}`,
			sdk.Sandbox{ReadOnly: []string{"/run/log/systemd/tpm2-measure.log", "/sys/kernel/security/tpm0/binary_bios_measurements"}, Devices: []string{"/dev/tpmrm0"}, ReadWrite: []string{"/var/lib/secure-ai/runtime-attestor"}}},
		{"another device", `{"device":"/dev/tpm0","require_tpm":true}`,
			sdk.Sandbox{ReadOnly: []string{"/run/log/systemd/tpm2-measure.log", "/sys/kernel/security/tpm0/binary_bios_measurements"}, Devices: []string{"/dev/tpm0"}, ReadWrite: []string{"/var/lib/secure-ai/runtime-attestor"}}},
		{"swtpm instead of a device", `{"swtpm_socket":"/run/swtpm/tpm.sock"}`,
			sdk.Sandbox{ReadOnly: []string{"/run/log/systemd/tpm2-measure.log", "/sys/kernel/security/tpm0/binary_bios_measurements"}, UnixSockets: []string{"/run/swtpm/tpm.sock"}, ReadWrite: []string{"/var/lib/secure-ai/runtime-attestor"}}},
		{"another state file: its folder, for the rename", `{"state_file":"/srv/attestor/state/clock.json"}`,
			sdk.Sandbox{ReadOnly: []string{"/run/log/systemd/tpm2-measure.log", "/sys/kernel/security/tpm0/binary_bios_measurements"}, Devices: []string{"/dev/tpmrm0"}, ReadWrite: []string{"/srv/attestor/state"}}},
		{"no state file", `{"state_file":""}`, sdk.Sandbox{ReadOnly: []string{"/run/log/systemd/tpm2-measure.log", "/sys/kernel/security/tpm0/binary_bios_measurements"}, Devices: []string{"/dev/tpmrm0"}}},
		{"a state file in / grants nothing there", `{"state_file":"/tpm-clock.json"}`, sdk.Sandbox{ReadOnly: []string{"/run/log/systemd/tpm2-measure.log", "/sys/kernel/security/tpm0/binary_bios_measurements"}, Devices: []string{"/dev/tpmrm0"}}},
		{"the logs and the boot reference, each file alone", `{"state_file":"","event_log":"/srv/bios.log","userspace_log":"","boot_reference":"/etc/secure-ai/policy/boot-reference.yaml"}`,
			sdk.Sandbox{ReadOnly: []string{"/etc/secure-ai/policy/boot-reference.yaml", "/srv/bios.log"}, Devices: []string{"/dev/tpmrm0"}}},
	} {
		sb, ok, err := sdk.DeclaredSandbox(context.Background(), New(), []byte(tc.cfg))
		if err != nil || !ok {
			t.Fatalf("Test %d (%s): DeclaredSandbox = %v, %v", i, tc.name, ok, err)
		}
		if !reflect.DeepEqual(sb, tc.want) {
			t.Errorf("Test %d (%s): declared %+v\nwant     %+v", i, tc.name, sb, tc.want)
		}
		if err := sandbox.Rules(sb).Validate(); err != nil {
			t.Errorf("Test %d (%s): Validate: %v", i, tc.name, err)
		}
	}
}

// TestSandboxedSubprocess: the real plugin, started as the daemon starts
// it, confines itself to the swtpm socket and its state folder and still
// reads, quotes and verifies the PCRs and keeps the clock state, which the
// next process reads; reconfigured to a state folder or a device outside
// the sandbox afterwards, it cannot write or open them, while a fresh
// process can. With the default device, missing on a
// machine without a TPM, it reports the TPM unavailable.
func TestSandboxedSubprocess(t *testing.T) {
	sw := swtpmtest.Start(t)
	zero := make([]byte, 32)
	expected := map[string]string{}
	sw.Do(t, func(tpm transport.TPM) {
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

	stateDir := t.TempDir()
	statePath := filepath.Join(stateDir, "tpm-clock.json")
	swtpmCfg := cfg(map[string]any{"require_tpm": true, "swtpm_socket": sw.Socket, "expected_pcrs": expected, "state_file": statePath, "event_log": ""})
	p := plugintest.Start(t, "tpm")
	p.MustConfigure(t, swtpmCfg)
	wm := p.MustMeasure(t)
	m := decodeResult(t, toResult(wm))
	if len(wm.Findings) != 0 || !m.available || !m.verified || m.quote == nil || !reflect.DeepEqual(m.pcrs, expected) {
		t.Fatalf("sandboxed swtpm measurement: %+v findings %+v", m, wm.Findings)
	}
	// The state file was written from inside the sandbox (temporary file,
	// rename, folder sync), and nothing else was left there.
	name := akNameOf(t, toResult(wm))
	if st := loadStateFile(t, statePath); st[name].clock.Clock != m.quote.Clock.Clock {
		t.Fatalf("state file %+v, want %s at %+v", st, name, m.quote.Clock)
	}
	if other := otherFiles(t, stateDir, "tpm-clock.json"); len(other) != 0 {
		t.Fatalf("left %v", other)
	}
	// The next attestation's process (on-demand plugins) reads the mark:
	// pushed ahead of the TPM, it is a rollback.
	editStateFile(t, statePath, func(st map[string]clockMark) {
		mk := st[name]
		mk.clock.Clock += 3_600_000
		st[name] = mk
	})
	next := plugintest.Start(t, "tpm")
	next.MustConfigure(t, swtpmCfg)
	if wm := next.MustMeasure(t); len(wm.Findings) != 1 || wm.Findings[0].Code != CodeClockRollback || !strings.Contains(wm.Findings[0].Message, "clock went back") {
		t.Fatalf("second process: findings %+v, want %s", wm.Findings, CodeClockRollback)
	}

	notATPM := cfg(map[string]any{"device": "/dev/zero"})
	fresh := plugintest.Start(t, "tpm")
	fresh.MustConfigure(t, notATPM)
	if wm := fresh.MustMeasure(t); len(wm.Findings) != 1 || wm.Findings[0].Code != CodeOpenFailed || !strings.Contains(wm.Findings[0].Message, "response header declares 0 bytes") {
		t.Fatalf("fresh process on /dev/zero: findings %+v, want the TPM answered zeros", wm.Findings)
	}

	absent := plugintest.Start(t, "tpm")
	missing := filepath.Join(t.TempDir(), "tpmrm0")
	absent.MustConfigure(t, cfg(map[string]any{"device": missing}))
	if wm := absent.MustMeasure(t); len(wm.Findings) != 1 || wm.Findings[0].Code != CodeUnavailable || wm.Findings[0].Subject != missing {
		t.Fatalf("missing device: findings %+v, want %s unavailable", wm.Findings, CodeUnavailable)
	}

	plugintest.NeedLandlock(t)
	// A state folder outside the sandbox: it cannot be written.
	outside := filepath.Join(t.TempDir(), "tpm-clock.json")
	p.MustConfigure(t, cfg(map[string]any{"require_tpm": true, "swtpm_socket": sw.Socket, "expected_pcrs": expected, "state_file": outside, "event_log": ""}))
	wm = p.MustMeasure(t)
	if f := toResult(wm).Find(CodeClockStateWriteFailed); len(wm.Findings) != 1 || len(f) != 1 || !strings.Contains(f[0].Message, "permission denied") {
		t.Fatalf("state folder outside the sandbox: findings %+v, want %s: permission denied", wm.Findings, CodeClockStateWriteFailed)
	}
	p.MustConfigure(t, notATPM)
	wm = p.MustMeasure(t)
	if len(wm.Findings) != 1 || wm.Findings[0].Code != CodeOpenFailed || !strings.Contains(wm.Findings[0].Message, "permission denied") {
		t.Fatalf("device outside the sandbox: findings %+v, want open_failed: permission denied", wm.Findings)
	}
}
