package tpm

import (
	"encoding/json"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// attestation is the part of GET /api/v1/attest these tests read.
type attestation struct {
	State  string `json:"state"`
	Bundle struct {
		BootMeasurements struct {
			SecureBoot *bool           `json:"secure_boot"`
			EventLog   json.RawMessage `json:"event_log"`
		} `json:"boot_measurements"`
		TPMQuoteVerified *bool `json:"tpm_quote_verified"`
		Failures         []struct {
			Code, Severity, Message, Subject, Plugin string
		} `json:"failures"`
	} `json:"bundle"`
}

// measuredBootDaemon runs the real daemon with the real tpm and secureboot
// plugins: the tpm plugin on a swtpm whose PCRs the real log raw extended,
// replaying log (raw, or another log the test serves), the secureboot
// plugin on efivars copied from a real machine.
func measuredBootDaemon(t *testing.T, booted, served []byte, efivars, ref string) attestation {
	t.Helper()
	sw := swtpmtest.Start(t)
	sw.Do(t, func(tpm transport.TPM) { boot(t, tpm, booted) })
	logPath := writeFile(t, "binary_bios_measurements", served)
	e := daemontest.New(t, daemontest.Options{Plugins: []string{"tpm", "secureboot"}})
	e.EditPolicy(func(doc map[string]any) {
		for _, p := range []string{"ostree", "kernel", "binaries", "policies"} {
			daemontest.SetPolicyKey(doc, false, "plugins", p, "enabled")
			delete(doc["plugins"].(map[string]any)[p].(map[string]any), "config")
		}
		daemontest.SetPolicyKey(doc, map[string]any{}, "service_binaries")
		daemontest.SetPolicyKey(doc, []any{}, "policy_files")
		daemontest.SetPolicyKey(doc, map[string]any{
			"swtpm_socket": sw.Socket, "event_log": logPath, "userspace_log": "",
			"state_file": filepath.Join(e.Dir, "tpm-state", "clock.json"),
		}, "plugins", "tpm", "config")
		dir := filepath.Join(e.Root, "plugins", "secureboot", "testdata", efivars)
		daemontest.SetPolicyKey(doc, map[string]any{"efi_dir": dir, "efivars_dir": filepath.Join(dir, "efivars")}, "plugins", "secureboot", "config")
		if ref != "" {
			daemontest.SetPolicyKey(doc, ref, "boot_reference")
		}
	})
	p := e.Start()
	defer p.Stop()
	code, body := e.Get("/api/v1/attest")
	var a attestation
	if err := json.Unmarshal(body, &a); code != 200 || err != nil {
		t.Fatalf("GET /api/v1/attest: %d %v\n%s", code, err, body)
	}
	return a
}

// TestMeasuredBootThroughTheDaemon: the whole path, real daemon, real
// plugin executables in their sandboxes, swtpm, real logs and efivars.
func TestMeasuredBootThroughTheDaemon(t *testing.T) {
	good := realLog(t, "rhel8-uefi")
	refPath := filepath.Join(t.TempDir(), "boot-reference.yaml")
	recordReference(t, good, refPath)

	// The recorded boot is attested, Secure Boot as measured.
	t.Run("recorded", func(t *testing.T) {
		a := measuredBootDaemon(t, good, good, "enabled", refPath)
		if a.State != "attested" || len(a.Bundle.Failures) != 0 || a.Bundle.BootMeasurements.SecureBoot == nil || !*a.Bundle.BootMeasurements.SecureBoot {
			t.Fatalf("%+v", a)
		}
		if !strings.Contains(string(a.Bundle.BootMeasurements.EventLog), `"replay":"verified"`) {
			t.Errorf("event_log %s", a.Bundle.BootMeasurements.EventLog)
		}
	})
	// A changed shim is named and degrades.
	t.Run("shim", func(t *testing.T) {
		changed, _ := replaceDigest(t, good, 23, "shimx64.efi 15.8")
		a := measuredBootDaemon(t, changed, changed, "enabled", refPath)
		if a.State != "degraded" || len(a.Bundle.Failures) != 1 || a.Bundle.Failures[0].Code != CodeBootEventMismatch ||
			!strings.HasPrefix(a.Bundle.Failures[0].Message, `PCR 4 event 23 EV_EFI_BOOT_SERVICES_APPLICATION \EFI\redhat\shimx64.efi: digest `) {
			t.Fatalf("%+v", a)
		}
	})
	// Efivars say on, the boot measured off.
	t.Run("sbfaked", func(t *testing.T) {
		off := realLog(t, "ubuntu-2104-no-secure-boot")
		a := measuredBootDaemon(t, off, off, "enabled", "")
		if a.State != "degraded" || len(a.Bundle.Failures) != 1 || a.Bundle.Failures[0].Code != "secureboot.log_disagrees" ||
			a.Bundle.Failures[0].Plugin != "core" || a.Bundle.BootMeasurements.SecureBoot == nil || *a.Bundle.BootMeasurements.SecureBoot {
			t.Fatalf("%+v", a)
		}
	})
}
