package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
	"github.com/secure-ai/runtime-attestor/tpm/attest"
	"github.com/secure-ai/runtime-attestor/tpm/eventlog"
)

// realLog reads a real event log of testdata/eventlog (see its README).
func realLog(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "tpm", "testdata", "eventlog", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// boot plays the firmware on the simulator: it extends the SHA-256 PCRs
// with every event of the log, as the machine's firmware did.
func boot(t *testing.T, tpm transport.TPM, raw []byte) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l.Events {
		if e.Type == 3 { // EV_NO_ACTION extends nothing
			continue
		}
		extend(t, tpm, e.PCR, e.Digest(eventlog.SHA256))
	}
	return l
}

// writeFile writes b to a new file in a temporary folder.
func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordReference writes the boot reference of a log to a file.
func recordReference(t *testing.T, raw []byte, path string) {
	t.Helper()
	l, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := eventlog.Record(l, nil, eventlog.SHA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ref.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceDigest returns raw with every copy of event index's SHA-256
// digest replaced by the digest of with: a boot that measured another
// binary there, logged as the firmware logs it.
func replaceDigest(t *testing.T, raw []byte, index int, with string) ([]byte, string) {
	t.Helper()
	l, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l.Events {
		if e.Index == index {
			sum := sha256.Sum256([]byte(with))
			return bytes.ReplaceAll(raw, e.Digest(eventlog.SHA256), sum[:]), hex.EncodeToString(sum[:])
		}
	}
	t.Fatalf("no event %d", index)
	return nil, ""
}

type eventLogMeasured struct {
	SHA256       string         `json:"sha256"`
	Events       map[string]int `json:"events"`
	Replay       string         `json:"replay"`
	ReplayedPCRs []int          `json:"replayed_pcrs"`
	FailedPCRs   []int          `json:"failed_pcrs"`
	SecureBoot   *struct {
		Enabled     bool                 `json:"enabled"`
		Authorities []eventlog.Authority `json:"authorities"`
	} `json:"secure_boot"`
	Reference *struct {
		Differences int `json:"differences"`
	} `json:"reference"`
}

func decodeEventLog(t *testing.T, r *sdktest.Result) eventLogMeasured {
	t.Helper()
	var el eventLogMeasured
	if err := r.Decode(KeyEventLog, &el); err != nil {
		t.Fatalf("%s: %v", KeyEventLog, err)
	}
	return el
}

// TestRealLogsReplayAgainstTheQuote: each real log, played into the
// simulator, gives the PCR values of the machine it came from, replays
// against the quote, and yields the Secure Boot state it measured.
func TestRealLogsReplayAgainstTheQuote(t *testing.T) {
	for i, tc := range []struct {
		name     string
		sb       string // on, off, or unknown
		findings map[string]sdk.Severity
	}{
		{"rhel8-uefi", "on", map[string]sdk.Severity{}},
		{"ubuntu-2104-no-secure-boot", "off", map[string]sdk.Severity{}},
		// crypto-agile SHA-1 + SHA-256; its SecureBoot variable was
		// measured empty: no Secure Boot state, a low finding.
		{"arch-linux-workstation", "unknown", map[string]sdk.Severity{CodeEventLogSecureBoot: sdk.SeverityLow}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := openSim(t)
			raw := realLog(t, tc.name)
			boot(t, direct(sim), raw)
			h, _, _ := simHarness(t, sim, map[string]any{"event_log": writeFile(t, "bios.bin", raw)})
			r, m := mustMeasure(t, h, newNonce(t))
			only(t, r, tc.findings)
			if !m.verified {
				t.Fatalf("Test %d: quote not verified", i)
			}
			var real map[string]map[string]string
			j, _ := os.ReadFile(filepath.Join("..", "..", "tpm", "testdata", "eventlog", tc.name+".pcrs.json"))
			if err := json.Unmarshal(j, &real); err != nil {
				t.Fatal(err)
			}
			for p, v := range m.pcrs {
				if want, ok := real["sha256"][p]; ok && want != v {
					t.Errorf("Test %d: simulated PCR %s is %s, the real machine had %s", i, p, v, want)
				}
			}
			el := decodeEventLog(t, r)
			sum := sha256.Sum256(raw)
			if el.Replay != replayVerified || len(el.FailedPCRs) != 0 || len(el.ReplayedPCRs) != 8 || el.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("Test %d: event_log %+v", i, el)
			}
			switch {
			case tc.sb == "unknown" && el.SecureBoot != nil:
				t.Errorf("Test %d: secure_boot %+v from a log that does not give it", i, el.SecureBoot)
			case tc.sb != "unknown" && (el.SecureBoot == nil || el.SecureBoot.Enabled != (tc.sb == "on")):
				t.Errorf("Test %d: secure_boot %+v, want %s", i, el.SecureBoot, tc.sb)
			}
		})
	}
}

