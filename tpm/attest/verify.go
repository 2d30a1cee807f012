package attest

import (
	"crypto"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Code names one way a quote fails to verify. The tpm plugin reports each
// as the finding code "tpm." + Code.
type Code string

// The ways a quote fails.
const (
	// Malformed: the TPMS_ATTEST or TPMT_SIGNATURE bytes do not parse.
	Malformed Code = "quote_malformed"
	// SignatureInvalid: the signature does not verify against the AK.
	SignatureInvalid Code = "quote_signature_invalid"
	// BadMagic: the structure does not start with TPM_GENERATED_VALUE.
	BadMagic Code = "quote_bad_magic"
	// BadType: the structure is not a TPM_ST_ATTEST_QUOTE.
	BadType Code = "quote_bad_type"
	// NonceMismatch: extraData is not the nonce sent with the quote.
	NonceMismatch Code = "quote_nonce_mismatch"
	// SelectionMismatch: the quoted PCRs are not the PCRs requested.
	SelectionMismatch Code = "quote_selection_mismatch"
	// PCRDigestMismatch: pcrDigest is not the digest of the PCR values read.
	PCRDigestMismatch Code = "quote_pcr_digest_mismatch"
)

// Problem is one way a quote failed, with a message for a human.
type Problem struct {
	Code    Code
	Message string
}

func (p Problem) Error() string { return string(p.Code) + ": " + p.Message }

// Expected is what the verifier holds a quote to.
type Expected struct {
	// Nonce is the qualifying data sent with TPM2_Quote.
	Nonce []byte
	// PCRs maps each PCR index requested from the SHA-256 bank to the value
	// read from it. The quote must select exactly these PCRs.
	PCRs map[int][]byte
	// Banks holds the values of the other banks quoted with the SHA-256
	// one, by hash algorithm (AlgSHA1, ...): PCR index -> value. The quote
	// must select exactly these too.
	Banks map[uint16]map[int][]byte
}

// values returns the expected values of bank h.
func (e Expected) values(h uint16) map[int][]byte {
	if h == AlgSHA256 {
		return e.PCRs
	}
	return e.Banks[h]
}

// Report is the outcome of verifying one quote.
type Report struct {
	// Attest is the parsed structure; nil when it did not parse.
	Attest *Attest
	// SignatureValid is true when the signature verified against the AK:
	// only then are the contents of Attest (its clock, for one) the TPM's.
	SignatureValid bool
	// Problems lists every way the quote failed, in a fixed order.
	Problems []Problem
}

// Verified reports whether the quote passed every check.
func (r *Report) Verified() bool { return r.SignatureValid && len(r.Problems) == 0 }

// Has reports whether the report holds a problem with code c.
func (r *Report) Has(c Code) bool {
	for _, p := range r.Problems {
		if p.Code == c {
			return true
		}
	}
	return false
}

func (r *Report) add(c Code, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Code: c, Message: fmt.Sprintf(format, args...)})
}

