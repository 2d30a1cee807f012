package main

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/policy"
)

// maxBundle bounds the bundle read from a file or stdin.
const maxBundle = 32 << 20

func (a *app) verifyBundle(args []string) int {
	fs := a.flagSet("verify-bundle", "[--key FILE] [--pubkey FILE] [--max-age D] [BUNDLE|-]",
		"Verifies a bundle: with --key, its HMAC-SHA256 (bundle_hmac) under the key file\n"+
			"(its raw bytes, as the attestor's hmac_key_path, at least 32 of them); with\n"+
			"--pubkey, its asymmetric signature (bundle_signature) under the attestor's\n"+
			"public key (PEM, as written by attestctl keygen), which needs no secret. Give\n"+
			"either or both. --max-age also refuses a bundle made longer ago than D (an old\n"+
			"bundle replayed). BUNDLE is a file, or - or nothing for standard input; it is\n"+
			"the bare bundle or the whole answer of GET /api/v1/attest or POST\n"+
			"/api/v1/refresh ({\"state\": ..., \"bundle\": {...}}).\n"+
			"Exit 0 only when every check passes, 1 when one fails, 2 for usage or I/O\n"+
			"errors.")
	keyFile := fs.String("key", "", "file holding the HMAC key")
	pubFile := fs.String("pubkey", "", "PEM file holding the attestor's public signing key")
	maxAge := fs.Duration("max-age", 0, "refuse a bundle older than this (0: any age)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if *keyFile == "" && *pubFile == "" {
		return a.usageError(fs, "--key or --pubkey is required")
	}
	if *maxAge < 0 {
		return a.usageError(fs, "--max-age must not be negative")
	}
	if len(pos) > 1 {
		return a.usageError(fs, "verify-bundle takes at most one bundle")
	}
	src := "-"
	if len(pos) == 1 {
		src = pos[0]
	}
	v, code := a.loadVerifier(*keyFile, *pubFile, *maxAge)
	if code != exitOK {
		return code
	}
	raw, err := a.readInput(src, maxBundle)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}
	b, err := extractBundle(raw)
	if err != nil {
		return a.fail(exitFail, "bundle NOT verified: %v", err)
	}
	info, err := v.check(b, time.Now())
	if err != nil {
		return a.fail(exitFail, "%v", err)
	}
	fmt.Fprintf(a.stdout, "bundle signature OK: state %s, attestation %d at %s\n",
		clean(orDash(info.State)), info.Sequence, clean(orDash(info.Timestamp)))
	for _, l := range v.signedBy(info, *keyFile, *pubFile) {
		fmt.Fprintln(a.stdout, l)
	}
	return exitOK
}

// signedBy says which keys signed a verified bundle: bundle_signature's
// algorithm and key id (checked or not), and for bundle_hmac, which carries
// no key id, the fingerprint of the key file it was checked with.
func (v *bundleVerifier) signedBy(info bundleInfo, keyFile, pubFile string) []string {
	var out []string
	switch {
	case v.hmacKey != nil:
		out = append(out, fmt.Sprintf("  bundle_hmac:      HMAC-SHA256, verified with %s (key fingerprint %s)", keyFile, hmacFingerprint(v.hmacKey)))
	case info.HMAC != "":
		out = append(out, "  bundle_hmac:      present, not checked (no --key)")
	default:
		out = append(out, "  bundle_hmac:      none")
	}
	sig := signatureText(info.Signature)
	switch {
	case v.pub != nil:
		sig += ", verified with " + pubFile
	case info.Signature != nil:
		sig += ", not checked (no --pubkey)"
	}
	return append(out, "  bundle_signature: "+sig)
}

// signatureText names a bundle_signature's algorithm and key id.
func signatureText(s *bundle.Signature) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%s by key id %s", clean(orDash(s.Alg)), clean(orDash(s.KeyID)))
}

