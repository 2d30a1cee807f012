package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
)

// TPM algorithm identifiers (TPM_ALG_ID) used here.
const (
	AlgRSA       uint16 = 0x0001
	AlgSHA1      uint16 = 0x0004
	AlgHMAC      uint16 = 0x0005
	AlgAES       uint16 = 0x0006
	AlgMGF1      uint16 = 0x0007
	AlgKeyedHash uint16 = 0x0008
	AlgXOR       uint16 = 0x000A
	AlgSHA256    uint16 = 0x000B
	AlgSHA384    uint16 = 0x000C
	AlgSHA512    uint16 = 0x000D
	AlgNull      uint16 = 0x0010
	AlgSM3       uint16 = 0x0012
	AlgSM4       uint16 = 0x0013
	AlgRSASSA    uint16 = 0x0014
	AlgRSAES     uint16 = 0x0015
	AlgRSAPSS    uint16 = 0x0016
	AlgOAEP      uint16 = 0x0017
	AlgECDSA     uint16 = 0x0018
	AlgECDH      uint16 = 0x0019
	AlgECDAA     uint16 = 0x001A
	AlgSM2       uint16 = 0x001B
	AlgECSchnorr uint16 = 0x001C
	AlgECMQV     uint16 = 0x001D
	AlgKDF1_56A  uint16 = 0x0020
	AlgKDF2      uint16 = 0x0021
	AlgKDF1_108  uint16 = 0x0022
	AlgECC       uint16 = 0x0023
	AlgCamellia  uint16 = 0x0026
)

// TPM ECC curve identifiers (TPM_ECC_CURVE).
const (
	CurveNISTP256 uint16 = 0x0003
	CurveNISTP384 uint16 = 0x0004
	CurveNISTP521 uint16 = 0x0005
)

// Object attributes (TPMA_OBJECT) that matter for an attestation key.
const (
	AttrFixedTPM            uint32 = 1 << 1
	AttrFixedParent         uint32 = 1 << 4
	AttrSensitiveDataOrigin uint32 = 1 << 5
	AttrUserWithAuth        uint32 = 1 << 6
	AttrNoDA                uint32 = 1 << 10
	AttrRestricted          uint32 = 1 << 16
	AttrDecrypt             uint32 = 1 << 17
	AttrSign                uint32 = 1 << 18
)

// Public is a parsed TPMT_PUBLIC of an RSA or ECC key.
type Public struct {
	Type       uint16 // AlgRSA or AlgECC
	NameAlg    uint16
	Attributes uint32
	AuthPolicy []byte
	// Scheme is the key's signing scheme (AlgNull when the key leaves it to
	// the command) and SchemeHash its hash.
	Scheme     uint16
	SchemeHash uint16
	// Key is the public key: *rsa.PublicKey or *ecdsa.PublicKey.
	Key crypto.PublicKey
	// Raw is the TPMT_PUBLIC bytes parsed.
	Raw []byte
}

// Name returns the object's TPM name: nameAlg || H_nameAlg(TPMT_PUBLIC).
func (p *Public) Name() ([]byte, error) {
	h, err := hashFor(p.NameAlg)
	if err != nil {
		return nil, fmt.Errorf("name algorithm: %w", err)
	}
	d := h.New()
	d.Write(p.Raw)
	return append([]byte{byte(p.NameAlg >> 8), byte(p.NameAlg)}, d.Sum(nil)...), nil
}

// hashFor maps a TPM hash algorithm to a crypto.Hash. SHA-1 is refused:
// it does not protect a signature.
func hashFor(alg uint16) (crypto.Hash, error) {
	switch alg {
	case AlgSHA256:
		return crypto.SHA256, nil
	case AlgSHA384:
		return crypto.SHA384, nil
	case AlgSHA512:
		return crypto.SHA512, nil
	case AlgSHA1:
		return 0, errors.New("SHA-1 (0x0004) is not accepted")
	default:
		return 0, fmt.Errorf("unsupported hash algorithm 0x%04x", alg)
	}
}

