package evidence

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// Version is evidence_version.
const Version = 1

// Nonce bounds: a verifier's nonce is 16 to 64 bytes.
const (
	MinNonce = 16
	MaxNonce = 64
)

// Evidence is the body of GET /api/v1/evidence. See docs/api.md.
type Evidence struct {
	EvidenceVersion int `json:"evidence_version"`
	// Nonce is the verifier's nonce, lowercase hex.
	Nonce string `json:"nonce"`
	// BundleDigest is SHA-256 of the bundle without its signatures
	// (bundle.ContentDigest), lowercase hex.
	BundleDigest string `json:"bundle_digest"`
	// QualifyingData is SHA-256(nonce || bundle digest), lowercase hex: the
	// quote's extraData.
	QualifyingData string    `json:"qualifying_data"`
	Quote          QuoteJSON `json:"quote"`
	AK             AKPublic  `json:"ak"`
	// Bundle is the latest bundle, byte for byte as signed.
	Bundle json.RawMessage `json:"bundle"`
	// VerdictPCR is the PCR verdicts are extended into (in the quote) and
	// VerdictLog its verdict log, the file's text as of the quote; both
	// absent when verdicts are not measured (docs/tpm.md).
	VerdictPCR *int    `json:"verdict_pcr,omitempty"`
	VerdictLog *string `json:"verdict_log,omitempty"`
}

// QuoteJSON is the quote in Evidence.
type QuoteJSON struct {
	// Attest is the TPMS_ATTEST the TPM signed; Signature the
	// TPMT_SIGNATURE; both in the TPM's wire format, standard base64.
	Attest    []byte `json:"attest"`
	Signature []byte `json:"signature"`
	// PCRBank is "sha256".
	PCRBank string `json:"pcr_bank"`
	// PCRs maps each quoted PCR (decimal) to its value, lowercase hex.
	PCRs map[string]string `json:"pcrs"`
}

// ParseNonce decodes a verifier's nonce: MinNonce..MaxNonce bytes of hex.
func ParseNonce(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("nonce is missing: pass ?nonce= with %d to %d random bytes in hex", MinNonce, MaxNonce)
	}
	if len(s) > 2*MaxNonce {
		return nil, fmt.Errorf("nonce is %d hex digits, more than %d bytes", len(s), MaxNonce)
	}
	n, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("nonce is not hex (want an even number of 0-9a-f digits)")
	}
	if len(n) < MinNonce {
		return nil, fmt.Errorf("nonce is %d bytes, fewer than %d", len(n), MinNonce)
	}
	return n, nil
}

// QualifyingData returns SHA-256(nonce || bundle.ContentDigest(raw)) and
// the content digest.
func QualifyingData(nonce, rawBundle []byte) (qd, digest []byte, err error) {
	digest, err = bundle.ContentDigest(rawBundle)
	if err != nil {
		return nil, nil, err
	}
	h := sha256.New()
	h.Write(nonce)
	h.Write(digest)
	return h.Sum(nil), digest, nil
}

// Build assembles the evidence for a quote over qd of rawBundle.
func Build(nonce, rawBundle, qd, digest []byte, q *Quote) *Evidence {
	pcrs := make(map[string]string, len(q.PCRs))
	for p, v := range q.PCRs {
		pcrs[strconv.Itoa(p)] = hex.EncodeToString(v)
	}
	ev := &Evidence{
		EvidenceVersion: Version,
		Nonce:           hex.EncodeToString(nonce),
		BundleDigest:    hex.EncodeToString(digest),
		QualifyingData:  hex.EncodeToString(qd),
		Quote:           QuoteJSON{Attest: q.Attest, Signature: q.Signature, PCRBank: "sha256", PCRs: pcrs},
		AK:              q.AK,
		Bundle:          rawBundle,
	}
	if q.VerdictPCR != nil {
		pcr, log := *q.VerdictPCR, string(q.VerdictLog)
		ev.VerdictPCR, ev.VerdictLog = &pcr, &log
	}
	return ev
}

// Verified is what Verify established.
type Verified struct {
	Evidence *Evidence
	PCRs     map[int][]byte
	Report   *attest.Report
}

