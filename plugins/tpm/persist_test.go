package tpm

// The clock state file across plugin lifetimes. With resident_plugins:
// false (the default) the daemon starts the plugin for one attestation and
// stops it after; each attestation here is therefore a fresh check
// instance (simHarness), configured and measured once, sharing only the
// state file with the previous ones. These tests use the simulator and
// run one after another.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// loadStateFile parses the state file at path, failing the test when it
// does not parse.
func loadStateFile(t *testing.T, path string) map[string]clockMark {
	t.Helper()
	marks, err := readState(path)
	if err != nil {
		t.Fatalf("read state file: %v", err)
	}
	return marks
}

// editStateFile rewrites the state file at path through edit.
func editStateFile(t *testing.T, path string, edit func(map[string]clockMark)) {
	t.Helper()
	marks := loadStateFile(t, path)
	edit(marks)
	b, err := encodeState(marks)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// akNameOf returns the result's ak_name.
func akNameOf(t *testing.T, r *sdktest.Result) string {
	t.Helper()
	var name string
	if err := r.Decode(KeyAKName, &name); err != nil || name == "" {
		t.Fatalf("ak_name %q: %v", name, err)
	}
	return name
}

// attestOnce plays one on-demand attestation: a fresh check instance,
// configured with cfg, measured once.
func attestOnce(t *testing.T, sim *simulator.Simulator, cfg map[string]any) (*sdktest.Result, measured) {
	t.Helper()
	h, _, _ := simHarness(t, sim, cfg)
	return mustMeasure(t, h, newNonce(t))
}

// clearTPM runs TPM2_Clear with the (empty) lockout authorization: the
// reset and restart counts go back to zero, the endorsement seed stays.
func clearTPM(t *testing.T, sim *simulator.Simulator) {
	t.Helper()
	if _, err := (tpm2.Clear{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)}}).Execute(direct(sim)); err != nil {
		t.Fatal(err)
	}
}

