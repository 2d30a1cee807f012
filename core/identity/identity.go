// Package identity is the daemon's asymmetric signing identity: a private
// key file (Ed25519 by default, ECDSA P-256 as an option) that signs every
// bundle (bundle_signature) and every EAT Attestation Result, and whose
// public key anyone may hold to verify them without a shared secret.
//
// The key belongs to the daemon, never to a plugin: the file is read by
// the daemon only (plugins are confined away from it), must be mode 0600 or
// tighter, and its bytes never reach a log. The same file seeds the secret
// from which the daemon derives its TPM attestation key (see DeriveSecret
// and core/evidence), so only a process that can read it can use that key.
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"

	"github.com/secure-ai/runtime-attestor/internal/regfile"
)

// Signature algorithms, as written in bundle_signature.alg and in a JOSE
// header.
const (
	// AlgEd25519 is Ed25519 (RFC 8032) over the message itself; the
	// signature is 64 bytes. Its JOSE name is EdDSA.
	AlgEd25519 = "Ed25519"
	// AlgES256 is ECDSA P-256 over SHA-256 of the message; the signature is
	// r||s, 32 bytes each, big-endian (as in JOSE).
	AlgES256 = "ES256"
)

// Key types for Generate.
const (
	KeyEd25519 = "ed25519"
	KeyP256    = "p256"
)

// maxKeyFile bounds how much of a key file is read.
const maxKeyFile = 16 << 10

// Signer is a loaded private key.
type Signer struct {
	key    crypto.Signer
	alg    string
	pkcs8  []byte
	pubDER []byte
	keyID  string
}

// Generate returns a new private key of kind (KeyEd25519 or KeyP256) as a
// PKCS#8 PEM block.
func Generate(kind string) ([]byte, error) {
	var key any
	var err error
	switch kind {
	case KeyEd25519, "":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case KeyP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("key type %q: want %s or %s", kind, KeyEd25519, KeyP256)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", kind, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode %s key: %w", kind, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// New returns a signer with a new key of kind (KeyEd25519 or KeyP256),
// kept in memory only.
func New(kind string) (*Signer, error) {
	priv, err := Generate(kind)
	if err != nil {
		return nil, err
	}
	return Parse(priv)
}

// WriteNew creates a new key of kind at keyPath (mode 0600, refusing to
// replace an existing file) and its public key at pubPath (mode 0644, also
// never replaced). It returns the signer.
func WriteNew(kind, keyPath, pubPath string) (*Signer, error) {
	priv, err := Generate(kind)
	if err != nil {
		return nil, err
	}
	s, err := Parse(priv)
	if err != nil {
		return nil, err
	}
	if err := writeExcl(keyPath, priv, 0o600); err != nil {
		return nil, err
	}
	if err := writeExcl(pubPath, s.PublicPEM(), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

// Ensure is WriteNew when neither keyPath nor pubPath exists, and keeps an
// existing key otherwise: it loads it (so an unusable key is an error, never
// replaced) and writes its public key to pubPath when that is missing. A
// public key without its private key is an error: the identity verifiers
// pinned is gone, and making a new one is the operator's decision (remove
// pubPath first). created reports whether a new key was made.
func Ensure(kind, keyPath, pubPath string) (s *Signer, created bool, err error) {
	if _, err := os.Lstat(keyPath); errors.Is(err, fs.ErrNotExist) {
		if _, perr := os.Lstat(pubPath); perr == nil {
			return nil, false, fmt.Errorf("%s exists but its private key %s does not: the identity verifiers pinned is gone; "+
				"remove %s to make a new one, and give verifiers the new public key", pubPath, keyPath, pubPath)
		}
		s, err := WriteNew(kind, keyPath, pubPath)
		return s, err == nil, err
	}
	s, err = Load(keyPath)
	if err != nil {
		return nil, false, err
	}
	old, err := os.ReadFile(pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, false, writeExcl(pubPath, s.PublicPEM(), 0o644)
	case err != nil:
		return nil, false, fmt.Errorf("read public key %s: %w", pubPath, err)
	}
	if pub, perr := ParsePublicPEM(old); perr != nil {
		return nil, false, fmt.Errorf("public key %s: %w", pubPath, perr)
	} else if id, _ := KeyID(pub); id != s.KeyID() {
		return nil, false, fmt.Errorf("public key %s (key id %s) is not that of %s (key id %s)", pubPath, id, keyPath, s.KeyID())
	}
	return s, false, nil
}

func writeExcl(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w (an existing key is never replaced: remove it first to rotate)", path, err)
	}
	// The mode asked for, whatever the umask (a service's UMask=0077 would
	// make the public key 0600).
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// Load reads the private key file at path. It refuses a file that is not a
// regular file, that group or others can access in any way (run chmod 0600),
// or that holds anything but one PKCS#8 "PRIVATE KEY" PEM block of an
// Ed25519 or ECDSA P-256 key. Errors never quote the file's bytes.
func Load(path string) (*Signer, error) {
	f, st, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	defer f.Close()
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s is accessible to group or others (mode %#o): run chmod 0600 %s", path, perm, path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	if len(raw) > maxKeyFile {
		return nil, fmt.Errorf("signing key %s is larger than %d bytes: not a key made by attestctl keygen", path, maxKeyFile)
	}
	s, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return s, nil
}

// Parse parses a PKCS#8 PEM private key (see Load).
func Parse(raw []byte) (*Signer, error) {
	blk, rest := pem.Decode(raw)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PKCS#8 PEM private key (want a \"PRIVATE KEY\" block, as made by attestctl keygen)")
	}
	if len(rest) > 0 && len(trimSpace(rest)) > 0 {
		return nil, errors.New("data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
	}
	s := &Signer{pkcs8: append([]byte(nil), blk.Bytes...)}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		s.key, s.alg = k, AlgEd25519
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on %s: only P-256 is supported", k.Curve.Params().Name)
		}
		s.key, s.alg = k, AlgES256
	default:
		return nil, fmt.Errorf("%T keys are not supported: use Ed25519 or ECDSA P-256", k)
	}
	s.pubDER, err = x509.MarshalPKIXPublicKey(s.key.Public())
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	s.keyID = keyIDOf(s.pubDER)
	return s, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// Alg is AlgEd25519 or AlgES256.
func (s *Signer) Alg() string { return s.alg }

// KeyID is the lowercase hex SHA-256 of the public key's DER
// SubjectPublicKeyInfo.
func (s *Signer) KeyID() string { return s.keyID }

// Public returns the public key.
func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

// PublicPEM returns the public key as a "PUBLIC KEY" PEM block.
func (s *Signer) PublicPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: s.pubDER})
}