// Verify checks a quote: attest is the TPMS_ATTEST the TPM signed, sig the
// TPMT_SIGNATURE over it and ak the attestation key's public area (see
// CheckAK). It reports every problem it finds, not only the first: the
// signature, the magic TPM_GENERATED_VALUE, the type TPM_ST_ATTEST_QUOTE,
// extraData against the nonce, the PCR selection against want.PCRs (and
// want.Banks), and pcrDigest against the digest, with the signing scheme's
// hash, of the values concatenated in the quote's selection order.
func Verify(attest, sig []byte, ak *Public, want Expected) *Report {
	rep := &Report{}
	// pcrDigest uses the hash of the signing scheme: the key's when the
	// key fixes one, else the signature's.
	digestHash := crypto.SHA256
	if ak != nil && ak.Scheme != AlgNull {
		if h, err := hashFor(ak.SchemeHash); err == nil {
			digestHash = h
		}
	}
	if s, err := ParseSignature(sig); err != nil {
		rep.add(Malformed, "%v", err)
	} else {
		if h, err := hashOf(s); err == nil && (ak == nil || ak.Scheme == AlgNull) {
			digestHash = h
		}
		if ak == nil {
			rep.add(SignatureInvalid, "no attestation key to verify the signature against")
		} else if err := VerifySignature(ak, attest, s); err != nil {
			rep.add(SignatureInvalid, "%v", err)
		} else {
			rep.SignatureValid = true
		}
	}
	a, err := ParseAttest(attest)
	if err != nil {
		rep.add(Malformed, "%v", err)
		rep.SignatureValid = false
		return rep
	}
	rep.Attest = a
	if a.Magic != GeneratedValue {
		rep.add(BadMagic, "magic is 0x%08x, not TPM_GENERATED_VALUE 0x%08x: the TPM did not generate this structure", a.Magic, GeneratedValue)
	}
	if a.Type != STAttestQuote {
		rep.add(BadType, "type is 0x%04x, not TPM_ST_ATTEST_QUOTE 0x%04x", a.Type, STAttestQuote)
	}
	if len(a.ExtraData) != len(want.Nonce) || subtle.ConstantTimeCompare(a.ExtraData, want.Nonce) != 1 {
		rep.add(NonceMismatch, "extraData is %s, the nonce sent was %s: the quote is not an answer to this request", hexOrEmpty(a.ExtraData), hexOrEmpty(want.Nonce))
	}
	if a.Quote == nil {
		return rep
	}
	wantSel := map[selectionKey]bool{}
	for p := range want.PCRs {
		wantSel[selectionKey{AlgSHA256, p}] = true
	}
	for h, vals := range want.Banks {
		for p := range vals {
			wantSel[selectionKey{h, p}] = true
		}
	}
	gotSel := selectionSet(a.Quote.Selection)
	if !sameSelection(gotSel, wantSel) {
		rep.add(SelectionMismatch, "quoted PCRs %s, requested %s", describeSelection(gotSel), describeSelection(wantSel))
		return rep
	}
	d := digestHash.New()
	for _, s := range a.Quote.Selection {
		vals := want.values(s.Hash)
		for _, p := range s.PCRs() {
			d.Write(vals[p])
		}
	}
	if sum := d.Sum(nil); subtle.ConstantTimeCompare(sum, a.Quote.PCRDigest) != 1 {
		rep.add(PCRDigestMismatch, "pcrDigest is %s, the PCR values read give %s", hexOrEmpty(a.Quote.PCRDigest), hex.EncodeToString(sum))
	}
	return rep
}

// PCRDigest returns the SHA-256 digest of the values of pcrs concatenated
// in increasing PCR order: the pcrDigest of a quote of those PCRs from the
// SHA-256 bank by a key with a SHA-256 scheme.
func PCRDigest(pcrs map[int][]byte) []byte {
	idx := make([]int, 0, len(pcrs))
	for p := range pcrs {
		idx = append(idx, p)
	}
	d := crypto.SHA256.New()
	for _, p := range sortedInts(idx) {
		d.Write(pcrs[p])
	}
	return d.Sum(nil)
}

func sameSelection(a, b map[selectionKey]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func describeSelection(s map[selectionKey]bool) string {
	banks := map[uint16][]int{}
	for k := range s {
		banks[k.hash] = append(banks[k.hash], k.pcr)
	}
	hashes := make([]int, 0, len(banks))
	for h := range banks {
		hashes = append(hashes, int(h))
	}
	sort.Ints(hashes)
	parts := make([]string, 0, len(hashes))
	for _, h := range hashes {
		parts = append(parts, fmt.Sprintf("%s%v", bankName(uint16(h)), sortedInts(banks[uint16(h)])))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func bankName(h uint16) string {
	switch h {
	case AlgSHA1:
		return "sha1"
	case AlgSHA256:
		return "sha256"
	case AlgSHA384:
		return "sha384"
	case AlgSHA512:
		return "sha512"
	case AlgSM3:
		return "sm3_256"
	}
	return fmt.Sprintf("alg0x%04x", h)
}

func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return "(empty)"
	}
	return hex.EncodeToString(b)
}