// ParsePublic parses TPMT_PUBLIC bytes of an RSA or ECC key, checking that
// the key itself is usable (an RSA modulus of the declared size, an ECC
// point on its curve). It does not judge the attributes: see CheckAK.
func ParsePublic(b []byte) (*Public, error) {
	r := newReader("TPMT_PUBLIC", b)
	p := &Public{Raw: append([]byte(nil), b...)}
	var err error
	if p.Type, err = r.u16("type"); err != nil {
		return nil, err
	}
	if p.Type != AlgRSA && p.Type != AlgECC {
		return nil, r.errorf("type: 0x%04x is not RSA (0x0001) or ECC (0x0023)", p.Type)
	}
	if p.NameAlg, err = r.u16("nameAlg"); err != nil {
		return nil, err
	}
	if p.Attributes, err = r.u32("objectAttributes"); err != nil {
		return nil, err
	}
	if p.AuthPolicy, err = r.tpm2b("authPolicy", maxDigest); err != nil {
		return nil, err
	}
	if err := skipSymDef(r); err != nil {
		return nil, err
	}
	if p.Scheme, p.SchemeHash, err = parseScheme(r); err != nil {
		return nil, err
	}
	switch p.Type {
	case AlgRSA:
		p.Key, err = parseRSA(r)
	case AlgECC:
		p.Key, err = parseECC(r)
	}
	if err != nil {
		return nil, err
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return p, nil
}

// skipSymDef reads a TPMT_SYM_DEF_OBJECT.
func skipSymDef(r *reader) error {
	alg, err := r.u16("parameters.symmetric.algorithm")
	if err != nil {
		return err
	}
	switch alg {
	case AlgNull:
		return nil
	case AlgAES, AlgSM4, AlgCamellia:
		if _, err := r.u16("parameters.symmetric.keyBits"); err != nil {
			return err
		}
		_, err := r.u16("parameters.symmetric.mode")
		return err
	default:
		r.off -= 2
		return r.errorf("parameters.symmetric.algorithm: unsupported 0x%04x", alg)
	}
}

// parseScheme reads a TPMT_RSA_SCHEME or TPMT_ECC_SCHEME.
func parseScheme(r *reader) (scheme, hash uint16, err error) {
	if scheme, err = r.u16("parameters.scheme.scheme"); err != nil {
		return 0, 0, err
	}
	switch scheme {
	case AlgNull, AlgRSAES:
		return scheme, AlgNull, nil
	case AlgRSASSA, AlgRSAPSS, AlgOAEP, AlgECDSA, AlgECDH, AlgSM2, AlgECSchnorr, AlgECMQV:
		hash, err = r.u16("parameters.scheme.hashAlg")
		return scheme, hash, err
	case AlgECDAA:
		if hash, err = r.u16("parameters.scheme.hashAlg"); err != nil {
			return 0, 0, err
		}
		_, err = r.u16("parameters.scheme.count")
		return scheme, hash, err
	default:
		r.off -= 2
		return 0, 0, r.errorf("parameters.scheme.scheme: unsupported 0x%04x", scheme)
	}
}

func parseRSA(r *reader) (*rsa.PublicKey, error) {
	bits, err := r.u16("parameters.keyBits")
	if err != nil {
		return nil, err
	}
	exp, err := r.u32("parameters.exponent")
	if err != nil {
		return nil, err
	}
	n, err := r.tpm2b("unique.rsa", 1024)
	if err != nil {
		return nil, err
	}
	switch bits {
	case 2048, 3072, 4096:
	default:
		return nil, fmt.Errorf("TPMT_PUBLIC: RSA key of %d bits (want 2048, 3072 or 4096)", bits)
	}
	if len(n) != int(bits)/8 || n[0]&0x80 == 0 {
		return nil, fmt.Errorf("TPMT_PUBLIC: RSA modulus of %d bytes does not have the declared %d bits", len(n), bits)
	}
	if exp == 0 {
		exp = 65537
	}
	if exp < 3 || exp%2 == 0 || exp > 1<<31-1 {
		return nil, fmt.Errorf("TPMT_PUBLIC: RSA exponent %d is not an odd number in [3, 2^31)", exp)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}, nil
}

func parseECC(r *reader) (*ecdsa.PublicKey, error) {
	curveID, err := r.u16("parameters.curveID")
	if err != nil {
		return nil, err
	}
	kdf, err := r.u16("parameters.kdf.scheme")
	if err != nil {
		return nil, err
	}
	switch kdf {
	case AlgNull:
	case AlgMGF1, AlgKDF1_56A, AlgKDF2, AlgKDF1_108:
		if _, err := r.u16("parameters.kdf.hashAlg"); err != nil {
			return nil, err
		}
	default:
		r.off -= 2
		return nil, r.errorf("parameters.kdf.scheme: unsupported 0x%04x", kdf)
	}
	x, err := r.tpm2b("unique.ecc.x", 66)
	if err != nil {
		return nil, err
	}
	y, err := r.tpm2b("unique.ecc.y", 66)
	if err != nil {
		return nil, err
	}
	var curve elliptic.Curve
	switch curveID {
	case CurveNISTP256:
		curve = elliptic.P256()
	case CurveNISTP384:
		curve = elliptic.P384()
	case CurveNISTP521:
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("TPMT_PUBLIC: unsupported ECC curve 0x%04x (want NIST P-256, P-384 or P-521)", curveID)
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(x) > size || len(y) > size {
		return nil, fmt.Errorf("TPMT_PUBLIC: ECC point coordinates of %d and %d bytes are too long for %s", len(x), len(y), curve.Params().Name)
	}
	point := make([]byte, 1+2*size)
	point[0] = 4
	copy(point[1+size-len(x):1+size], x)
	copy(point[1+2*size-len(y):], y)
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("TPMT_PUBLIC: ECC point: %w", err)
	}
	return key, nil
}

// CheckAK reports whether p can serve as an attestation key: a restricted
// signing key (so the TPM signs only structures it generated itself, with
// TPM_GENERATED_VALUE), not a decryption key, that never leaves the TPM
// (fixedTPM, fixedParent) and was generated inside it.
func CheckAK(p *Public) error {
	need := []struct {
		bit  uint32
		name string
	}{
		{AttrSign, "sign"},
		{AttrRestricted, "restricted"},
		{AttrFixedTPM, "fixedTPM"},
		{AttrFixedParent, "fixedParent"},
		{AttrSensitiveDataOrigin, "sensitiveDataOrigin"},
	}
	var missing []string
	for _, n := range need {
		if p.Attributes&n.bit == 0 {
			missing = append(missing, n.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("key attributes 0x%08x lack %v: not a restricted signing key that stays in the TPM", p.Attributes, missing)
	}
	if p.Attributes&AttrDecrypt != 0 {
		return fmt.Errorf("key attributes 0x%08x include decrypt: an attestation key only signs", p.Attributes)
	}
	if _, err := hashFor(p.NameAlg); err != nil {
		return fmt.Errorf("name algorithm: %w", err)
	}
	switch p.Scheme {
	case AlgRSASSA, AlgRSAPSS, AlgECDSA:
		if _, err := hashFor(p.SchemeHash); err != nil {
			return fmt.Errorf("signing scheme hash: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("signing scheme 0x%04x is not RSASSA, RSAPSS or ECDSA", p.Scheme)
	}
}
