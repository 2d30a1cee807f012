package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteNewLoadSignVerify(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{KeyEd25519, KeyP256} {
		dir := t.TempDir()
		key, pub := filepath.Join(dir, "k"), filepath.Join(dir, "k.pub")
		s, err := WriteNew(kind, key, pub)
		if err != nil {
			t.Fatal(err)
		}
		for path, mode := range map[string]os.FileMode{key: 0o600, pub: 0o644} {
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
				t.Errorf("%s: %s: mode %v (%v), want %v", kind, path, fi.Mode().Perm(), err, mode)
			}
		}
		if _, err := WriteNew(kind, key, pub); err == nil || !strings.Contains(err.Error(), "never replaced") {
			t.Errorf("%s: WriteNew over an existing key: %v", kind, err)
		}
		loaded, err := Load(key)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.KeyID() != s.KeyID() || loaded.Alg() != s.Alg() {
			t.Errorf("%s: loaded %s %s, made %s %s", kind, loaded.Alg(), loaded.KeyID(), s.Alg(), s.KeyID())
		}
		pubRaw, _ := os.ReadFile(pub)
		pk, err := ParsePublicPEM(pubRaw)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := KeyID(pk); id != s.KeyID() {
			t.Errorf("%s: key id of the .pub %s, want %s", kind, id, s.KeyID())
		}
		sig, err := loaded.Sign([]byte("msg"))
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(pk, s.Alg(), []byte("msg"), sig); err != nil {
			t.Errorf("%s: own signature refused: %v", kind, err)
		}
		if err := Verify(pk, s.Alg(), []byte("msh"), sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: signature over another message: %v", kind, err)
		}
		other := map[string]string{KeyEd25519: AlgES256, KeyP256: AlgEd25519}[kind]
		if err := Verify(pk, other, []byte("msg"), sig); err == nil {
			t.Errorf("%s: verified under algorithm %s", kind, other)
		}
		if string(loaded.DeriveSecret("a")) == string(loaded.DeriveSecret("b")) || len(loaded.DeriveSecret("a")) != 32 {
			t.Errorf("%s: DeriveSecret does not separate labels", kind)
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, err := Generate(KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		data []byte
		mode os.FileMode
		want string
	}{
		{good, 0o640, "accessible to group or others (mode 0640): run chmod 0600"},
		{good, 0o604, "accessible to group or others"},
		{[]byte("not a key"), 0o600, "not a PKCS#8 PEM private key"},
		{[]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600, "not a PKCS#8 PEM private key"},
		{append(append([]byte(nil), good...), "junk"...), 0o600, "data after the PEM block"},
		{[]byte(strings.Repeat("x", maxKeyFile+1)), 0o600, "larger than"},
	} {
		p := filepath.Join(dir, "key")
		os.Remove(p)
		if err := os.WriteFile(p, tc.data, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: got %v, want %q", i, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY-----\nM") {
			t.Errorf("Test %d: the error quotes the key: %v", i, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing key loaded")
	}
}

// TestEnsure: a first call makes the key pair; later calls keep it (the
// same key id, bytes untouched) and restore a missing public key; a public
// key left without its private key, a public key of another key and an
// unusable key are errors, and nothing is replaced.
func TestEnsure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.key.pub")
	s, created, err := Ensure(KeyEd25519, key, pub)
	if err != nil || !created {
		t.Fatalf("first Ensure: created %v, %v", created, err)
	}
	keyBytes, _ := os.ReadFile(key)
	again, created, err := Ensure(KeyEd25519, key, pub)
	if err != nil || created || again.KeyID() != s.KeyID() {
		t.Fatalf("second Ensure: created %v, key id %s (want %s), %v", created, again.KeyID(), s.KeyID(), err)
	}
	if err := os.Remove(pub); err != nil {
		t.Fatal(err)
	}
	if _, created, err := Ensure(KeyEd25519, key, pub); err != nil || created {
		t.Fatalf("Ensure without the .pub: created %v, %v", created, err)
	}
	raw, _ := os.ReadFile(pub)
	if pk, err := ParsePublicPEM(raw); err != nil {
		t.Fatalf("restored .pub: %v", err)
	} else if id, _ := KeyID(pk); id != s.KeyID() {
		t.Errorf("restored .pub has key id %s, want %s", id, s.KeyID())
	}
	if now, _ := os.ReadFile(key); string(now) != string(keyBytes) {
		t.Error("Ensure rewrote the private key")
	}

	otherDir := t.TempDir()
	other, err := WriteNew(KeyEd25519, filepath.Join(otherDir, "k"), filepath.Join(otherDir, "k.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, other.PublicPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(KeyEd25519, key, pub); err == nil || !strings.Contains(err.Error(), "is not that of") {
		t.Errorf("Ensure with another key's .pub: %v", err)
	}
	orphan := filepath.Join(otherDir, "k.pub")
	if err := os.Remove(filepath.Join(otherDir, "k")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(KeyEd25519, filepath.Join(otherDir, "k"), orphan); err == nil || !strings.Contains(err.Error(), "identity verifiers pinned is gone") {
		t.Errorf("Ensure with a .pub and no key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(otherDir, "k")); err == nil {
		t.Error("Ensure made a new key beside an orphaned .pub")
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(KeyEd25519, key, pub); err == nil || !strings.Contains(err.Error(), "chmod 0600") {
		t.Errorf("Ensure with a key others can read: %v", err)
	}
}
