package evidence

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// SecretLabel is the label under which the daemon derives its AK secret
// from the signing key (identity.Signer.DeriveSecret).
const SecretLabel = "runtime-attestor evidence AK v1"

// AK algorithms, as reported in AKPublic.Alg.
const (
	AlgECCP256 = "ecc-p256"
	AlgRSA2048 = "rsa-2048"
)

// AK is the daemon's attestation key, loaded in the TPM.
type AK struct {
	Alg    string
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	auth   []byte
	// Public is the parsed TPMT_PUBLIC.
	Public *attest.Public
}

// expand derives n bytes from secret for label (HMAC-SHA256 in counter
// mode).
func expand(secret []byte, label string, n int) []byte {
	var out []byte
	for i := uint32(1); len(out) < n; i++ {
		m := hmac.New(sha256.New, secret)
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], i)
		m.Write(c[:])
		m.Write([]byte(label))
		out = m.Sum(out)
	}
	return out[:n]
}

// akTemplate is the AK's public template: a restricted signing key fixed to
// the TPM, ECDSA P-256 or RSASSA-2048 with SHA-256, needing its authValue
// (userWithAuth, no policy), noDA. Its unique field is not zero, as in the
// well-known templates, but derived from the daemon's secret: the TPM
// derives a primary key from its hierarchy seed and the whole template,
// unique included, so without the secret nobody can make the TPM derive
// this key again.
func akTemplate(alg string, secret []byte) tpm2.TPMTPublic {
	attrs := tpm2.TPMAObject{
		FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
		UserWithAuth: true, NoDA: true, Restricted: true, SignEncrypt: true,
	}
	if alg == AlgRSA2048 {
		return tpm2.TPMTPublic{
			Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme: tpm2.TPMTRSAScheme{
					Scheme:  tpm2.TPMAlgRSASSA,
					Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256}),
				},
				KeyBits: 2048,
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: expand(secret, "unique rsa", 256)}),
		}
	}
	return tpm2.TPMTPublic{
		Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: expand(secret, "unique ecc x", 32)},
			Y: tpm2.TPM2BECCParameter{Buffer: expand(secret, "unique ecc y", 32)},
		}),
	}
}

// createAK derives the AK in the TPM: ECC P-256, or RSA 2048 when the TPM
// refuses ECC. The caller flushes it (flush).
func createAK(t transport.TPM, secret []byte) (*AK, error) {
	k, err := createAKAlg(t, secret, AlgECCP256)
	if err != nil && tpmio.IsTPMError(err) {
		var rerr error
		if k, rerr = createAKAlg(t, secret, AlgRSA2048); rerr != nil {
			return nil, fmt.Errorf("%w; RSA 2048 fallback: %w", err, rerr)
		}
		return k, nil
	}
	return k, err
}

func createAKAlg(t transport.TPM, secret []byte, alg string) (*AK, error) {
	auth := akAuth(secret)
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InSensitive:   tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{UserAuth: tpm2.TPM2BAuth{Buffer: auth}}},
		InPublic:      tpm2.New2B(akTemplate(alg, secret)),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("TPM2_CreatePrimary of the %s AK under the endorsement hierarchy: %w", alg, err)
	}
	k := &AK{Alg: alg, handle: rsp.ObjectHandle, name: rsp.Name, auth: auth}
	k.Public, err = attest.ParsePublic(rsp.OutPublic.Bytes())
	if err == nil {
		err = attest.CheckAK(k.Public)
	}
	if err != nil {
		k.flush(t)
		return nil, fmt.Errorf("the TPM made an unsuitable AK: %w", err)
	}
	return k, nil
}

// akAuth is the AK's authValue: 128 bits of the secret as 32 lowercase hex
// characters. Text, not raw bytes, because a TPM drops an authValue's
// trailing zero bytes (TPM 2.0 part 1, 19.6.5) and swtpm's libtpms was seen
// refusing HMAC sessions for authValues with a zero byte anywhere (about
// one key in nine); hex never holds one.
func akAuth(secret []byte) []byte {
	return []byte(hex.EncodeToString(expand(secret, "auth", 16)))
}

func (k *AK) flush(t transport.TPM) {
	_, _ = tpm2.FlushContext{FlushHandle: k.handle}.Execute(t)
}

// session authorizes the AK with an HMAC session (the authValue never
// crosses the TPM channel in clear).
func (k *AK) session() tpm2.Session {
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth(k.auth))
}

// AKPublic is the AK's public part as GET /api/v1/ak and the evidence carry
// it.
type AKPublic struct {
	// Alg is AlgECCP256 or AlgRSA2048.
	Alg string `json:"alg"`
	// PEM is the public key as a "PUBLIC KEY" PEM block
	// (SubjectPublicKeyInfo): what tpm2_checkquote -u and verify-evidence
	// --ak take.
	PEM string `json:"pem"`
	// TPM2BPublic is the TPM2B_PUBLIC (big-endian uint16 size, then the
	// TPMT_PUBLIC), standard base64.
	TPM2BPublic []byte `json:"tpm2b_public"`
	// Name is the TPM name of the key (nameAlg || SHA-256(TPMT_PUBLIC)),
	// lowercase hex.
	Name string `json:"name"`
}

// Describe returns the public part of k.
func (k *AK) Describe() (AKPublic, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Public.Key)
	if err != nil {
		return AKPublic{}, fmt.Errorf("encode AK public key: %w", err)
	}
	name, err := k.Public.Name()
	if err != nil {
		return AKPublic{}, err
	}
	b2 := make([]byte, 2, 2+len(k.Public.Raw))
	binary.BigEndian.PutUint16(b2, uint16(len(k.Public.Raw)))
	return AKPublic{
		Alg:         k.Alg,
		PEM:         string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		TPM2BPublic: append(b2, k.Public.Raw...),
		Name:        fmt.Sprintf("%x", name),
	}, nil
}

// ParseTPM2BPublic parses a TPM2B_PUBLIC and checks it is an AK.
func ParseTPM2BPublic(b []byte) (*attest.Public, error) {
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
		return nil, errors.New("TPM2B_PUBLIC: size prefix does not match the data")
	}
	p, err := attest.ParsePublic(b[2:])
	if err != nil {
		return nil, fmt.Errorf("TPM2B_PUBLIC: %w", err)
	}
	if err := attest.CheckAK(p); err != nil {
		return nil, fmt.Errorf("TPM2B_PUBLIC: %w", err)
	}
	return p, nil
}