// TestChangedShimIsNamed: a boot whose shim differs from the reference
// gives exactly one finding naming PCR 4, event 23, its type and path; the
// new shim recorded as a variant brings the state back to attested.
func TestChangedShimIsNamed(t *testing.T) {
	sim := openSim(t)
	good := realLog(t, "rhel8-uefi")
	refPath := filepath.Join(t.TempDir(), "boot-reference.yaml")
	recordReference(t, good, refPath)

	changed, newShim := replaceDigest(t, good, 23, "shimx64.efi 15.8")
	boot(t, direct(sim), changed)
	logPath := writeFile(t, "bios.bin", changed)
	h, _, _ := simHarness(t, sim, map[string]any{"event_log": logPath, "boot_reference": refPath})
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeBootEventMismatch: sdk.SeverityHigh})
	f := r.Find(CodeBootEventMismatch)[0]
	want := `PCR 4 event 23 EV_EFI_BOOT_SERVICES_APPLICATION \EFI\redhat\shimx64.efi: digest ` + newShim +
		", the reference allows digest 40d6cae02973789080cf4c3a9ad11b5a0a4d8bba4438ab96e276cc784454dee7"
	if f.Message != want || f.Subject != "pcr:4/event:23" {
		t.Errorf("finding %q (%s)\nwant     %q", f.Message, f.Subject, want)
	}
	if !m.verified {
		t.Error("the quote did not verify")
	}
	if s := plugintest.DefaultState(r.Findings); s != "degraded" {
		t.Errorf("state %s, want degraded", s)
	}

	// The operator records the new boot as a variant.
	l, _ := eventlog.Parse(changed)
	raw, _ := os.ReadFile(refPath)
	ref, err := eventlog.ParseReference(raw)
	if err != nil {
		t.Fatal(err)
	}
	now, _ := eventlog.Record(l, nil, eventlog.SHA256, nil)
	if err := ref.Merge(now); err != nil {
		t.Fatal(err)
	}
	b, _ := ref.Marshal()
	if err := os.WriteFile(refPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{})
	if s := plugintest.DefaultState(r.Findings); s != "attested" {
		t.Errorf("state %s with the new shim as a variant, want attested", s)
	}
	if el := decodeEventLog(t, r); el.Reference == nil || el.Reference.Differences != 0 {
		t.Errorf("event_log.reference %+v", el.Reference)
	}
}

// againstRHEL8 measures a simulator booted with the events of booted,
// serving the log served, against the reference recorded from the real
// RHEL 8 boot.
func againstRHEL8(t *testing.T, booted, served []byte) *sdktest.Result {
	t.Helper()
	sim := openSim(t)
	refPath := filepath.Join(t.TempDir(), "boot-reference.yaml")
	recordReference(t, realLog(t, "rhel8-uefi"), refPath)
	boot(t, direct(sim), booted)
	h, _, _ := simHarness(t, sim, map[string]any{"event_log": writeFile(t, "bios.bin", served), "boot_reference": refPath})
	r, _ := mustMeasure(t, h, newNonce(t))
	return r
}

// TestChangedKernelIsNamed: GRUB's measurement of another kernel (PCR 9)
// is one finding naming the event and its description.
func TestChangedKernelIsNamed(t *testing.T) {
	changed, _ := replaceDigest(t, realLog(t, "rhel8-uefi"), 76, "vmlinuz-4.18.0-240.23.1")
	r := againstRHEL8(t, changed, changed)
	only(t, r, map[string]sdk.Severity{CodeBootEventMismatch: sdk.SeverityHigh})
	if f := r.Find(CodeBootEventMismatch)[0]; f.Subject != "pcr:9/event:76" || !strings.HasPrefix(f.Message, "PCR 9 event 76 EV_IPL grub_linuxefi Kernel: digest ") {
		t.Errorf("finding %+v", f)
	}
}

