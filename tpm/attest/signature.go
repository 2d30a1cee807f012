package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
)

// Signature is a parsed TPMT_SIGNATURE of one of the schemes an
// attestation key uses: RSASSA, RSAPSS or ECDSA.
type Signature struct {
	Alg  uint16 // AlgRSASSA, AlgRSAPSS or AlgECDSA
	Hash uint16
	// RSA is the RSA signature (RSASSA, RSAPSS).
	RSA []byte
	// R and S are the ECDSA signature.
	R, S []byte
}

// ParseSignature parses TPMT_SIGNATURE bytes.
func ParseSignature(b []byte) (*Signature, error) {
	r := newReader("TPMT_SIGNATURE", b)
	s := &Signature{}
	var err error
	if s.Alg, err = r.u16("sigAlg"); err != nil {
		return nil, err
	}
	switch s.Alg {
	case AlgRSASSA, AlgRSAPSS:
		if s.Hash, err = r.u16("signature.hash"); err != nil {
			return nil, err
		}
		if s.RSA, err = r.tpm2b("signature.sig", 1024); err != nil {
			return nil, err
		}
	case AlgECDSA:
		if s.Hash, err = r.u16("signature.hash"); err != nil {
			return nil, err
		}
		if s.R, err = r.tpm2b("signature.signatureR", 66); err != nil {
			return nil, err
		}
		if s.S, err = r.tpm2b("signature.signatureS", 66); err != nil {
			return nil, err
		}
	default:
		r.off -= 2
		return nil, r.errorf("sigAlg: 0x%04x is not RSASSA (0x0014), RSAPSS (0x0016) or ECDSA (0x0018)", s.Alg)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return s, nil
}

// Marshal encodes s as TPMT_SIGNATURE bytes.
func (s *Signature) Marshal() []byte {
	var w writer
	w.u16(s.Alg)
	w.u16(s.Hash)
	if s.Alg == AlgECDSA {
		w.tpm2b(s.R)
		w.tpm2b(s.S)
	} else {
		w.tpm2b(s.RSA)
	}
	return w.b
}

// VerifySignature checks that sig is key's signature over msg (the
// TPMS_ATTEST bytes). When key fixes a signing scheme, the signature must
// use that scheme and hash.
func VerifySignature(key *Public, msg []byte, sig *Signature) error {
	if key.Scheme != AlgNull && (sig.Alg != key.Scheme || sig.Hash != key.SchemeHash) {
		return fmt.Errorf("signature scheme 0x%04x/hash 0x%04x differs from the key's 0x%04x/0x%04x", sig.Alg, sig.Hash, key.Scheme, key.SchemeHash)
	}
	h, err := hashFor(sig.Hash)
	if err != nil {
		return fmt.Errorf("signature hash: %w", err)
	}
	d := h.New()
	d.Write(msg)
	digest := d.Sum(nil)
	switch sig.Alg {
	case AlgECDSA:
		pub, ok := key.Key.(*ecdsa.PublicKey)
		if !ok {
			return errors.New("ECDSA signature from a key that is not ECC")
		}
		if !ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig.R), new(big.Int).SetBytes(sig.S)) {
			return errors.New("ECDSA signature does not verify against the attestation key")
		}
	case AlgRSASSA:
		pub, ok := key.Key.(*rsa.PublicKey)
		if !ok {
			return errors.New("RSASSA signature from a key that is not RSA")
		}
		if err := rsa.VerifyPKCS1v15(pub, h, digest, sig.RSA); err != nil {
			return fmt.Errorf("RSASSA signature does not verify against the attestation key: %w", err)
		}
	case AlgRSAPSS:
		pub, ok := key.Key.(*rsa.PublicKey)
		if !ok {
			return errors.New("RSAPSS signature from a key that is not RSA")
		}
		if err := rsa.VerifyPSS(pub, h, digest, sig.RSA, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: h}); err != nil {
			return fmt.Errorf("RSAPSS signature does not verify against the attestation key: %w", err)
		}
	default:
		return fmt.Errorf("unsupported signature algorithm 0x%04x", sig.Alg)
	}
	return nil
}

// hashOf returns the crypto.Hash of a signature's hash algorithm.
func hashOf(sig *Signature) (crypto.Hash, error) { return hashFor(sig.Hash) }
