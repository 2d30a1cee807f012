package main

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/tpm/eventlog"
)

// pcrExtend extends pcr's SHA-256 bank with digest.
func pcrExtend(t *testing.T, tpm transport.TPM, pcr int, digest []byte) {
	t.Helper()
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest}}},
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("extend PCR %d: %v", pcr, err)
	}
}

// TestBaselinePinsBootReference: on a machine with a TPM (swtpm, booted
// as a real machine's firmware log says) whose log the tpm plugin
// replays, attestctl baseline requires the TPM, records the boot
// reference beside the policy from that very log and pins it
// (boot_reference), pins only the PCRs the reference does not cover in
// expected_pcrs, and names a signing key. The daemon with that policy is
// attested; a PCR the reference covers extended afterwards (a boot that is
// not the recorded one) is not.
func TestBaselinePinsBootReference(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("..", "..", "tpm", "testdata", "eventlog", "rhel8-uefi.bin"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	sw := swtpmtest.Start(t)
	sw.Do(t, func(tpm transport.TPM) {
		for _, e := range l.Events {
			if e.Type != 3 { // EV_NO_ACTION extends nothing
				pcrExtend(t, tpm, e.PCR, e.Digest(eventlog.SHA256))
			}
		}
	})
	env := daemontest.New(t, daemontest.Options{})
	logDir := filepath.Join(env.Dir, "eventlog")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(logDir, "binary_bios_measurements")
	if err := os.WriteFile(logPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	env.EditPolicy(func(doc map[string]any) {
		daemontest.SetPolicyKey(doc, map[string]any{
			"swtpm_socket": sw.Socket, "event_log": logPath, "userspace_log": "",
			"state_file": filepath.Join(env.Dir, "tpm-state", "clock.json"),
		}, "plugins", "tpm", "config")
		// The efivars of a machine that booted with Secure Boot on, as the
		// log says it did.
		dir := filepath.Join(env.Root, "plugins", "secureboot", "testdata", "enabled")
		daemontest.SetPolicyKey(doc, map[string]any{"efi_dir": dir, "efivars_dir": filepath.Join(dir, "efivars")}, "plugins", "secureboot", "config")
	})
	outDir := filepath.Join(env.Dir, "etc")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "attestation.yaml")
	code, _, stderr := env.RunAttestctl(nil, "baseline", "--policy", env.PolicyPath, "--daemon", env.Daemon, "-o", out)
	if code != exitOK {
		t.Fatalf("baseline exit %d:\n%s", code, stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse(raw)
	if err != nil {
		t.Fatalf("the baseline does not load: %v\n%s", err, raw)
	}
	refPath := filepath.Join(outDir, "boot-reference.yaml")
	if pol.BootReference != refPath || !pol.RequireTPM || !pol.RequireSecureBoot || pol.SigningKeyPath != env.SigningKey {
		t.Fatalf("boot_reference %q (want %q), require_tpm %v, signing_key_path %q (want %q)\n%s\n%s",
			pol.BootReference, refPath, pol.RequireTPM, pol.SigningKeyPath, env.SigningKey, raw, stderr)
	}
	refRaw, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := eventlog.ParseReference(refRaw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := eventlog.Record(l, nil, eventlog.SHA256, ref.PCRList())
	if err != nil {
		t.Fatal(err)
	}
	wantRaw, _ := want.Marshal()
	if string(wantRaw) != string(refRaw) {
		t.Errorf("the reference written is not the firmware log's:\n%s", refRaw)
	}
	for i := range pol.ExpectedPCRs {
		if slices.Contains(ref.PCRList(), i) {
			t.Errorf("expected_pcrs pins PCR %d, which the boot reference covers", i)
		}
	}
	if !strings.Contains(stderr, "wrote the boot reference "+refPath) || !strings.Contains(string(raw), "boot reference "+refPath) {
		t.Errorf("baseline did not say where the boot reference went:\n%s\n%s", stderr, raw)
	}

	if err := os.WriteFile(env.PolicyPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p := env.Start()
	defer p.Stop()
	if st := p.WaitState(60*time.Second, "attested", "degraded", "failed"); st != "attested" {
		t.Fatalf("with its own baseline the machine is %s:\n%s", st, env.JSON("/api/v1/attest"))
	}
	// Another boot: a PCR the reference covers measured something the
	// log does not hold.
	covered := ref.PCRList()[0]
	sw.Do(t, func(tpm transport.TPM) {
		d := sha256.Sum256([]byte("an unrecorded boot loader"))
		pcrExtend(t, tpm, covered, d[:])
	})
	b := refreshBundle(t, env)
	if b.State == "attested" || len(b.Failures) == 0 {
		t.Errorf("PCR %d extended after the baseline: state %s, findings %+v", covered, b.State, b.Failures)
	}
	t.Logf("after PCR %d changed: %s, %+v", covered, b.State, b.Failures)
}