// Sign signs msg with the key's algorithm (see AlgEd25519, AlgES256).
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	switch k := s.key.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg), nil
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(msg)
		r, ss, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			return nil, fmt.Errorf("ES256 sign: %w", err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		ss.FillBytes(out[32:])
		return out, nil
	}
	return nil, errors.New("sign: no key")
}

// DeriveSecret returns HMAC-SHA256, keyed by the private key's PKCS#8
// bytes, of label: a secret only the holder of the key file can compute,
// different for every label.
func (s *Signer) DeriveSecret(label string) []byte {
	m := hmac.New(sha256.New, s.pkcs8)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// ParsePublicPEM parses a "PUBLIC KEY" PEM block (SubjectPublicKeyInfo) of
// an Ed25519, ECDSA or RSA key.
func ParsePublicPEM(raw []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(raw)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key (want a \"PUBLIC KEY\" block)")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	return k, nil
}

// KeyID returns the key id of pub (see Signer.KeyID).
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	return keyIDOf(der), nil
}

func keyIDOf(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ErrBadSignature: the signature does not verify.
var ErrBadSignature = errors.New("signature does not verify")

// Verify checks sig over msg with pub under alg. The algorithm must be the
// key's: an Ed25519 key verifies only Ed25519, a P-256 key only ES256.
func Verify(pub crypto.PublicKey, alg string, msg, sig []byte) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if alg != AlgEd25519 {
			return fmt.Errorf("the public key is Ed25519, the signature says %q", alg)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k, msg, sig) {
			return ErrBadSignature
		}
		return nil
	case *ecdsa.PublicKey:
		if alg != AlgES256 || k.Curve != elliptic.P256() {
			return fmt.Errorf("the public key is ECDSA %s, the signature says %q (want ES256 with P-256)", k.Curve.Params().Name, alg)
		}
		if len(sig) != 64 {
			return ErrBadSignature
		}
		d := sha256.Sum256(msg)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(k, d[:], r, s) {
			return ErrBadSignature
		}
		return nil
	}
	return fmt.Errorf("%T public keys cannot verify bundle signatures: use the Ed25519 or P-256 key", pub)
}