// TestLogThatDoesNotReplay: a log edited after boot (one digest changed,
// the PCRs as the real boot left them) is a replay failure naming PCR and
// bank, and is not compared with the reference: an untrusted log names no
// event.
func TestLogThatDoesNotReplay(t *testing.T) {
	good := realLog(t, "rhel8-uefi")
	edited, _ := replaceDigest(t, good, 23, "a shim the log pretends was booted")
	r := againstRHEL8(t, good, edited)
	only(t, r, map[string]sdk.Severity{CodeEventLogReplayFailed: sdk.SeverityHigh, CodeBootReferenceUnchecked: sdk.SeverityHigh})
	if f := r.Find(CodeEventLogReplayFailed)[0]; f.Subject != "pcr:4/sha256" || !strings.Contains(f.Message, "PCR 4 (sha256 bank) does not replay") {
		t.Errorf("finding %+v", f)
	}
	if el := decodeEventLog(t, r); el.Replay != replayFailed || len(el.FailedPCRs) != 1 || el.FailedPCRs[0] != 4 {
		t.Errorf("event_log %+v", el)
	}
}

// TestManyDifferencesAreBounded: a boot far from its reference gives 20
// findings and one summary, however many events differ.
func TestManyDifferencesAreBounded(t *testing.T) {
	changed := realLog(t, "rhel8-uefi")
	for i := 28; i < 60; i++ { // GRUB's commands in PCR 8
		changed, _ = replaceDigest(t, changed, i, "another grub.cfg line "+string(rune('a'+i)))
	}
	r := againstRHEL8(t, changed, changed)
	if n := len(r.Find(CodeBootEventMismatch)); n != maxMismatchFindings {
		t.Fatalf("%d mismatch findings, want %d: %v", n, maxMismatchFindings, codes(r))
	}
	more := r.Find(CodeBootEventMismatchMore)
	if len(more) != 1 || !strings.Contains(more[0].Message, "(PCR 8: ") || len(r.Findings) != maxMismatchFindings+1 {
		t.Errorf("findings %v %+v", codes(r), more)
	}
	if el := decodeEventLog(t, r); el.Reference == nil || el.Reference.Differences <= maxMismatchFindings {
		t.Errorf("event_log.reference %+v", el.Reference)
	}
}

// TestBadLogsAndReferences: garbage, truncation and a broken reference are
// findings that say what is wrong, never a crash.
func TestBadLogsAndReferences(t *testing.T) {
	good := realLog(t, "rhel8-uefi")
	for i, tc := range []struct {
		name string
		log  []byte
		ref  string
		want map[string]sdk.Severity
		msg  string
	}{
		{"truncated log", good[:len(good)-9], "", map[string]sdk.Severity{CodeEventLogInvalid: sdk.SeverityHigh}, "does not parse"},
		{"garbage log", bytes.Repeat([]byte{0xff}, 4096), "", map[string]sdk.Severity{CodeEventLogInvalid: sdk.SeverityHigh}, "does not parse"},
		{"empty log", []byte{}, "", map[string]sdk.Severity{CodeEventLogInvalid: sdk.SeverityHigh}, "empty"},
		{"broken reference", good, "version: 1\nbank: sha256\npcrs:\n- pcr: 4\n  events:\n  - type: EV_SEPARATOR\n    digests: [xyz]\n",
			map[string]sdk.Severity{CodeBootReferenceInvalid: sdk.SeverityHigh}, "pcrs[0].events[0].digests[0]"},
		{"reference of another bank", good, "version: 1\nbank: sha1\npcrs:\n- pcr: 4\n  events:\n  - type: EV_SEPARATOR\n    digests: [9069ca78e7450a285173431b3e52c5c25299e473]\n",
			map[string]sdk.Severity{CodeBootReferenceInvalid: sdk.SeverityHigh}, "is not the bank quoted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := openSim(t)
			boot(t, direct(sim), good)
			cfg := map[string]any{"event_log": writeFile(t, "bios.bin", tc.log)}
			if tc.ref != "" {
				cfg["boot_reference"] = writeFile(t, "ref.yaml", []byte(tc.ref))
			}
			h, _, _ := simHarness(t, sim, cfg)
			r, _ := mustMeasure(t, h, newNonce(t))
			only(t, r, tc.want)
			if !strings.Contains(r.Findings[0].Message, tc.msg) {
				t.Errorf("Test %d: %q, want it to say %q", i, r.Findings[0].Message, tc.msg)
			}
		})
	}
}

