package pluginhost

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// TestFaults runs every misbehaving test plugin under the real host next
// to the good plugin: the fault is the right finding, the good plugin's
// result is intact, and no process is left behind, after the fault and
// after Close.
func TestFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind    string
		fault   string // "" = the plugin must be fine
		code    string
		msg     string
		timeout time.Duration
		start   time.Duration
		live    bool // the faulty plugin keeps running after its fault
	}{
		{kind: "exitstart", fault: FaultCrashed, code: CodeCrashed, msg: "exited before the handshake (exit status 3)"},
		{kind: "exitmid", fault: FaultCrashed, code: CodeCrashed, msg: "exit status 4"},
		{kind: "panicmeasure", fault: FaultFailed, code: CodeFailed, msg: "deliberate panic in Measure", live: true},
		{kind: "panicgoroutine", fault: FaultCrashed, code: CodeCrashed, msg: "exit status 2"},
		{kind: "hang", fault: FaultTimeout, code: CodeTimeout, msg: "no answer within 500ms", timeout: 500 * time.Millisecond},
		{kind: "nohandshake", fault: FaultTimeout, code: CodeTimeout, msg: "no handshake within the 3s start timeout", start: 3 * time.Second},
		{kind: "badcookie", fault: FaultProtocol, code: CodeProtocol, msg: "magic cookie mismatch"},
		{kind: "badversion", fault: FaultProtocol, code: CodeProtocol, msg: "protocol version"},
		{kind: "stdoutgarbage", fault: FaultProtocol, code: CodeProtocol, msg: "not a go-plugin handshake"},
		{kind: "oversize", fault: FaultProtocol, code: CodeProtocol, msg: "larger than the 4194304-byte limit", live: true},
		{kind: "badcode", fault: FaultProtocol, code: CodeProtocol, msg: `"kernel.lockdown_off" does not start with the plugin's name`, live: true},
		{kind: "wrongname", fault: FaultProtocol, code: CodeProtocol, msg: `describes itself as "kernel"`},
		{kind: "slow"},
		{kind: "stdoutafter"},
		{kind: "badlog"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			install(t, dir, "good", "good")
			install(t, dir, tc.kind, tc.kind)
			hs := newHarness(t, Options{
				Dir:          dir,
				StartTimeout: tc.start,
				Plugins: []Spec{
					{Name: "good", Enabled: true},
					{Name: tc.kind, Enabled: true, Timeout: tc.timeout},
				},
			})
			hs.start()
			rs := hs.measure()
			if len(rs) != 2 {
				t.Fatalf("results for %v, want good and %s", keys(rs), tc.kind)
			}
			wantGood(t, rs, "good")
			if rs["good"].Duration <= 0 {
				t.Errorf("good: duration %s", rs["good"].Duration)
			}
			if tc.fault == "" {
				wantGood(t, rs, tc.kind)
			} else {
				wantFault(t, rs, tc.kind, tc.fault, tc.code, tc.msg)
			}
			alive := hs.pidOf(tc.kind) != 0
			if want := tc.fault == "" || tc.live; alive != want {
				t.Errorf("%s running after its fault: %v, want %v", tc.kind, alive, want)
			}
			hs.onlyLive()
			// The host goes on: a second attestation is as good for good.
			wantGood(t, hs.measure(), "good")
			hs.onlyLive()
		})
	}
}

// TestStderrRelayedUnderPluginName: the SDK's log of a recovered panic is
// hclog JSON on the plugin's stderr; the host re-logs it under the
// plugin's name.
func TestStderrRelayedUnderPluginName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "panicmeasure", "panicky")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "panicky", Enabled: true}}})
	hs.start()
	wantFault(t, hs.measure(), "panicky", FaultFailed, CodeFailed, "panicked")
	hs.host.Close()
	logs := hs.logs.String()
	if !strings.Contains(logs, "[ERROR] pluginhost.panicky: check panicked") || !strings.Contains(logs, "panic=\"panicmeasure: deliberate panic in Measure\"") {
		t.Errorf("the plugin's error log is not relayed under its name:\n%s", logs)
	}
}

// TestConfigRefusedAtStart: a built-in plugin that refuses its
// configuration makes Start fail with a *ConfigError naming it.
func TestConfigRefusedAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, "refuseconfig", "refuser")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{
		{Name: "good", Enabled: true},
		{Name: "refuser", Enabled: true, Builtin: true, ConfigJSON: []byte(`{}`)},
	}})
	err := hs.host.Start(context.Background())
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Plugin != "refuser" || err.Error() != "plugins.refuser.config: mode: refused by the refuseconfig test plugin" {
		t.Fatalf("Start = %v, want the refuser's *ConfigError", err)
	}
	if hs.pidOf("refuser") != 0 {
		t.Error("the plugin that refused its config is still running")
	}
	hs.onlyLive()
}

// TestConfigureFailed: Configure failing with a plain error (or the SDK
// failing to apply the check's sandbox) is not a policy error: Start
// succeeds and the plugin reports core.plugin_config.
func TestConfigureFailed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, "refuseconfig", "failer")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{
		{Name: "good", Enabled: true},
		{Name: "failer", Enabled: true, ConfigJSON: cfg("plain_error", true)},
	}})
	hs.start()
	rs := hs.measure()
	wantGood(t, rs, "good")
	wantFault(t, rs, "failer", FaultConfig, CodeConfig, "configure failed: the device is busy")
	hs.onlyLive()
}

// TestThirdPartyConfigRefused: a plugin that is not a built-in and refuses
// its configuration never stops Start: it is a core.plugin_config finding
// at every attestation, and the other plugins measure.
func TestThirdPartyConfigRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, "refuseconfig", "vendor")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{
		{Name: "good", Enabled: true},
		{Name: "vendor", Enabled: true},
	}})
	if err := hs.host.Start(context.Background()); err != nil {
		t.Fatalf("Start = %v, want nil: a third-party plugin's configuration is not the daemon's to refuse", err)
	}
	rs := hs.measure()
	wantGood(t, rs, "good")
	wantFault(t, rs, "vendor", FaultConfig, CodeConfig, "refused its configuration: mode: refused by the refuseconfig test plugin")
}

// TestConfigRefusedAtRestart: a plugin that died is restarted at the next
// attestation and configured again; refusing then is core.plugin_config.
func TestConfigRefusedAtRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "refuseconfig", "refuser")
	flag := filepath.Join(t.TempDir(), "refuse")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{
		{Name: "refuser", Enabled: true, ConfigJSON: cfg("refuse_if_exists", flag)},
	}})
	hs.start()
	wantGood(t, hs.measure(), "refuser")
	old := procOf(t, hs.pidOf("refuser"))
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscallKill(old.pid); err != nil {
		t.Fatal(err)
	}
	hs.waitNoticed(old)
	wantFault(t, hs.measure(), "refuser", FaultConfig, CodeConfig, "refused its configuration: mode: refused")
	hs.onlyLive()
}

// TestDiedBetweenAttestations: a plugin killed while idle is restarted at
// the next attestation and answers.
func TestDiedBetweenAttestations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "good", Enabled: true}}})
	hs.start()
	old := procOf(t, hs.pidOf("good"))
	if err := syscallKill(old.pid); err != nil {
		t.Fatal(err)
	}
	hs.waitNoticed(old)
	wantGood(t, hs.measure(), "good")
	if pid := hs.pidOf("good"); pid == 0 || pid == old.pid {
		t.Errorf("plugin pid %d after restart (old %d)", pid, old.pid)
	}
	hs.onlyLive()
}
