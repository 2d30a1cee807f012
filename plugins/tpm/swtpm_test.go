package tpm

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// TestSimulatorNotLinked keeps the cgo simulator out of the production
// plugin: it belongs to the tests only.
func TestSimulatorNotLinked(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", "./cmd/attestor-check-tpm")
	cmd.Dir = testbin.Root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	found := false
	for _, d := range deps {
		if strings.Contains(d, "go-tpm-tools") {
			t.Errorf("attestor-check-tpm links %s", d)
		}
		found = found || d == "github.com/secure-ai/runtime-attestor/plugins/tpm"
	}
	if !found {
		t.Fatalf("go list -deps did not list the plugin package:\n%s", out)
	}
}

func toResult(m *wire.Measurement) *sdktest.Result {
	return &sdktest.Result{Measurements: m.Measurements, Findings: m.Findings}
}

// pluginClient runs the real attestor-check-tpm binary as the daemon
// does: through the launcher (this test binary, which sdktest makes one),
// confined to grant before its first instruction, its socket in a 0700
// folder with each side checking the other with SO_PEERCRED.
func pluginClient(t *testing.T, grant sandbox.Rules) (*checkrpc.Client, sdk.Description) {
	t.Helper()
	bin := testbin.Plugin(t, t.TempDir(), "tpm")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sock, err := os.MkdirTemp("", "tpm-plugin-") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	lp := launch.Plugin{Launcher: self, Binary: f, Argv0: bin, Rules: grant, SocketDir: sock,
		LogLevel: "warn", StartTimeout: 30 * time.Second, Stderr: os.Stderr}
	client, _, rules, err := lp.Client()
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	defer rules.Close()
	release, err := launch.StartLocked(client) // the thread it dies with lives as long as it
	t.Cleanup(func() { client.Kill(); release() })
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	wc, err := launch.Dispense(client)
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := wc.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return wc, d
}

func TestSwtpmEndToEnd(t *testing.T) {
	sw := swtpmtest.Start(t)

	// Play firmware: measure a few boot events into PCRs 0-7, and compute
	// the values they must hold from the events alone.
	zero := make([]byte, 32)
	expected := map[string]string{}
	sw.Do(t, func(tpm transport.TPM) {
		for p := range 8 {
			ev := digestOf("boot event for PCR " + strconv.Itoa(p))
			extend(t, tpm, p, ev)
			expected[strconv.Itoa(p)] = hexs(extended(zero, ev))
		}
	})

	statePath := filepath.Join(t.TempDir(), "tpm-clock.json")
	grant := sandbox.Rules{UnixSockets: []string{sw.Socket}, ReadWrite: []string{filepath.Dir(statePath)}}
	wc, d := pluginClient(t, grant)
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 20*time.Second)
	}
	configure := func(cfg map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(cfg)
		ctx, cancel := call()
		defer cancel()
		if err := wc.Configure(ctx, raw); err != nil {
			t.Fatalf("configure: %v", err)
		}
	}
	measure := func() (*wire.Measurement, measured) {
		t.Helper()
		ctx, cancel := call()
		defer cancel()
		m, err := wc.Measure(ctx, d, newNonce(t))
		if err != nil {
			t.Fatalf("measure: %v", err)
		}
		r := toResult(m)
		return m, decodeResult(t, r)
	}

	configure(map[string]any{"require_tpm": true, "swtpm_socket": sw.Socket, "expected_pcrs": expected, "state_file": statePath, "event_log": ""})
	// Twice: the second measurement reconnects and reuses the AK, which
	// swtpm keeps between connections.
	for i := range 2 {
		wm, m := measure()
		if len(wm.Findings) != 0 {
			t.Fatalf("measurement %d: findings %+v", i, wm.Findings)
		}
		if !m.available || !m.verified || m.quote == nil || m.quote.Clock == nil {
			t.Fatalf("measurement %d: %+v", i, m)
		}
		for p, want := range expected {
			if m.pcrs[p] != want {
				t.Errorf("measurement %d: PCR %s = %s, want %s", i, p, m.pcrs[p], want)
			}
		}
	}

	// Between measurements the plugin holds no connection, so others can
	// use swtpm: something extends PCR 4 and the next quote shows it.
	sw.Do(t, func(tpm transport.TPM) { extend(t, tpm, 4, digestOf("unexpected boot loader")) })
	wm, m := measure()
	r := toResult(wm)
	only(t, r, map[string]sdk.Severity{CodePCRMismatch: sdk.SeverityHigh})
	if r.Findings[0].Subject != "pcr:4" || m.verified {
		t.Fatalf("finding %+v, verified %v", r.Findings[0], m.verified)
	}

	// Attestations with on-demand plugins: each one a new plugin process,
	// sharing only the state file. The TPM is cleared in between (its
	// reset count back to zero): the next process reports the rollback.
	onDemand := func() *wire.Measurement {
		t.Helper()
		wc, d := pluginClient(t, grant)
		raw, _ := json.Marshal(map[string]any{"swtpm_socket": sw.Socket, "state_file": statePath, "event_log": ""})
		ctx, cancel := call()
		defer cancel()
		if err := wc.Configure(ctx, raw); err != nil {
			t.Fatalf("configure: %v", err)
		}
		m, err := wc.Measure(ctx, d, newNonce(t))
		if err != nil {
			t.Fatalf("measure: %v", err)
		}
		return m
	}
	if wm := onDemand(); len(wm.Findings) != 0 {
		t.Fatalf("new plugin process: findings %+v", wm.Findings)
	}
	sw.Do(t, func(tpm transport.TPM) {
		if _, err := (tpm2.Clear{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)}}).Execute(tpm); err != nil {
			t.Fatalf("TPM2_Clear: %v", err)
		}
	})
	wm = onDemand()
	only(t, toResult(wm), map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
	if m = decodeResult(t, toResult(wm)); m.verified {
		t.Fatal("tpm_quote_verified after a rollback")
	}

	// swtpm stops: a required TPM is gone.
	configure(map[string]any{"require_tpm": true, "swtpm_socket": filepath.Join(t.TempDir(), "gone.sock")})
	wm, m = measure()
	only(t, toResult(wm), map[string]sdk.Severity{CodeUnavailable: sdk.SeverityCritical})
	if m.available || m.verified {
		t.Fatalf("%+v", m)
	}

	// A refused configuration reaches the host as a ConfigError.
	ctx, cancel := call()
	defer cancel()
	err := wc.Configure(ctx, []byte(`{"swtpm_socket": "relative.sock"}`))
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "swtpm_socket") {
		t.Fatalf("error %v, want a ConfigError naming swtpm_socket", err)
	}
}
