package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/api/apitest"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// fingerprint is the HMAC key fingerprint attestctl prints: the first 8
// bytes of SHA-256 over a label and the key.
func fingerprint(key []byte) string {
	h := sha256.Sum256(append([]byte("runtime-attestor bundle_hmac key fingerprint\x00"), key...))
	return hex.EncodeToString(h[:8])
}

// TestStatusNamesSigner: status says which key signed the bundle it shows
// (bundle_signature's algorithm and key id), and that it did not check it.
func TestStatusNamesSigner(t *testing.T) {
	t.Parallel()
	key, _ := keygen(t)
	s, err := identity.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	b := testBundle(t, state.Attested)
	if err := b.SignWith(s); err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	r := attestctl(t, "", nil, "--addr", serve(t, apitest.New(snapshotOf(t, b)), ""), "status")
	want := "Signed by:      Ed25519 by key id " + s.KeyID() + " (bundle_signature; check it: attestctl verify-bundle --pubkey)"
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("status: %s\nwant %q", r, want)
	}
}

// TestHMACFingerprintTellsKeysApart: after a rotation, verify-bundle's
// fingerprint tells which HMAC key file verified a bundle; it is not the
// key, nor its plain SHA-256.
func TestHMACFingerprintTellsKeysApart(t *testing.T) {
	t.Parallel()
	other := []byte(strings.Repeat("r", 40))
	if fingerprint(testKey) == fingerprint(other) {
		t.Fatal("two keys share a fingerprint")
	}
	plain := sha256.Sum256(testKey)
	if strings.HasPrefix(hex.EncodeToString(plain[:]), fingerprint(testKey)) || strings.Contains(fingerprint(testKey), hex.EncodeToString(testKey)[:16]) {
		t.Fatal("the fingerprint is the key's plain hash or the key")
	}
	for _, k := range [][]byte{testKey, other} {
		b := testBundle(t, state.Attested)
		if err := b.Sign(k); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "hmac.key")
		if err := os.WriteFile(f, k, 0o600); err != nil {
			t.Fatal(err)
		}
		r := attestctl(t, string(marshal(t, b)), nil, "verify-bundle", "--key", f, "-")
		if r.code != 0 || !strings.Contains(r.stdout, "(key fingerprint "+fingerprint(k)+")") {
			t.Errorf("verify-bundle: %s\nwant fingerprint %s", r, fingerprint(k))
		}
	}
}

// TestKeygenIfMissing: --if-missing keeps a key (exit 0, its key id), and
// refuses, without making a key, a public key whose private key is gone.
func TestKeygenIfMissing(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "signing.key")
	r := attestctl(t, "", nil, "keygen", "--if-missing", "--out", key)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "created "+key) {
		t.Fatalf("first keygen --if-missing: %s", r)
	}
	id := keyID(t, key)
	if r := attestctl(t, "", nil, "keygen", "--if-missing", "--out", key); r.code != 0 || r.stdout != "kept "+key+" (Ed25519); public key "+key+".pub; key id "+id+"\n" {
		t.Errorf("second keygen --if-missing: %s", r)
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if r := attestctl(t, "", nil, "keygen", "--if-missing", "--out", key); r.code != 1 || !strings.Contains(r.stderr, "identity verifiers pinned is gone") {
		t.Errorf("keygen --if-missing beside an orphaned .pub: %s", r)
	}
	if _, err := os.Stat(key); err == nil {
		t.Error("a new key was made")
	}
}