// TestNoTPMWithAReference: without a TPM the reference cannot be checked,
// and says so; a missing log with a reference is high, not info.
func TestNoTPMWithAReference(t *testing.T) {
	t.Parallel()
	ref := writeFile(t, "ref.yaml", []byte("version: 1\nbank: sha256\npcrs:\n- pcr: 4\n  events:\n  - type: EV_SEPARATOR\n    digests: [df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119]\n"))
	h := sdktest.New(t, New())
	dir := t.TempDir()
	if err := h.Configure(map[string]any{"device": filepath.Join(dir, "tpmrm0"), "state_file": "", "userspace_log": "",
		"event_log": writeFile(t, "bios.bin", realLog(t, "rhel8-uefi")), "boot_reference": ref}); err != nil {
		t.Fatal(err)
	}
	r, err := h.Measure()
	if err != nil {
		t.Fatal(err)
	}
	only(t, r, map[string]sdk.Severity{CodeUnavailable: sdk.SeverityInfo, CodeBootReferenceUnchecked: sdk.SeverityHigh})
	if el := decodeEventLog(t, r); el.Replay != replayUnverified {
		t.Errorf("replay %q, want unverified", el.Replay)
	}
	if err := h.Configure(map[string]any{"device": filepath.Join(dir, "tpmrm0"), "state_file": "", "userspace_log": "",
		"event_log": filepath.Join(dir, "none"), "boot_reference": ref}); err != nil {
		t.Fatal(err)
	}
	r, _ = h.Measure()
	only(t, r, map[string]sdk.Severity{CodeUnavailable: sdk.SeverityInfo, CodeEventLogMissing: sdk.SeverityHigh, CodeBootReferenceUnchecked: sdk.SeverityHigh})
}

// bootBoth plays the firmware into the SHA-1 and SHA-256 banks.
func bootBoth(t *testing.T, tpm transport.TPM, raw []byte) {
	t.Helper()
	l, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l.Events {
		if e.Type == 3 {
			continue
		}
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(e.PCR), Auth: tpm2.PasswordAuth(nil)},
			Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{
				{HashAlg: tpm2.TPMAlgSHA1, Digest: e.Digest(eventlog.SHA1)},
				{HashAlg: tpm2.TPMAlgSHA256, Digest: e.Digest(eventlog.SHA256)},
			}},
		}.Execute(tpm)
		if err != nil {
			t.Fatalf("extend PCR %d: %v", e.PCR, err)
		}
	}
}

