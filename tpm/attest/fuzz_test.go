package attest

import (
	"bytes"
	"testing"
)

// The fuzz targets cover every parser of bytes that come from the TPM (or
// from whoever sits between it and the plugin). Seeds in testdata/fuzz are
// real structures from the TPM simulator.

func FuzzParseAttest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAttest(data)
		if err != nil {
			return
		}
		if !bytes.Equal(a.Marshal(), data) {
			t.Fatalf("parse then marshal changed the bytes:\n%x\n%x", data, a.Marshal())
		}
		if a.Quote != nil {
			for _, s := range a.Quote.Selection {
				for _, p := range s.PCRs() {
					if p < 0 || p >= 8*len(s.Bitmap) {
						t.Fatalf("PCR %d outside a %d-byte bitmap", p, len(s.Bitmap))
					}
				}
			}
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignature(data)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), data) {
			t.Fatalf("parse then marshal changed the bytes:\n%x\n%x", data, s.Marshal())
		}
	})
}

func FuzzParsePublic(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePublic(data)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Raw, data) || p.Key == nil {
			t.Fatalf("parsed %+v from %x", p, data)
		}
		if err := CheckAK(p); err == nil {
			if _, err := p.Name(); err != nil {
				t.Fatalf("an acceptable AK has no name: %v", err)
			}
		}
	})
}

// FuzzVerify feeds arbitrary quote and signature bytes to the verifier
// with the ECC fixture's key and expectations: it must never panic, and
// only the fixture's own TPMS_ATTEST can verify.
func FuzzVerify(f *testing.F) {
	fx := loadFixture(f, "quote-ecc")
	ak, err := ParsePublic(fx.akPublic)
	if err != nil {
		f.Fatal(err)
	}
	want := Expected{Nonce: fx.nonce, PCRs: fx.pcrs}
	f.Fuzz(func(t *testing.T, attest, sig []byte) {
		rep := Verify(attest, sig, ak, want)
		if rep.Verified() && !bytes.Equal(attest, fx.attest) {
			t.Fatalf("forged quote verified: %x", attest)
		}
		if rep.SignatureValid && rep.Attest == nil {
			t.Fatal("a valid signature over bytes that do not parse")
		}
	})
}