// TestClockRollbackAcrossProcesses: a rollback is caught although each
// attestation runs in a new plugin instance, through the state file.
func TestClockRollbackAcrossProcesses(t *testing.T) {
	sim := openSim(t)
	path := filepath.Join(t.TempDir(), "tpm-clock.json")
	cfg := map[string]any{"state_file": path}

	r, first := attestOnce(t, sim, cfg)
	only(t, r, nil)
	name := akNameOf(t, r)
	st := loadStateFile(t, path)
	if len(st) != 1 || st[name].clock.ResetCount != first.quote.Clock.ResetCount || st[name].clock.Clock != first.quote.Clock.Clock {
		t.Fatalf("state after the first quote: %+v, want %s at %+v", st, name, first.quote.Clock)
	}

	// A process killed while writing left its temporary file: the next
	// one removes it.
	stale := filepath.Join(filepath.Dir(path), ".tpm-clock.json.1234.tmp")
	if err := os.WriteFile(stale, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Two TPM Resets (reboots) between attestations: no rollback, the
	// mark moves up.
	for range 2 {
		if err := sim.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	r, m := attestOnce(t, sim, cfg)
	only(t, r, nil)
	high := m.quote.Clock.ResetCount
	if high != first.quote.Clock.ResetCount+2 || !m.verified || akNameOf(t, r) != name {
		t.Fatalf("after two resets: clock %+v, verified %v", m.quote.Clock, m.verified)
	}
	if got := loadStateFile(t, path)[name].clock.ResetCount; got != high {
		t.Fatalf("state reset count %d, want %d", got, high)
	}
	if other := otherFiles(t, filepath.Dir(path), "tpm-clock.json"); len(other) != 0 {
		t.Fatalf("left %v beside the state file", other)
	}

	// The TPM is cleared between attestations: the next plugin process
	// learns the mark from the file and reports the rollback.
	clearTPM(t, sim)
	r, m = attestOnce(t, sim, cfg)
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
	want := fmt.Sprintf("reset count went down from %d to 0", high)
	if f := r.Find(CodeClockRollback)[0]; !strings.Contains(f.Message, want) {
		t.Errorf("finding %+v, want %q", f, want)
	}
	if m.verified || akNameOf(t, r) != name {
		t.Fatalf("tpm_quote_verified %v after a rollback (AK %s)", m.verified, akNameOf(t, r))
	}
	// The file keeps the mark: every later attestation reports it.
	if got := loadStateFile(t, path)[name].clock.ResetCount; got != high {
		t.Fatalf("state lowered to reset count %d by a rollback, want %d", got, high)
	}
	r, _ = attestOnce(t, sim, cfg)
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
}

// TestClockStateAhead: a state file whose mark is ahead of the TPM's clock
// (as after restoring an older TPM state) makes the next plugin process
// report the clock going back within the same reset and restart.
func TestClockStateAhead(t *testing.T) {
	sim := openSim(t)
	path := filepath.Join(t.TempDir(), "tpm-clock.json")
	cfg := map[string]any{"state_file": path}
	r, m := attestOnce(t, sim, cfg)
	only(t, r, nil)
	name := akNameOf(t, r)
	ahead := m.quote.Clock.Clock + 3_600_000
	editStateFile(t, path, func(st map[string]clockMark) {
		mk := st[name]
		mk.clock.Clock = ahead
		st[name] = mk
	})
	r, m = attestOnce(t, sim, cfg)
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
	want := fmt.Sprintf("clock went back from %d ms to", ahead)
	if f := r.Find(CodeClockRollback)[0]; !strings.Contains(f.Message, want) || m.verified {
		t.Fatalf("finding %+v (verified %v), want %q", f, m.verified, want)
	}
}

// TestClockStateCorrupt: a state file that does not parse is reported with
// its name and what is wrong; tracking restarts from the quote, the file
// is rewritten, and the next attestation is clean.
func TestClockStateCorrupt(t *testing.T) {
	sim := openSim(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tpm-clock.json")
	cfg := map[string]any{"state_file": path}
	for i, garbage := range []string{"{\"version\": 1, \"tpms\": {\"000b", "\x00\x01\x02", `{"version": 7, "tpms": {}}`} {
		if err := os.WriteFile(path, []byte(garbage), 0o600); err != nil {
			t.Fatal(err)
		}
		r, m := attestOnce(t, sim, cfg)
		only(t, r, map[string]sdk.Severity{CodeClockStateInvalid: sdk.SeverityMedium})
		f := r.Find(CodeClockStateInvalid)[0]
		if f.Subject != path || !strings.Contains(f.Message, path) || !strings.Contains(f.Message, "rewritten") {
			t.Errorf("Test %d: finding %+v, want subject and message naming %s", i, f, path)
		}
		if !m.verified {
			t.Errorf("Test %d: an unusable state file is not a rollback, yet tpm_quote_verified is false", i)
		}
		if st := loadStateFile(t, path); len(st) != 1 || st[akNameOf(t, r)].clock.Clock != m.quote.Clock.Clock {
			t.Fatalf("Test %d: rewritten state %+v", i, st)
		}
		r, _ = attestOnce(t, sim, cfg)
		only(t, r, nil)
	}
	if text := fileText(t, path); !strings.Contains(text, `"version": 1`) {
		t.Errorf("rewritten file:\n%s", text)
	}
	if other := otherFiles(t, dir, "tpm-clock.json"); len(other) != 0 {
		t.Errorf("left %v", other)
	}
}

func fileText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClockStateMissingFolder: without the state folder the measurement
// still works, the missing folder is an info finding naming it, and the
// clock is tracked in the process; once the folder appears, the same
// (resident) process writes its marks there.
func TestClockStateMissingFolder(t *testing.T) {
	sim := openSim(t)
	folder := filepath.Join(t.TempDir(), "runtime-attestor")
	path := filepath.Join(folder, "tpm-clock.json")
	h, _, _ := simHarness(t, sim, map[string]any{"state_file": path})

	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeClockStateUnavailable: sdk.SeverityInfo})
	if f := r.Find(CodeClockStateUnavailable)[0]; f.Subject != folder || !strings.Contains(f.Message, folder+" does not exist") {
		t.Errorf("finding %+v, want it to name %s", f, folder)
	}
	if !m.verified || !m.available {
		t.Fatalf("measurement without the state folder: %+v", m)
	}
	if _, err := os.Stat(folder); !os.IsNotExist(err) {
		t.Fatalf("the plugin created the state folder: %v", err)
	}

	// In-process tracking still catches a rollback.
	clearTPM(t, sim)
	r, _ = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeClockStateUnavailable: sdk.SeverityInfo, CodeClockRollback: sdk.SeverityCritical})

	// The folder appears: the process's mark (from before the clear)
	// goes to the file, and a fresh process is held to it.
	if err := os.Mkdir(folder, 0o700); err != nil {
		t.Fatal(err)
	}
	r, _ = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
	if st := loadStateFile(t, path); len(st) != 1 || st[akNameOf(t, r)].clock.ResetCount == 0 {
		t.Fatalf("state %+v, want the mark from before the clear", st)
	}
	r, _ = attestOnce(t, sim, map[string]any{"state_file": path})
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
}