// TestCryptoAgileLogBothBanks: with banks [sha1, sha256] one quote covers
// both banks, the crypto-agile log replays in each against it, and the
// SHA-1 values are the real machine's; a log whose SHA-1 digest alone was
// edited fails in the SHA-1 bank only.
func TestCryptoAgileLogBothBanks(t *testing.T) {
	raw := realLog(t, "arch-linux-workstation")
	var real map[string]map[string]string
	j, _ := os.ReadFile(filepath.Join("..", "..", "tpm", "testdata", "eventlog", "arch-linux-workstation.pcrs.json"))
	if err := json.Unmarshal(j, &real); err != nil {
		t.Fatal(err)
	}
	l, _ := eventlog.Parse(raw)
	sha1Of := l.Events[5].Digest(eventlog.SHA1) // event 6
	edited := bytes.Replace(raw, sha1Of, bytes.Repeat([]byte{0x5a}, 20), 1)
	for i, tc := range []struct {
		name   string
		served []byte
		want   map[string]sdk.Severity
		failed string
	}{
		{"as booted", raw, map[string]sdk.Severity{CodeEventLogSecureBoot: sdk.SeverityLow}, ""},
		// Event 6 is in PCR 7: PCR 7 no longer counts as replayed, so
		// no Secure Boot state is read from it at all.
		{"SHA-1 digest edited", edited, map[string]sdk.Severity{CodeEventLogReplayFailed: sdk.SeverityHigh}, fmt.Sprintf("pcr:%d/sha1", l.Events[5].PCR)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := openSim(t)
			bootBoth(t, direct(sim), raw)
			h, _, _ := simHarness(t, sim, map[string]any{"event_log": writeFile(t, "bios.bin", tc.served), "banks": []string{"sha1", "sha256"}})
			r, m := mustMeasure(t, h, newNonce(t))
			if tc.failed != "" && (len(r.Find(CodeEventLogReplayFailed)) != 1 || r.Find(CodeEventLogReplayFailed)[0].Subject != tc.failed) {
				t.Fatalf("Test %d: findings %+v, want a replay failure of %s", i, r.Findings, tc.failed)
			}
			only(t, r, tc.want)
			if !m.verified {
				t.Fatalf("Test %d: the two-bank quote did not verify", i)
			}
			var banks map[string]map[string]string
			if err := r.Decode(KeyPCRBanks, &banks); err != nil {
				t.Fatal(err)
			}
			for p, v := range banks["sha1"] {
				if want, ok := real["sha1"][p]; ok && want != v {
					t.Errorf("Test %d: simulated SHA-1 PCR %s is %s, the real machine had %s", i, p, v, want)
				}
			}
			if len(banks["sha1"]) != 8 {
				t.Errorf("Test %d: pcr_banks %v", i, banks)
			}
			// A verifier holds the quote to both banks: a SHA-1 value
			// changed, or the SHA-1 bank left out, does not verify.
			ak, err := attest.ParsePublic(m.quote.AKPublic)
			if err != nil {
				t.Fatal(err)
			}
			nonce, _ := hex.DecodeString(m.quote.Nonce)
			sha256s, sha1s := map[int][]byte{}, map[int][]byte{}
			for p, v := range m.pcrs {
				n, _ := strconv.Atoi(p)
				sha256s[n], _ = hex.DecodeString(v)
				sha1s[n], _ = hex.DecodeString(banks["sha1"][p])
			}
			if rep := attest.Verify(m.quote.Attest, m.quote.Signature, ak, attest.Expected{Nonce: nonce, PCRs: sha256s, Banks: map[uint16]map[int][]byte{attest.AlgSHA1: sha1s}}); !rep.Verified() {
				t.Errorf("Test %d: the published values do not verify: %v", i, rep.Problems)
			}
			sha1s[0] = bytes.Repeat([]byte{1}, 20)
			if rep := attest.Verify(m.quote.Attest, m.quote.Signature, ak, attest.Expected{Nonce: nonce, PCRs: sha256s, Banks: map[uint16]map[int][]byte{attest.AlgSHA1: sha1s}}); !rep.Has(attest.PCRDigestMismatch) {
				t.Errorf("Test %d: a changed SHA-1 value verifies: %v", i, rep.Problems)
			}
			if rep := attest.Verify(m.quote.Attest, m.quote.Signature, ak, attest.Expected{Nonce: nonce, PCRs: sha256s}); !rep.Has(attest.SelectionMismatch) {
				t.Errorf("Test %d: the SHA-1 bank left out verifies: %v", i, rep.Problems)
			}
		})
	}
}

func TestBanksConfig(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		banks []string
		key   string
	}{
		{[]string{"sha1"}, "banks"},
		{[]string{"sha256", "md5"}, "banks.1"},
		{[]string{"sha256", "sha256"}, "banks.1"},
	} {
		_, err := parseConfig(sdk.NewConfig(mustJSON(t, map[string]any{"banks": tc.banks})))
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("Test %d: %v, want a ConfigError naming %s", i, err, tc.key)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFIFOInsteadOfAFile: a FIFO put where the log or the reference is
// expected is refused at once, never read (it would block the plugin).
func TestFIFOInsteadOfAFile(t *testing.T) {
	sim := openSim(t)
	good := realLog(t, "rhel8-uefi")
	boot(t, direct(sim), good)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	h, _, _ := simHarness(t, sim, map[string]any{"event_log": fifo})
	r, _ := mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeEventLogInvalid: sdk.SeverityHigh})
	if !strings.Contains(r.Findings[0].Message, "not a regular file") {
		t.Errorf("%q", r.Findings[0].Message)
	}
	if err := h.Configure(map[string]any{"event_log": writeFile(t, "bios.bin", good), "boot_reference": fifo, "userspace_log": fifo, "state_file": ""}); err != nil {
		t.Fatal(err)
	}
	r, _ = mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeBootReferenceInvalid: sdk.SeverityHigh, CodeUserspaceLogInvalid: sdk.SeverityHigh})
}