// Verify checks evidence raw against the verifier's nonce and the AK public
// key the verifier pinned (never the one inside the evidence): the AK in the
// evidence is that key and a restricted signing key; the quote's signature
// verifies; it is a TPM-generated quote; its extraData is
// SHA-256(nonce || SHA-256(JCS(bundle without signatures))), which binds it
// to this nonce (no replay) and this bundle (no edited field); it quotes
// exactly the listed PCRs and its pcrDigest is their digest (no edited
// value). Every failure is listed in the error. It does not judge the
// bundle's state or its signature: see the caller.
func Verify(raw []byte, pinnedAK crypto.PublicKey, nonce []byte) (*Verified, error) {
	var ev Evidence
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("evidence is not the JSON of GET /api/v1/evidence: %w", err)
	}
	if ev.EvidenceVersion != Version {
		return nil, fmt.Errorf("evidence_version %d: this verifier reads version %d", ev.EvidenceVersion, Version)
	}
	if len(ev.Bundle) == 0 || string(ev.Bundle) == "null" {
		return nil, errors.New("evidence carries no bundle")
	}
	var problems []error
	if ev.Nonce != hex.EncodeToString(nonce) {
		problems = append(problems, fmt.Errorf("the evidence answers nonce %s, not %x: it is not an answer to this request (replayed?)", clip(ev.Nonce), nonce))
	}
	qd, digest, err := QualifyingData(nonce, ev.Bundle)
	if err != nil {
		return nil, fmt.Errorf("evidence bundle: %w", err)
	}
	if ev.BundleDigest != hex.EncodeToString(digest) {
		problems = append(problems, fmt.Errorf("bundle_digest %s is not the digest of the bundle (%x)", clip(ev.BundleDigest), digest))
	}
	ak, err := checkAK(ev.AK, pinnedAK)
	if err != nil {
		problems = append(problems, err)
	}
	pcrs, err := parsePCRs(ev.Quote)
	if err != nil {
		problems = append(problems, err)
	}
	rep := attest.Verify(ev.Quote.Attest, ev.Quote.Signature, ak, attest.Expected{Nonce: qd, PCRs: pcrs})
	for _, p := range rep.Problems {
		if p.Code == attest.NonceMismatch {
			problems = append(problems, fmt.Errorf("%s: the quote is not bound to this nonce and this bundle (nonce, bundle or quote changed, or an old quote replayed)", p.Code))
			continue
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return &Verified{Evidence: &ev, PCRs: pcrs, Report: rep}, nil
}

// checkAK parses the evidence's AK and checks it is the pinned key and a
// restricted signing key. On any failure it returns no key, so the quote's
// signature is reported invalid as well: nothing in the evidence is trusted
// unless the verifier's own pinned key vouches for it.
func checkAK(got AKPublic, pinned crypto.PublicKey) (*attest.Public, error) {
	pinnedDER, err := x509.MarshalPKIXPublicKey(pinned)
	if err != nil {
		return nil, fmt.Errorf("the pinned AK: %w", err)
	}
	p, err := ParseTPM2BPublic(got.TPM2BPublic)
	if err != nil {
		return nil, fmt.Errorf("ak.tpm2b_public: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(p.Key)
	if err != nil {
		return nil, fmt.Errorf("ak.tpm2b_public: %w", err)
	}
	if !bytes.Equal(der, pinnedDER) {
		return nil, errors.New("the evidence's AK is not the pinned AK: another TPM or another key signed it")
	}
	return p, nil
}

func parsePCRs(q QuoteJSON) (map[int][]byte, error) {
	if q.PCRBank != "sha256" {
		return nil, fmt.Errorf("quote.pcr_bank is %q, want sha256", q.PCRBank)
	}
	out := make(map[int][]byte, len(q.PCRs))
	keys := make([]string, 0, len(q.PCRs))
	for k := range q.PCRs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i > 23 || strconv.Itoa(i) != k {
			return nil, fmt.Errorf("quote.pcrs: %q is not a PCR index 0..23", clip(k))
		}
		v, err := hex.DecodeString(q.PCRs[k])
		if err != nil || len(v) != sha256.Size {
			return nil, fmt.Errorf("quote.pcrs.%s is not a SHA-256 value (64 hex digits)", k)
		}
		out[i] = v
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
