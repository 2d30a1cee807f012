package evidence

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/identity"
)

// The fixture testdata/evidence.json is genuine evidence from the
// go-tpm-tools simulator for nonce 0x01 x 32 over an attested bundle
// (evidence-degraded.json: a degraded one), its AK in testdata/ak.pem;
// EVIDENCE_WRITE_FIXTURE=1 go test -run TestWriteFixture ./core/evidence
// writes them again.

func fixture(t testing.TB) ([]byte, any) {
	t.Helper()
	ev, err := os.ReadFile(filepath.Join("testdata", "evidence.json"))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join("testdata", "ak.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ak, err := identity.ParsePublicPEM(pem)
	if err != nil {
		t.Fatal(err)
	}
	return ev, ak
}

func TestWriteFixture(t *testing.T) {
	if os.Getenv("EVIDENCE_WRITE_FIXTURE") == "" {
		t.Skip("set EVIDENCE_WRITE_FIXTURE=1 to write testdata/evidence.json")
	}
	open, _ := simOpen(t)
	s := testSigner(t)
	tp := New(Options{Open: open, Secret: s.DeriveSecret(SecretLabel), PCRs: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14}})
	ak := pinned(t, tp)
	ev := evidenceFor(t, tp, nonceOf(1), testBundle(t, s))
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "evidence.json"), ev, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "ak.pem"), []byte(ak.PEM), 0o644); err != nil {
		t.Fatal(err)
	}
	degraded := evidenceFor(t, tp, nonceOf(1), testBundleIn(t, s, "degraded"))
	if err := os.WriteFile(filepath.Join("testdata", "evidence-degraded.json"), degraded, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFixtureVerifies: recorded simulator evidence verifies without a TPM,
// for its nonce only.
func TestFixtureVerifies(t *testing.T) {
	t.Parallel()
	ev, ak := fixture(t)
	if _, err := Verify(ev, ak, nonceOf(1)); err != nil {
		t.Fatalf("recorded evidence: %v", err)
	}
	if _, err := Verify(ev, ak, nonceOf(2)); err == nil {
		t.Fatal("recorded evidence verified for another nonce")
	}
}

func FuzzVerifyEvidence(f *testing.F) {
	ev, ak := fixture(f)
	f.Add(ev)
	f.Add([]byte(`{"evidence_version":1,"bundle":{},"quote":{"pcr_bank":"sha256","pcrs":{"0":"00"}}}`))
	f.Add([]byte(`{"evidence_version":1,"ak":{"tpm2b_public":"AAE="},"bundle":{"a":1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := Verify(raw, ak, nonceOf(1))
		if err == nil && (v == nil || !v.Report.Verified()) {
			t.Fatal("Verify returned no error for evidence whose quote did not verify")
		}
	})
}

func FuzzTPM2BPublic(f *testing.F) {
	f.Add([]byte{0, 1, 0})
	f.Fuzz(func(t *testing.T, raw []byte) { _, _ = ParseTPM2BPublic(raw) })
}