// TestUserspaceLogThroughTheQuote: systemd's events extend PCRs 11 and 15
// after the firmware's; they replay against the quote and a changed one is
// named by its place in systemd's log.
func TestUserspaceLogThroughTheQuote(t *testing.T) {
	fwRaw := realLog(t, "rhel8-uefi")
	userRaw, err := os.ReadFile(filepath.Join("..", "..", "tpm", "testdata", "eventlog", "tpm2-measure.log"))
	if err != nil {
		t.Fatal(err)
	}
	fw, _ := eventlog.Parse(fwRaw)
	user, err := eventlog.ParseCEL(userRaw)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := eventlog.Record(fw, user, eventlog.SHA256, []int{4, 11, 15})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ref.Marshal()
	refPath := writeFile(t, "ref.yaml", b)
	leave := user[3].Digest(eventlog.SHA256) // "leave-initrd", PCR 11
	changed := bytes.Replace(userRaw, []byte(hex.EncodeToString(leave)), []byte(strings.Repeat("77", 32)), 1)
	for i, tc := range []struct {
		name string
		log  []byte
		want map[string]sdk.Severity
	}{
		{"as booted", userRaw, map[string]sdk.Severity{}},
		{"another initrd", changed, map[string]sdk.Severity{CodeBootEventMismatch: sdk.SeverityHigh}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := openSim(t)
			tpm := direct(sim)
			boot(t, tpm, fwRaw)
			evs, _ := eventlog.ParseCEL(tc.log)
			for _, e := range evs {
				extend(t, tpm, e.PCR, e.Digest(eventlog.SHA256))
			}
			h, _, _ := simHarness(t, sim, map[string]any{"event_log": writeFile(t, "bios.bin", fwRaw), "userspace_log": writeFile(t, "tpm2-measure.log", tc.log), "boot_reference": refPath})
			r, _ := mustMeasure(t, h, newNonce(t))
			only(t, r, tc.want)
			if f := r.Find(CodeBootEventMismatch); len(f) == 1 && (f[0].Subject != "pcr:11/userspace:3" || !strings.HasPrefix(f[0].Message, "PCR 11 userspace event 3 systemd:phase leave-initrd: digest 7777")) {
				t.Errorf("Test %d: %+v", i, f[0])
			}
			if el := decodeEventLog(t, r); len(el.ReplayedPCRs) != 10 {
				t.Errorf("Test %d: replayed %v, want 0-7, 11 and 15", i, el.ReplayedPCRs)
			}
		})
	}
}

// TestKernelUpdateWithoutFalseAlarm follows docs/tpm.md's kernel update:
// a new kernel changes four events (GRUB's linux line and command line in
// PCR 8, the kernel file in PCR 9, shim's kernel image in PCR 4). Against
// the old reference the new boot is four named findings; with the
// canary's boot merged in, the old boot and the new one are both attested.
func TestKernelUpdateWithoutFalseAlarm(t *testing.T) {
	good := realLog(t, "rhel8-uefi")
	updated := good
	for _, ev := range []int{75, 76, 77, 78} {
		updated, _ = replaceDigest(t, updated, ev, "kernel 4.18.0-240.23.1 event "+strconv.Itoa(ev))
	}
	t.Run("unprepared", func(t *testing.T) { // each subtest holds the one simulator
		r := againstRHEL8(t, updated, updated)
		var subjects []string
		for _, f := range r.Find(CodeBootEventMismatch) {
			subjects = append(subjects, f.Subject)
		}
		if strings.Join(subjects, " ") != "pcr:4/event:77 pcr:8/event:75 pcr:8/event:78 pcr:9/event:76" || len(r.Findings) != 4 {
			t.Fatalf("unprepared machine: %v %+v", subjects, r.Findings)
		}
	})

	// Steps 1-3: the canary's boot merged into the fleet's reference.
	oldLog, _ := eventlog.Parse(good)
	newLog, _ := eventlog.Parse(updated)
	ref, _ := eventlog.Record(oldLog, nil, eventlog.SHA256, nil)
	canary, _ := eventlog.Record(newLog, nil, eventlog.SHA256, nil)
	if err := ref.Merge(canary); err != nil {
		t.Fatal(err)
	}
	b, _ := ref.Marshal()
	refPath := writeFile(t, "boot-reference.yaml", b)
	// Step 4: the fleet, still on the old kernel; step 5: after the update.
	for i, booted := range [][]byte{good, updated} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			sim := openSim(t)
			boot(t, direct(sim), booted)
			h, _, _ := simHarness(t, sim, map[string]any{"event_log": writeFile(t, "bios.bin", booted), "boot_reference": refPath})
			r, _ := mustMeasure(t, h, newNonce(t))
			only(t, r, map[string]sdk.Severity{})
			if s := plugintest.DefaultState(r.Findings); s != "attested" {
				t.Errorf("Test %d: state %s", i, s)
			}
		})
	}
}
