package engine

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/core/verdict"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// TestVerdictMeasurementProblemIsAFinding: the engine measures each
// bundle's verdict; when the verdict PCR does not replay from the log
// (something else extended it), nothing is extended and the next bundle
// carries core.verdict_measurement, so it is not attested.
func TestVerdictMeasurementProblemIsAFinding(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{{name: "echo"}}, nil)
	sw := swtpmtest.Start(t)
	tp := evidence.New(evidence.Options{Open: sw.Open})
	other := sha256.Sum256([]byte("not the attestor"))
	if err := tp.Exclusive(context.Background(), func(x transport.TPM) error { return evidence.ExtendPCR(x, 13, other[:]) }); err != nil {
		t.Fatal(err)
	}
	m := verdict.New(verdict.Options{TPM: tp, PCR: 13, LogPath: filepath.Join(f.dir, "run", "verdict.log")})
	f.engine.verdict = m

	if _, b := f.attest(); b.State != state.Attested {
		t.Fatalf("state %s, failures %v", b.State, b.Failures)
	}
	_, b := f.attest()
	if sev, ok := codes(b)["core.verdict_measurement"]; !ok || sev != sdk.SeverityMedium || b.State != state.Degraded {
		t.Fatalf("second bundle: state %s, failures %v; want core.verdict_measurement (medium), degraded", b.State, b.Failures)
	}
	if s := m.Status(); s.Measuring || s.Records != 0 {
		t.Errorf("status %+v", s)
	}
}