// TestClockStateDisabled: state_file "" keeps the marks in the process
// only (useful only with resident_plugins: true): the same instance sees
// a rollback, a fresh one cannot.
func TestClockStateDisabled(t *testing.T) {
	sim := openSim(t)
	dir := t.TempDir()
	cfg := map[string]any{"state_file": ""}
	h, _, _ := simHarness(t, sim, cfg)
	r, _ := mustMeasure(t, h, newNonce(t))
	only(t, r, nil)
	if err := sim.Reset(); err != nil {
		t.Fatal(err)
	}
	r, _ = mustMeasure(t, h, newNonce(t))
	only(t, r, nil)
	clearTPM(t, sim)
	r, _ = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})
	r, _ = attestOnce(t, sim, cfg)
	only(t, r, nil)
	if other := otherFiles(t, dir); len(other) != 0 {
		t.Errorf("files written with state_file \"\": %v", other)
	}
}

// TestClockStateWriteFailed: a state file that can be neither read nor
// replaced (a folder stands in its place) is reported both ways, leaves
// no temporary file, and the measurement still verifies.
func TestClockStateWriteFailed(t *testing.T) {
	sim := openSim(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tpm-clock.json")
	if err := os.MkdirAll(filepath.Join(path, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	r, m := attestOnce(t, sim, map[string]any{"state_file": path})
	only(t, r, map[string]sdk.Severity{CodeClockStateInvalid: sdk.SeverityMedium, CodeClockStateWriteFailed: sdk.SeverityMedium})
	if f := r.Find(CodeClockStateInvalid)[0]; !strings.Contains(f.Message, "not a regular file") {
		t.Errorf("finding %+v", f)
	}
	if f := r.Find(CodeClockStateWriteFailed)[0]; f.Subject != path || !strings.Contains(f.Message, "could not be written") {
		t.Errorf("finding %+v", f)
	}
	if !m.verified {
		t.Error("tpm_quote_verified false for a state file that cannot be written")
	}
	if other := otherFiles(t, dir, "tpm-clock.json"); len(other) != 0 {
		t.Errorf("left %v", other)
	}
}

// TestClockStateIdentities: each TPM identity (AK name) keeps its own
// record. Another AK on the same TPM, or a replaced TPM whose counters
// start again from zero, is not held to the first one's mark; the first
// one still is.
func TestClockStateIdentities(t *testing.T) {
	sim := openSim(t)
	path := filepath.Join(t.TempDir(), "tpm-clock.json")
	ecc := map[string]any{"state_file": path}
	rsa := map[string]any{"state_file": path, "ak": map[string]any{"algorithm": "rsa"}}

	r, _ := attestOnce(t, sim, ecc)
	only(t, r, nil)
	eccName := akNameOf(t, r)
	// The ECC key's record is far ahead of the TPM.
	editStateFile(t, path, func(st map[string]clockMark) {
		mk := st[eccName]
		mk.clock.ResetCount += 1000
		st[eccName] = mk
	})
	farAhead := loadStateFile(t, path)[eccName]

	// Another key on the same TPM: a record of its own, no rollback.
	r, m := attestOnce(t, sim, rsa)
	only(t, r, nil)
	rsaName := akNameOf(t, r)
	st := loadStateFile(t, path)
	if rsaName == eccName || len(st) != 2 || st[eccName].clock != farAhead.clock || st[rsaName].clock.Clock != m.quote.Clock.Clock {
		t.Fatalf("state %+v after the RSA key (%s)", st, rsaName)
	}

	// The ECC key is still held to its record.
	r, _ = attestOnce(t, sim, ecc)
	only(t, r, map[string]sdk.Severity{CodeClockRollback: sdk.SeverityCritical})

	// The TPM is replaced (manufactured again: new endorsement seed, so a
	// new AK, and counts from zero): not a rollback.
	if err := sim.ManufactureReset(); err != nil {
		t.Fatal(err)
	}
	r, m = attestOnce(t, sim, ecc)
	only(t, r, nil)
	newName := akNameOf(t, r)
	if newName == eccName || !m.verified {
		t.Fatalf("replaced TPM: AK %s (was %s), verified %v", newName, eccName, m.verified)
	}
	if st := loadStateFile(t, path); len(st) != 3 || st[eccName].clock != farAhead.clock {
		t.Fatalf("state %+v after a new TPM", st)
	}
}
