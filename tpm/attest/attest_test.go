package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// fixture is a real quote from the TPM simulator (regenerate with
// go test ./plugins/tpm -run TestWriteAttestFixtures -update).
type fixture struct {
	name      string
	attest    []byte
	signature []byte
	akPublic  []byte
	nonce     []byte
	pcrs      map[int][]byte
}

func loadFixture(t testing.TB, name string) fixture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Attest    hexBytes            `json:"attest"`
		Signature hexBytes            `json:"signature"`
		AKPublic  hexBytes            `json:"ak_public"`
		Nonce     hexBytes            `json:"nonce"`
		PCRs      map[string]hexBytes `json:"pcrs"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	f := fixture{name: name, attest: j.Attest, signature: j.Signature, akPublic: j.AKPublic, nonce: j.Nonce, pcrs: map[int][]byte{}}
	for k, v := range j.PCRs {
		p, err := strconv.Atoi(k)
		if err != nil {
			t.Fatalf("%s: PCR %q: %v", name, k, err)
		}
		f.pcrs[p] = v
	}
	return f
}

// hexBytes is a JSON string of hex digits.
type hexBytes []byte

func (h *hexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

func fixtures(t testing.TB) []fixture {
	return []fixture{loadFixture(t, "quote-ecc"), loadFixture(t, "quote-rsa")}
}

func (f fixture) ak(t testing.TB) *Public {
	t.Helper()
	p, err := ParsePublic(f.akPublic)
	if err != nil {
		t.Fatalf("%s: %v", f.name, err)
	}
	return p
}

func TestVerifyFixtures(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures(t) {
		ak := f.ak(t)
		if err := CheckAK(ak); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		rep := Verify(f.attest, f.signature, ak, Expected{Nonce: f.nonce, PCRs: f.pcrs})
		if !rep.Verified() {
			t.Fatalf("%s: %+v", f.name, rep.Problems)
		}
		a := rep.Attest
		if a.Magic != GeneratedValue || a.Type != STAttestQuote || !bytes.Equal(a.ExtraData, f.nonce) {
			t.Errorf("%s: %+v", f.name, a)
		}
		if got := a.Quote.Selection[0].PCRs(); !reflect.DeepEqual(got, []int{0, 1, 2, 3, 4, 5, 6, 7, 10}) {
			t.Errorf("%s: selection %v", f.name, got)
		}
		if !bytes.Equal(a.Quote.PCRDigest, PCRDigest(f.pcrs)) {
			t.Errorf("%s: PCRDigest disagrees with the quote", f.name)
		}
		if !bytes.Equal(a.Marshal(), f.attest) {
			t.Errorf("%s: Marshal does not give back the bytes parsed", f.name)
		}
		// go-tpm reads the same structure.
		g, err := tpm2.Unmarshal[tpm2.TPMSAttest](f.attest)
		if err != nil {
			t.Fatal(err)
		}
		if g.ClockInfo.Clock != a.Clock.Clock || g.ClockInfo.ResetCount != a.Clock.ResetCount ||
			g.ClockInfo.RestartCount != a.Clock.RestartCount || bool(g.ClockInfo.Safe) != a.Clock.Safe ||
			g.FirmwareVersion != a.FirmwareVersion || !bytes.Equal(g.QualifiedSigner.Buffer, a.QualifiedSigner) {
			t.Errorf("%s: go-tpm reads %+v, we read %+v", f.name, g, a)
		}
	}
}

// TestParsePublicAgreesWithGoTPM parses the fixtures' AK public areas with
// go-tpm too: same key, same name.
func TestParsePublicAgreesWithGoTPM(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures(t) {
		ours := f.ak(t)
		g, err := tpm2.Unmarshal[tpm2.TPMTPublic](f.akPublic)
		if err != nil {
			t.Fatal(err)
		}
		key, err := tpm2.Pub(*g)
		if err != nil {
			t.Fatal(err)
		}
		type equaler interface{ Equal(crypto.PublicKey) bool }
		if !ours.Key.(equaler).Equal(key) {
			t.Errorf("%s: keys differ", f.name)
		}
		name, err := tpm2.ObjectName(g)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := ours.Name(); !bytes.Equal(got, name.Buffer) {
			t.Errorf("%s: name %x, go-tpm says %x", f.name, got, name.Buffer)
		}
		if ours.Attributes&AttrRestricted == 0 || ours.SchemeHash != AlgSHA256 {
			t.Errorf("%s: %+v", f.name, ours)
		}
	}
}

func TestParseTruncatedAndTrailing(t *testing.T) {
	t.Parallel()
	for _, f := range fixtures(t) {
		for n := range len(f.attest) {
			if _, err := ParseAttest(f.attest[:n]); err == nil || !strings.HasPrefix(err.Error(), "TPMS_ATTEST: at byte") {
				t.Fatalf("%s: attest cut at %d: %v", f.name, n, err)
			}
		}
		for n := range len(f.signature) {
			if _, err := ParseSignature(f.signature[:n]); err == nil || !strings.HasPrefix(err.Error(), "TPMT_SIGNATURE") {
				t.Fatalf("%s: signature cut at %d: %v", f.name, n, err)
			}
		}
		for n := range len(f.akPublic) {
			if _, err := ParsePublic(f.akPublic[:n]); err == nil || !strings.HasPrefix(err.Error(), "TPMT_PUBLIC") {
				t.Fatalf("%s: public cut at %d: %v", f.name, n, err)
			}
		}
		for _, b := range [][]byte{f.attest, f.signature, f.akPublic} {
			long := append(bytes.Clone(b), 0)
			_, e1 := ParseAttest(long)
			_, e2 := ParseSignature(long)
			_, e3 := ParsePublic(long)
			if (e1 == nil && bytes.Equal(b, f.attest)) || (e2 == nil && bytes.Equal(b, f.signature)) || (e3 == nil && bytes.Equal(b, f.akPublic)) {
				t.Fatalf("%s: a trailing byte was accepted", f.name)
			}
		}
	}
	_, err := ParseAttest(append(loadFixture(t, "quote-ecc").attest, 0))
	if err == nil || !strings.Contains(err.Error(), "1 trailing bytes") {
		t.Fatalf("trailing byte: %v", err)
	}
}

// softKey is an attestation key in software, to sign structures a TPM
// would never sign (a wrong magic, a wrong type): the verifier must name
// each problem even when the signature is good.
type softKey struct {
	signer crypto.Signer
	public *Public
}

func newSoftKey(t *testing.T, rsaPSS bool) softKey {
	t.Helper()
	attrs := tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true}
	var pub tpm2.TPMTPublic
	var signer crypto.Signer
	if rsaPSS {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		signer = k
		pub = tpm2.TPMTPublic{
			Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSAPSS, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSAPSS, &tpm2.TPMSSigSchemeRSAPSS{HashAlg: tpm2.TPMAlgSHA256})},
				KeyBits:   2048,
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.Bytes()}),
		}
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer = k
		pt, err := k.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		pub = tpm2.TPMTPublic{
			Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
				CurveID:   tpm2.TPMECCNistP256,
				KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: pt[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: pt[33:]}}),
		}
	}
	p, err := ParsePublic(tpm2.Marshal(pub))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckAK(p); err != nil {
		t.Fatal(err)
	}
	return softKey{signer: signer, public: p}
}

func (k softKey) sign(t *testing.T, msg []byte) []byte {
	t.Helper()
	d := sha256.Sum256(msg)
	switch s := k.signer.(type) {
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, s, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return (&Signature{Alg: AlgECDSA, Hash: AlgSHA256, R: r.Bytes(), S: ss.Bytes()}).Marshal()
	case *rsa.PrivateKey:
		sig, err := rsa.SignPSS(rand.Reader, s, crypto.SHA256, d[:], nil)
		if err != nil {
			t.Fatal(err)
		}
		return (&Signature{Alg: AlgRSAPSS, Hash: AlgSHA256, RSA: sig}).Marshal()
	}
	t.Fatal("unknown signer")
	return nil
}

func TestVerifyEachProblem(t *testing.T) {
	t.Parallel()
	pcrs := map[int][]byte{0: bytes.Repeat([]byte{1}, 32), 1: bytes.Repeat([]byte{2}, 32), 7: bytes.Repeat([]byte{3}, 32)}
	nonce := []byte("a nonce of thirty-two bytes.....")
	good := func() *Attest {
		return &Attest{
			Magic: GeneratedValue, Type: STAttestQuote,
			QualifiedSigner: append([]byte{0, 0x0b}, make([]byte, 32)...),
			ExtraData:       bytes.Clone(nonce),
			Clock:           ClockInfo{Clock: 12345, ResetCount: 3, RestartCount: 1, Safe: true},
			FirmwareVersion: 0x2019061900163636,
			Quote: &QuoteInfo{
				Selection: []PCRSelection{NewPCRSelection(AlgSHA256, []int{0, 1, 7})},
				PCRDigest: PCRDigest(pcrs),
			},
		}
	}
	for _, pss := range []bool{false, true} {
		key := newSoftKey(t, pss)
		for i, tc := range []struct {
			name  string
			alter func(a *Attest)
			want  []Code
		}{
			{"well formed", func(*Attest) {}, nil},
			{"magic", func(a *Attest) { a.Magic = 0xff544348 }, []Code{BadMagic}},
			{"type certify", func(a *Attest) { a.Type = 0x8017; a.Attested = []byte{0, 0, 0, 0} }, []Code{BadType}},
			{"nonce", func(a *Attest) { a.ExtraData[0] ^= 1 }, []Code{NonceMismatch}},
			{"no nonce", func(a *Attest) { a.ExtraData = nil }, []Code{NonceMismatch}},
			{"fewer PCRs", func(a *Attest) { a.Quote.Selection = []PCRSelection{NewPCRSelection(AlgSHA256, []int{0, 1})} }, []Code{SelectionMismatch}},
			{"more PCRs", func(a *Attest) { a.Quote.Selection = []PCRSelection{NewPCRSelection(AlgSHA256, []int{0, 1, 7, 8})} }, []Code{SelectionMismatch}},
			{"SHA-1 bank", func(a *Attest) { a.Quote.Selection = []PCRSelection{NewPCRSelection(AlgSHA1, []int{0, 1, 7})} }, []Code{SelectionMismatch}},
			{"same PCRs split over two selections", func(a *Attest) {
				a.Quote.Selection = []PCRSelection{NewPCRSelection(AlgSHA256, []int{0, 1}), NewPCRSelection(AlgSHA256, []int{7}), NewPCRSelection(AlgSHA1, nil)}
			}, nil},
			{"digest", func(a *Attest) { a.Quote.PCRDigest = PCRDigest(map[int][]byte{0: pcrs[0]}) }, []Code{PCRDigestMismatch}},
			{"magic and nonce", func(a *Attest) { a.Magic = 0; a.ExtraData = []byte("old") }, []Code{BadMagic, NonceMismatch}},
		} {
			a := good()
			tc.alter(a)
			raw := a.Marshal()
			rep := Verify(raw, key.sign(t, raw), key.public, Expected{Nonce: nonce, PCRs: pcrs})
			if !rep.SignatureValid {
				t.Fatalf("Test %d (%s, pss %v): signature invalid: %+v", i, tc.name, pss, rep.Problems)
			}
			var got []Code
			for _, p := range rep.Problems {
				got = append(got, p.Code)
				if p.Message == "" {
					t.Errorf("Test %d (%s): %s has no message", i, tc.name, p.Code)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Test %d (%s, pss %v): problems %+v, want %v", i, tc.name, pss, rep.Problems, tc.want)
			}
			if rep.Verified() != (tc.want == nil) {
				t.Errorf("Test %d (%s): Verified() = %v", i, tc.name, rep.Verified())
			}
		}
	}
}

func TestVerifySignatureRules(t *testing.T) {
	t.Parallel()
	f := loadFixture(t, "quote-ecc")
	ak := f.ak(t)
	want := Expected{Nonce: f.nonce, PCRs: f.pcrs}
	sig, err := ParseSignature(f.signature)
	if err != nil {
		t.Fatal(err)
	}
	rsaFix := loadFixture(t, "quote-rsa")
	for i, tc := range []struct {
		name string
		sig  []byte
		ak   *Public
		msg  string
	}{
		{"SHA-1", (&Signature{Alg: AlgECDSA, Hash: AlgSHA1, R: sig.R, S: sig.S}).Marshal(), &Public{Type: AlgECC, Scheme: AlgNull, Key: ak.Key}, "SHA-1"},
		{"scheme differs from the key's", (&Signature{Alg: AlgECDSA, Hash: AlgSHA384, R: sig.R, S: sig.S}).Marshal(), ak, "differs from the key's"},
		{"RSA signature, ECC key", rsaFix.signature, ak, "differs from the key's"},
		{"RSA signature, ECC key without scheme", rsaFix.signature, &Public{Type: AlgECC, Scheme: AlgNull, Key: ak.Key}, "not RSA"},
		{"no key", f.signature, nil, "no attestation key"},
		{"zero S", (&Signature{Alg: AlgECDSA, Hash: AlgSHA256, R: sig.R, S: nil}).Marshal(), ak, "does not verify"},
	} {
		rep := Verify(f.attest, tc.sig, tc.ak, want)
		if rep.SignatureValid || len(rep.Problems) != 1 || rep.Problems[0].Code != SignatureInvalid || !strings.Contains(rep.Problems[0].Message, tc.msg) {
			t.Errorf("Test %d (%s): %+v", i, tc.name, rep.Problems)
		}
	}
	// An HMAC "signature" is not one a quote can carry.
	rep := Verify(f.attest, []byte{0, 5, 0, 0x0b}, ak, want)
	if !rep.Has(Malformed) || rep.SignatureValid {
		t.Errorf("HMAC signature: %+v", rep.Problems)
	}
}

func TestCheckAK(t *testing.T) {
	t.Parallel()
	ak := loadFixture(t, "quote-ecc").ak(t)
	for i, tc := range []struct {
		alter func(p *Public)
		msg   string // "" when acceptable
	}{
		{func(*Public) {}, ""},
		{func(p *Public) { p.Attributes &^= AttrRestricted }, "restricted"},
		{func(p *Public) { p.Attributes &^= AttrSign }, "sign"},
		{func(p *Public) { p.Attributes &^= AttrFixedTPM }, "fixedTPM"},
		{func(p *Public) { p.Attributes &^= AttrSensitiveDataOrigin }, "sensitiveDataOrigin"},
		{func(p *Public) { p.Attributes |= AttrDecrypt }, "decrypt"},
		{func(p *Public) { p.NameAlg = AlgSHA1 }, "SHA-1"},
		{func(p *Public) { p.Scheme, p.SchemeHash = AlgNull, AlgNull }, "not RSASSA, RSAPSS or ECDSA"},
		{func(p *Public) { p.SchemeHash = AlgSHA1 }, "SHA-1"},
	} {
		p := *ak
		tc.alter(&p)
		err := CheckAK(&p)
		if (tc.msg == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("Test %d: %v, want %q", i, err, tc.msg)
		}
	}
}

func TestParsePublicRejects(t *testing.T) {
	t.Parallel()
	ecc := loadFixture(t, "quote-ecc").akPublic
	rsaPub := loadFixture(t, "quote-rsa").akPublic
	// Offsets in the fixtures: type 0, nameAlg 2, attributes 4, authPolicy
	// size 8, symmetric 10, scheme 12..15, then RSA keyBits 16 / ECC curve 16.
	set := func(b []byte, off int, v ...byte) []byte {
		out := bytes.Clone(b)
		copy(out[off:], v)
		return out
	}
	for i, tc := range []struct {
		in  []byte
		msg string
	}{
		{set(ecc, 0, 0, 8), "is not RSA"},
		{set(ecc, 16, 0, 0x20), "unsupported ECC curve"},
		{set(ecc, 10, 0, 0x0a), "symmetric.algorithm: unsupported"},
		{set(ecc, 12, 0, 0x99), "scheme.scheme: unsupported"},
		{set(ecc, len(ecc)-1, ecc[len(ecc)-1]^1), "ECC point"},
		{set(rsaPub, 16, 0x04, 0), "RSA key of 1024 bits"},
		{set(rsaPub, 16, 0x0c, 0), "does not have the declared 3072 bits"},
		{set(rsaPub, 18, 0, 0, 0, 4), "RSA exponent 4"},
	} {
		if _, err := ParsePublic(tc.in); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Test %d: %v, want %q", i, err, tc.msg)
		}
	}
}

func TestPCRSelection(t *testing.T) {
	t.Parallel()
	s := NewPCRSelection(AlgSHA256, []int{23, 0, 9})
	if !reflect.DeepEqual(s.Bitmap, []byte{0x01, 0x02, 0x80}) || !reflect.DeepEqual(s.PCRs(), []int{0, 9, 23}) {
		t.Fatalf("%+v %v", s, s.PCRs())
	}
	if s := NewPCRSelection(AlgSHA256, []int{30}); len(s.Bitmap) != 4 || !reflect.DeepEqual(s.PCRs(), []int{30}) {
		t.Fatalf("%+v", s)
	}
	if len(NewPCRSelection(AlgSHA256, nil).Bitmap) != 3 {
		t.Fatal("PCR_SELECT_MIN is 3 bytes")
	}
}
