package verdict

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"github.com/secure-ai/runtime-attestor/internal/tpmio"
)

// TestDisagreementHalts: a PCR something else extended, or a log edited
// between restarts, is reported and nothing more is extended.
func TestDisagreementHalts(t *testing.T) {
	t.Parallel()
	sw := swtpmtest.Start(t)
	tp := evidence.New(evidence.Options{Open: sw.Open})
	dir := t.TempDir()

	// Someone else extends the PCR before the daemon starts.
	other := sha256.Sum256([]byte("another component"))
	if err := tp.Exclusive(context.Background(), func(x transport.TPM) error { return evidence.ExtendPCR(x, testPCR, other[:]) }); err != nil {
		t.Fatal(err)
	}
	m := New(Options{TPM: tp, PCR: testPCR, LogPath: filepath.Join(dir, "a", "verdict.log")})
	before := readPCR(t, tp)
	for i := 0; i < 2; i++ {
		err := m.Measure(context.Background(), testBundle(t, uint64(i), state.Attested), nil)
		if !errors.Is(err, ErrHalted) || !strings.Contains(err.Error(), "replays PCR") {
			t.Fatalf("attempt %d: got %v, want ErrHalted", i, err)
		}
	}
	if !bytes.Equal(readPCR(t, tp), before) {
		t.Error("a halted measurer extended the PCR")
	}
	if s := m.Status(); s.Measuring || !strings.Contains(s.Reason, "replays") || m.Problem() == nil {
		t.Errorf("status %+v, problem %v", s, m.Problem())
	}

	// Someone extends the PCR while the daemon runs.
	sw2 := swtpmtest.Start(t)
	tp2 := evidence.New(evidence.Options{Open: sw2.Open})
	logPath := filepath.Join(dir, "b", "verdict.log")
	m = New(Options{TPM: tp2, PCR: testPCR, LogPath: logPath})
	measure(t, m, testBundle(t, 1, state.Attested))
	if err := tp2.Exclusive(context.Background(), func(x transport.TPM) error { return evidence.ExtendPCR(x, testPCR, other[:]) }); err != nil {
		t.Fatal(err)
	}
	if err := m.Measure(context.Background(), testBundle(t, 2, state.Degraded, "x.y"), nil); !errors.Is(err, ErrHalted) {
		t.Fatalf("got %v, want ErrHalted", err)
	}
	if recs, err := Parse(logOf(t, logPath), testPCR); err != nil || len(recs) != 1 {
		t.Errorf("log has %d records (%v), want the 1 measured", len(recs), err)
	}

	// A log edited between restarts.
	sw3 := swtpmtest.Start(t)
	tp3 := evidence.New(evidence.Options{Open: sw3.Open})
	logPath = filepath.Join(dir, "c", "verdict.log")
	m = New(Options{TPM: tp3, PCR: testPCR, LogPath: logPath})
	measure(t, m, testBundle(t, 1, state.Degraded, "x.y"))
	if err := os.WriteFile(logPath, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	m = New(Options{TPM: tp3, PCR: testPCR, LogPath: logPath})
	if err := m.Measure(context.Background(), testBundle(t, 2, state.Attested), nil); !errors.Is(err, ErrHalted) {
		t.Fatalf("a truncated log was continued: %v", err)
	}
}

// TestLogFileIsGuarded: a log folder or file others can write, or a
// symbolic link in place of the log, is refused before anything is
// extended.
func TestLogFileIsGuarded(t *testing.T) {
	t.Parallel()
	sw := swtpmtest.Start(t)
	tp := evidence.New(evidence.Options{Open: sw.Open})
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose")
	if err := os.Mkdir(loose, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(loose, "verdict.log"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(loose, "verdict.log"), 0o666); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Mkdir(link, 0o750); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target.log")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(link, "verdict.log")); err != nil {
		t.Fatal(err)
	}
	zero := readPCR(t, tp)
	for i, tc := range []struct{ dir, want string }{{open, "writable by group or others"}, {loose, "writable by group or others"}, {link, "symbolic link"}} {
		m := New(Options{TPM: tp, PCR: testPCR, LogPath: filepath.Join(tc.dir, "verdict.log")})
		err := m.Measure(context.Background(), testBundle(t, 1, state.Attested), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: got %v, want %q", i, err, tc.want)
		}
	}
	if !bytes.Equal(readPCR(t, tp), zero) {
		t.Error("the PCR was extended although the log was refused")
	}
}

func TestWithoutTPM(t *testing.T) {
	t.Parallel()
	m := New(Options{PCR: testPCR, LogPath: filepath.Join(t.TempDir(), "verdict.log")})
	if err := m.Measure(context.Background(), testBundle(t, 1, state.Attested), nil); err != nil {
		t.Fatal(err)
	}
	if s := m.Status(); s.Measuring || !strings.Contains(s.Reason, "no TPM") {
		t.Errorf("status %+v", s)
	}
	absent := evidence.New(evidence.Options{Open: func(context.Context) (tpmio.Conn, error) { return nil, tpmio.ErrAbsent }})
	m = New(Options{TPM: absent, PCR: testPCR, LogPath: filepath.Join(t.TempDir(), "verdict.log")})
	if err := m.Measure(context.Background(), testBundle(t, 1, state.Attested), nil); err != nil || m.Problem() != nil {
		t.Errorf("got %v, problem %v; want no error and no problem without a TPM", err, m.Problem())
	}
	if s := m.Status(); s.Measuring || !strings.Contains(s.Reason, "no TPM") {
		t.Errorf("status %+v", s)
	}
}

// TestQuoteCarriesTheLog: evidence from swtpm quotes the verdict PCR and
// carries the log, which replays to the quoted value; tpm2_checkquote
// verifies the quote over it.
func TestQuoteCarriesTheLog(t *testing.T) {
	t.Parallel()
	sw := swtpmtest.Start(t)
	signer, err := identity.New(identity.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "run", "verdict.log")
	tp := evidence.New(evidence.Options{Open: sw.Open, Secret: signer.DeriveSecret(evidence.SecretLabel),
		PCRs: []int{0, 7}, VerdictLog: logPath, VerdictPCR: testPCR})
	m := New(Options{TPM: tp, PCR: testPCR, LogPath: logPath})
	measure(t, m, testBundle(t, 1, state.Attested))
	measure(t, m, testBundle(t, 2, state.Degraded, "binaries.mismatch"))
	raw := testBundle(t, 3, state.Attested)
	measure(t, m, raw)

	nonce := bytes.Repeat([]byte{7}, 32)
	qd, digest, err := evidence.QualifyingData(nonce, raw)
	if err != nil {
		t.Fatal(err)
	}
	q, err := tp.Quote(context.Background(), qd)
	if err != nil {
		t.Fatal(err)
	}
	evRaw, err := json.Marshal(evidence.Build(nonce, raw, qd, digest, q))
	if err != nil {
		t.Fatal(err)
	}
	k, err := identity.ParsePublicPEM([]byte(q.AK.PEM))
	if err != nil {
		t.Fatal(err)
	}
	v, err := evidence.Verify(evRaw, k, nonce)
	if err != nil {
		t.Fatal(err)
	}
	ev := v.Evidence
	if ev.VerdictPCR == nil || *ev.VerdictPCR != testPCR || ev.VerdictLog == nil {
		t.Fatalf("evidence has no verdict log: %+v", ev.VerdictPCR)
	}
	recs, err := Check([]byte(*ev.VerdictLog), testPCR, v.PCRs[testPCR])
	if err != nil || len(recs) != 3 {
		t.Fatalf("the carried log does not replay to the quoted PCR: %d records, %v", len(recs), err)
	}

	checkquote, err := exec.LookPath("tpm2_checkquote")
	if err != nil {
		t.Skip("tpm2_checkquote is not installed (scripts/install-deps.sh, or apt-get install tpm2-tools)")
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := []string{"-u", write("ak.pem", []byte(q.AK.PEM)), "-m", write("quote.msg", q.Attest), "-s", write("quote.sig", q.Signature),
		"-f", write("pcrs.bin", evidence.TPM2ToolsPCRs(v.PCRs)), "-g", "sha256", "-q", hex.EncodeToString(qd)}
	if out, err := exec.Command(checkquote, args...).CombinedOutput(); err != nil {
		t.Fatalf("tpm2_checkquote: %v\n%s", err, out)
	}
	forged := make(map[int][]byte)
	for p, val := range v.PCRs {
		forged[p] = val
	}
	forged[testPCR], _ = Replay(recs[:2]) // the PCR as it stood while degraded
	args[7] = write("pcrs.bin", evidence.TPM2ToolsPCRs(forged))
	if err := exec.Command(checkquote, args...).Run(); err == nil {
		t.Error("tpm2_checkquote accepted an older verdict PCR value")
	}
}
