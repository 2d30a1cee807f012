package bundle

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
)

// Sealed is a signed bundle in its one canonical form.
type Sealed struct {
	// Raw is the RFC 8785 canonical JSON of the whole bundle, signatures
	// included: what the daemon serves and records.
	Raw []byte
	// Digest is the lowercase hex SHA-256 of Raw (Digest(Raw)).
	Digest string
}

// Seal signs b and returns it in canonical form, canonicalising it once:
// with s, when not nil, it sets bundle_signature over SignatureInput (as
// SignWith does); with key, when not empty, it then sets bundle_hmac over
// SigningInput (as Sign does, so the HMAC covers the signature). The
// signing inputs, Raw and Digest are assembled from the same canonical
// members; they are byte for byte what SignWith, Sign, Canonical and
// Digest compute.
func (b *Bundle) Seal(s Signer, key []byte) (Sealed, error) {
	b.BundleHMAC, b.BundleSignature = "", nil
	members, err := b.members()
	if err != nil {
		return Sealed{}, fmt.Errorf("seal bundle: %w", err)
	}
	if s != nil {
		in, err := assemble(members, signatureMembers...)
		if err != nil {
			return Sealed{}, fmt.Errorf("seal bundle: %w", err)
		}
		sig, err := s.Sign(in)
		if err != nil {
			return Sealed{}, fmt.Errorf("seal bundle: %w", err)
		}
		b.BundleSignature = &Signature{Alg: s.Alg(), KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)}
		if members["bundle_signature"], err = canonicalOf(b.BundleSignature); err != nil {
			return Sealed{}, fmt.Errorf("seal bundle: %w", err)
		}
	}
	if len(key) > 0 {
		in, err := assemble(members, "bundle_hmac")
		if err != nil {
			return Sealed{}, fmt.Errorf("seal bundle: %w", err)
		}
		m := hmac.New(sha256.New, key)
		m.Write(in)
		b.BundleHMAC = hex.EncodeToString(m.Sum(nil))
		if members["bundle_hmac"], err = canonicalOf(b.BundleHMAC); err != nil {
			return Sealed{}, fmt.Errorf("seal bundle: %w", err)
		}
	}
	out, err := assemble(members)
	if err != nil {
		return Sealed{}, fmt.Errorf("seal bundle: %w", err)
	}
	sum := sha256.Sum256(out)
	return Sealed{Raw: out, Digest: hex.EncodeToString(sum[:])}, nil
}

func canonicalOf(v any) (json.RawMessage, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonical(raw)
}

// assemble returns the canonical JSON of the object whose members are
// members (each value already canonical, as topLevel returns them) without
// the ones named drop: RFC 8785 sorts an object's members by the UTF-16
// code units of their names and canonicalises each value on its own, so
// the object is put together without canonicalising its values again.
func assemble(members map[string]json.RawMessage, drop ...string) ([]byte, error) {
	type member struct {
		name  string
		units []uint16
	}
	keep := make([]member, 0, len(members))
	size := 2
	for k, v := range members {
		if !slices.Contains(drop, k) {
			keep = append(keep, member{k, utf16.Encode([]rune(k))})
			size += len(k) + len(v) + 4
		}
	}
	slices.SortFunc(keep, func(a, b member) int { return slices.Compare(a.units, b.units) })
	var buf bytes.Buffer
	buf.Grow(size)
	buf.WriteByte('{')
	for i, m := range keep {
		if i > 0 {
			buf.WriteByte(',')
		}
		name, err := canonicalOf(m.name)
		if err != nil {
			return nil, err
		}
		v := members[m.name]
		if len(v) == 0 {
			return nil, errors.New("member " + string(name) + " has no value")
		}
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
