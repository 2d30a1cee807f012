package bundle

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-ai/runtime-attestor/core/identity"
)

// Signature is bundle_signature: an asymmetric signature over
// SignatureInput, verifiable with the daemon's public key and no secret.
type Signature struct {
	// Alg is identity.AlgEd25519 or identity.AlgES256.
	Alg string `json:"alg"`
	// KeyID is the lowercase hex SHA-256 of the signing key's DER
	// SubjectPublicKeyInfo.
	KeyID string `json:"key_id"`
	// Sig is the signature, standard base64 with padding.
	Sig string `json:"sig"`
}

// Signer makes bundle signatures (an *identity.Signer).
type Signer interface {
	Alg() string
	KeyID() string
	Sign(msg []byte) ([]byte, error)
}

// signatureMembers are the top-level members SignatureInput leaves out.
var signatureMembers = []string{"bundle_hmac", "bundle_signature"}

// SignatureInput returns the bytes bundle_signature signs: the canonical
// (JCS) JSON of the bundle raw with its top-level "bundle_hmac" and
// "bundle_signature" members removed. It is the HMAC's signing input
// without the signature itself (a signature cannot cover itself); the HMAC,
// computed after it, covers bundle_signature too.
func SignatureInput(raw []byte) ([]byte, error) {
	members, err := topLevel(raw)
	if err != nil {
		return nil, err
	}
	return canonicalWithout(members, signatureMembers...)
}

// ContentDigest returns SHA-256(SignatureInput(raw)): the digest of the
// bundle without its signatures, which evidence quotes and EAR results
// carry.
func ContentDigest(raw []byte) ([]byte, error) {
	in, err := SignatureInput(raw)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(in)
	return sum[:], nil
}

// SignWith sets b.BundleSignature to s's signature over the bundle's
// SignatureInput. Call it before Sign (the HMAC covers the signature).
func (b *Bundle) SignWith(s Signer) error {
	c := *b
	c.BundleSignature = nil
	members, err := c.members()
	if err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	in, err := canonicalWithout(members, signatureMembers...)
	if err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	sig, err := s.Sign(in)
	if err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	b.BundleSignature = &Signature{Alg: s.Alg(), KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)}
	return nil
}

// ErrSignatureMismatch: bundle_signature does not verify under the key.
var ErrSignatureMismatch = errors.New("bundle_signature does not verify")

// VerifySignature checks the bundle_signature of a bundle as received (raw
// JSON) against pub. Errors say what is wrong: a missing or null
// bundle_signature (ErrUnsigned), a malformed one, a key id that is not
// pub's (signed by another key), or a signature that does not verify
// (ErrSignatureMismatch: the bundle changed after signing).
func VerifySignature(raw []byte, pub crypto.PublicKey) error {
	members, err := topLevel(raw)
	if err != nil {
		return fmt.Errorf("verify bundle signature: %w", err)
	}
	sigRaw, ok := members["bundle_signature"]
	if !ok || string(sigRaw) == "null" {
		return fmt.Errorf("verify bundle signature: no bundle_signature: %w", ErrUnsigned)
	}
	var sig Signature
	dec := json.NewDecoder(bytesReader(sigRaw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sig); err != nil {
		return fmt.Errorf("verify bundle signature: bundle_signature is not {alg, key_id, sig}: %w", err)
	}
	want, err := identity.KeyID(pub)
	if err != nil {
		return fmt.Errorf("verify bundle signature: %w", err)
	}
	if sig.KeyID != want {
		return fmt.Errorf("verify bundle signature: signed by key %s, not by this public key (%s): %w", short(sig.KeyID), short(want), ErrSignatureMismatch)
	}
	s, err := base64.StdEncoding.Strict().DecodeString(sig.Sig)
	if err != nil {
		return fmt.Errorf("verify bundle signature: sig is not standard base64: %w", err)
	}
	in, err := canonicalWithout(members, signatureMembers...)
	if err != nil {
		return fmt.Errorf("verify bundle signature: %w", err)
	}
	if err := identity.Verify(pub, sig.Alg, in, s); err != nil {
		if errors.Is(err, identity.ErrBadSignature) {
			return fmt.Errorf("verify bundle signature: %w", ErrSignatureMismatch)
		}
		return fmt.Errorf("verify bundle signature: %w", err)
	}
	return nil
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
