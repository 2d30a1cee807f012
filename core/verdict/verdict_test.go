package verdict

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"github.com/secure-ai/runtime-attestor/internal/tpmsim"
	"github.com/secure-ai/runtime-attestor/sdk"
)

const testPCR = 13

// simTPM is an evidence TPM on the go-tpm-tools simulator (one per
// process: tests that use it do not run in parallel).
func simTPM(t *testing.T) *evidence.TPM {
	return evidence.New(evidence.Options{Open: tpmsim.Open(t)})
}

// testBundle returns a bundle's JSON in state st with findings codes; seq
// and the nonce and time vary as they do between attestations.
func testBundle(t testing.TB, seq uint64, st state.State, codes ...string) []byte {
	t.Helper()
	b := bundle.Bundle{BundleVersion: bundle.Version, AttestorVersion: "1.2.3", Sequence: seq,
		Nonce: strings.Repeat("ab", 31) + string("0123456789abcdef"[seq%16]) + "0", Timestamp: bundle.FormatTime(time.Unix(1700000000+int64(seq)*60, 0)), State: st,
		DeploymentDigest: bundle.Ptr("d1"), PolicyDigest: bundle.Ptr("p1"), ServiceDigests: map[string]string{"svc": "s1"},
		Checks:           map[string]bundle.Check{"tpm": {Name: "tpm", SHA256: bundle.Ptr(strings.Repeat("1", 64)), DurationMS: int64(seq)}},
		BootMeasurements: bundle.BootMeasurements{SecureBoot: bundle.Ptr(true), PCRs: map[string]string{"13": strings.Repeat("0", int(seq%3)+1)}}}
	for _, c := range codes {
		b.Failures = append(b.Failures, bundle.Failure{Finding: bundle.Finding{Code: c, Severity: sdk.SeverityMedium, Message: "m" + c}, Plugin: "x"})
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func readPCR(t *testing.T, tp *evidence.TPM) []byte {
	t.Helper()
	var v []byte
	err := tp.Exclusive(context.Background(), func(x transport.TPM) error {
		var err error
		v, err = evidence.ReadPCR(x, testPCR)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// measure measures raw as the engine does, with the bundle decoded
// beside it (the other tests pass none: Measure decodes it).
func measure(t *testing.T, m *Measurer, raw []byte) {
	t.Helper()
	var b bundle.Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	if err := m.Measure(context.Background(), raw, &b); err != nil {
		t.Fatalf("measure: %v", err)
	}
}

// TestMeasurementsWrittenCanonical: encoding/json writes Measurements in
// RFC 8785 form as it is, so its digest needs no transform (field order).
func TestMeasurementsWrittenCanonical(t *testing.T) {
	t.Parallel()
	s := "x"
	ms := Measurements{AttestorVersion: "1", DeploymentDigest: &s, PolicyDigest: &s, AttestationPolicySHA256: &s,
		RegistryManifestHash: &s, ServiceDigests: map[string]string{"b": "2", "a": "1"}, Plugins: map[string]*string{"tpm": &s, "kernel": nil},
		Boot: Boot{SecureBoot: new(bool), SetupMode: new(bool), TPMAvailable: new(bool), TPMQuoteVerified: new(bool)}}
	raw, err := json.Marshal(ms)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundle.Canonical(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, c) {
		t.Errorf("Measurements is not written in canonical form:\n%s\nwant\n%s", raw, c)
	}
}

// TestVerdictOfSealedBundle: the verdict the engine measures from the
// bundle it sealed is the verdict anyone decoding the sealed bytes gets,
// for awkward names too (non-ASCII, escapes, many services).
func TestVerdictOfSealedBundle(t *testing.T) {
	t.Parallel()
	many := map[string]string{}
	for i := range 300 {
		many["svc-"+strconv.Itoa(i)+"-\u00e9\U0001d11e"] = strings.Repeat(strconv.Itoa(i%10), 64)
	}
	for name, edit := range map[string]func(b *bundle.Bundle){
		"plain": func(*bundle.Bundle) {},
		"non-ASCII and escapes": func(b *bundle.Bundle) {
			b.ServiceDigests = map[string]string{"\ufb33": "x", "\U0001f600": "y", "a\"\\\n\u2028": "z"}
			b.DeploymentDigest = bundle.Ptr("<&>\u0001")
		},
		"many services":          func(b *bundle.Bundle) { b.ServiceDigests = many },
		"no services, no checks": func(b *bundle.Bundle) { b.ServiceDigests, b.Checks = nil, nil },
	} {
		t.Run(name, func(t *testing.T) {
			var b bundle.Bundle
			if err := json.Unmarshal(testBundle(t, 3, state.Degraded, "binaries.mismatch", "audit.x", "audit.x"), &b); err != nil {
				t.Fatal(err)
			}
			edit(&b)
			sealed, err := b.Seal(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			v, ms, err := fromBundle(&b)
			if err != nil {
				t.Fatal(err)
			}
			wv, wms, err := Of(sealed.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, wv) || !reflect.DeepEqual(ms, wms) {
				t.Errorf("verdict of the sealed bundle %+v, of its bytes %+v", v, wv)
			}
		})
	}
}

func logOf(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSequence measures attested, attested again (another nonce, time
// and sequence), degraded, attested; the PCR moves on each distinct
// verdict and never back; a restarted measurer continues the log.
func checkSequence(t *testing.T, tp *evidence.TPM) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "run", "verdict.log")
	m := New(Options{TPM: tp, PCR: testPCR, LogPath: logPath})
	zero := readPCR(t, tp)
	seen := [][]byte{zero}
	step := func(raw []byte, moves bool) {
		t.Helper()
		measure(t, m, raw)
		v := readPCR(t, tp)
		last := seen[len(seen)-1]
		if moves == bytes.Equal(v, last) {
			t.Fatalf("PCR %d after verdict %d: moved %v, want %v", testPCR, len(seen), !moves, moves)
		}
		if moves {
			for _, s := range seen {
				if bytes.Equal(s, v) {
					t.Fatal("the PCR came back to an earlier value")
				}
			}
			seen = append(seen, v)
		}
		if _, err := Check(logOf(t, logPath), testPCR, v); err != nil {
			t.Fatalf("the log does not replay to the PCR: %v", err)
		}
	}
	step(testBundle(t, 1, state.Attested), true)
	step(testBundle(t, 2, state.Attested), false)
	step(testBundle(t, 3, state.Degraded, "binaries.mismatch", "audit.x"), true)
	step(testBundle(t, 4, state.Attested), true)
	if s := m.Status(); !s.Measuring || s.Records != 3 || s.LastState != state.Attested {
		t.Errorf("status %+v", s)
	}

	// A restarted daemon: the same verdict is not extended again, a new
	// one continues the log.
	m = New(Options{TPM: tp, PCR: testPCR, LogPath: logPath})
	step(testBundle(t, 1, state.Attested), false)
	step(testBundle(t, 2, state.Degraded, "kernel.lockdown"), true)
	recs, err := Parse(logOf(t, logPath), testPCR)
	if err != nil || len(recs) != 4 || recs[3].RecNum != 3 || recs[3].Content.Sequence != 2 {
		t.Fatalf("log after restart: %d records, %v", len(recs), err)
	}
	if got := recs[1].Content.Verdict.FindingCodes; strings.Join(got, ",") != "audit.x,binaries.mismatch" {
		t.Errorf("finding codes %v", got)
	}
	if d := os.Getenv("VERDICT_DUMP"); d != "" {
		_ = os.WriteFile(d, logOf(t, logPath), 0o644)
	}
	fi, err := os.Stat(logPath)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("log mode %v, %v", fi.Mode(), err)
	}
	return logPath
}

func TestSequenceOnSimulator(t *testing.T) {
	tp := simTPM(t)
	logPath := checkSequence(t, tp)
	// PCR 13 cannot be reset.
	err := tp.Exclusive(context.Background(), func(x transport.TPM) error {
		_, err := tpm2.PCRReset{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(testPCR), Auth: tpm2.PasswordAuth(nil)}}.Execute(x)
		return err
	})
	if err == nil {
		t.Errorf("PCR %d was reset", testPCR)
	}
	forgeries(t, logOf(t, logPath), readPCR(t, tp))
}

func TestSequenceOnSwtpm(t *testing.T) {
	t.Parallel()
	sw := swtpmtest.Start(t)
	checkSequence(t, evidence.New(evidence.Options{Open: sw.Open}))
}

// forgeries: every edit of a genuine log fails replay against the PCR.
func forgeries(t *testing.T, genuine, pcr []byte) {
	t.Helper()
	if _, err := Check(genuine, testPCR, pcr); err != nil {
		t.Fatalf("genuine log refused: %v", err)
	}
	lines := strings.SplitAfter(string(genuine), "\n")
	lines = lines[:len(lines)-1]
	// A record whose verdict and digest are both rewritten, consistently.
	var r Record
	if err := json.Unmarshal([]byte(lines[1]), &r); err != nil {
		t.Fatal(err)
	}
	r.Content.Verdict.State, r.Content.Verdict.FindingCodes = state.Attested, nil
	d, _ := r.Content.Verdict.Digest()
	r.Digests[0].Digest = hexOf(d)
	consistent, _ := r.Encode()
	for i, tc := range []struct {
		name string
		log  string
		want string
	}{
		{"state rewritten", strings.Replace(genuine2(lines), `"state":"degraded"`, `"state":"attested"`, 1), "edited record"},
		{"codes removed", strings.Replace(genuine2(lines), `"binaries.mismatch"`, `"ok"`, 1), "edited record"},
		{"measurements rewritten", strings.Replace(genuine2(lines), `"deployment_digest":"d1"`, `"deployment_digest":"d2"`, 1), "edited record"},
		{"verdict and digest rewritten", lines[0] + string(consistent) + strings.Join(lines[2:], ""), "replays PCR"},
		{"record removed", lines[0] + strings.Join(lines[2:], ""), "recnum"},
		{"last record removed", strings.Join(lines[:len(lines)-1], ""), "replays PCR"},
		{"records swapped", lines[1] + lines[0] + strings.Join(lines[2:], ""), "recnum"},
		{"line cut short", genuine2(lines)[:len(genuine2(lines))-3], "newline"},
		{"unknown member", strings.Replace(lines[0], `"recnum"`, `"x":1,"recnum"`, 1) + strings.Join(lines[1:], ""), "unknown field"},
		{"empty log", "", "replays PCR"},
	} {
		if _, err := Check([]byte(tc.log), testPCR, pcr); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: %s: got %v, want an error with %q", i, tc.name, err, tc.want)
		}
	}
}

func genuine2(lines []string) string { return strings.Join(lines, "") }

func hexOf(b []byte) string { return hex.EncodeToString(b) }