// hmacFingerprint identifies an HMAC key without revealing it: the first 8
// bytes (16 hex characters) of SHA-256 over a label and the key. Two key
// files with the same fingerprint hold the same key; the fingerprint lets
// an operator tell, after a rotation, which key a bundle verified under.
func hmacFingerprint(key []byte) string {
	h := sha256.New()
	h.Write([]byte("runtime-attestor bundle_hmac key fingerprint\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// bundleVerifier holds what a bundle is checked with.
type bundleVerifier struct {
	hmacKey []byte           // nil: bundle_hmac not checked
	pub     crypto.PublicKey // nil: bundle_signature not checked
	maxAge  time.Duration    // 0: any age
}

// bundleInfo is the part of a bundle a verifier reports.
type bundleInfo struct {
	State     string            `json:"state"`
	Sequence  uint64            `json:"sequence"`
	Timestamp string            `json:"timestamp"`
	HMAC      string            `json:"bundle_hmac"`
	Signature *bundle.Signature `json:"bundle_signature"`
}

// loadVerifier reads the key files. An HMAC key shorter than
// policy.MinHMACKeyBytes is refused: it cannot be the attestor's.
func (a *app) loadVerifier(keyFile, pubFile string, maxAge time.Duration) (*bundleVerifier, int) {
	v := &bundleVerifier{maxAge: maxAge}
	if keyFile != "" {
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, a.fail(exitUsage, "read key: %v", err)
		}
		if len(key) == 0 {
			return nil, a.fail(exitUsage, "key file %s is empty", keyFile)
		}
		if len(key) < policy.MinHMACKeyBytes {
			return nil, a.fail(exitUsage, "key file %s holds %d bytes, fewer than %d: not an attestor HMAC key", keyFile, len(key), policy.MinHMACKeyBytes)
		}
		v.hmacKey = key
	}
	if pubFile != "" {
		raw, err := os.ReadFile(pubFile)
		if err != nil {
			return nil, a.fail(exitUsage, "read public key: %v", err)
		}
		if v.pub, err = identity.ParsePublicPEM(raw); err != nil {
			return nil, a.fail(exitUsage, "public key %s: %v", pubFile, err)
		}
	}
	return v, exitOK
}

// check verifies bundle b (its JSON as received) and returns its summary.
func (v *bundleVerifier) check(b []byte, now time.Time) (bundleInfo, error) {
	if v.hmacKey != nil {
		if err := bundle.Verify(b, v.hmacKey); err != nil {
			why := err.Error()
			switch {
			case errors.Is(err, bundle.ErrMismatch):
				why += " (the bundle was changed after it was signed, or signed with another key)"
			case errors.Is(err, bundle.ErrUnsigned):
				why += " (the attestor had no usable HMAC key when it made this bundle)"
			}
			return bundleInfo{}, fmt.Errorf("bundle signature INVALID: %s", why)
		}
	}
	if v.pub != nil {
		if err := bundle.VerifySignature(b, v.pub); err != nil {
			why := err.Error()
			switch {
			case errors.Is(err, bundle.ErrSignatureMismatch):
				why += " (the bundle was changed after it was signed, or another key signed it: not this attestor's)"
			case errors.Is(err, bundle.ErrUnsigned):
				why += " (the attestor had no signing key, or whoever answered is not the attestor)"
			}
			return bundleInfo{}, fmt.Errorf("bundle signature INVALID: %s", why)
		}
	}
	var info bundleInfo
	_ = json.Unmarshal(b, &info) // the signature is intact: best-effort summary only
	if v.maxAge > 0 {
		ts, err := time.Parse(time.RFC3339Nano, info.Timestamp)
		if err != nil {
			return info, fmt.Errorf("bundle NOT fresh: timestamp %q is not RFC 3339", clean(info.Timestamp))
		}
		if age := now.Sub(ts); age > v.maxAge {
			return info, fmt.Errorf("bundle NOT fresh: made %s ago, more than --max-age %s (an old bundle replayed, or the attestor stopped attesting)", age.Round(time.Second), v.maxAge)
		} else if age < -time.Minute {
			return info, fmt.Errorf("bundle NOT fresh: its timestamp %s is %s in the future", info.Timestamp, (-age).Round(time.Second))
		}
	}
	return info, nil
}

// extractBundle returns the bundle in raw: raw itself when it is a bundle,
// or its "bundle" member when it is an API answer. The bytes are returned
// verbatim.
func extractBundle(raw []byte) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("the input is empty")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("the input is not a JSON object: %w", err)
	}
	if top == nil {
		return nil, errors.New("the input is null, not a bundle")
	}
	if _, ok := top["bundle_hmac"]; ok {
		return raw, nil
	}
	if _, ok := top["bundle_signature"]; ok {
		return raw, nil
	}
	inner, ok := top["bundle"]
	if !ok {
		return raw, nil // Verify says what is missing
	}
	if bytes.Equal(bytes.TrimSpace(inner), []byte("null")) {
		return nil, errors.New("the answer carries no bundle (the attestor is still pending)")
	}
	return inner, nil
}
