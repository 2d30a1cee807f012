package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/identity"
)

func newSigner(t testing.TB) *identity.Signer {
	t.Helper()
	s, err := identity.New(identity.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signedBoth returns a bundle with bundle_signature, then bundle_hmac.
func signedBoth(t testing.TB, s *identity.Signer, key []byte) []byte {
	t.Helper()
	b := Bundle{BundleVersion: Version, Sequence: 3, State: "attested", Timestamp: "2026-03-13T12:00:00.000Z"}
	if err := b.SignWith(s); err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(key); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestSignatureBesideHMAC(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	key := bytes.Repeat([]byte{7}, 32)
	raw := signedBoth(t, s, key)
	if err := VerifySignature(raw, s.Public()); err != nil {
		t.Fatalf("bundle_signature refused: %v", err)
	}
	// bundle_hmac is as an HMAC-only verifier expects it: over the bundle without
	// bundle_hmac (bundle_signature included).
	if err := Verify(raw, key); err != nil {
		t.Fatalf("bundle_hmac refused: %v", err)
	}
	hin, _ := SigningInput(raw)
	sin, _ := SignatureInput(raw)
	if !bytes.Contains(hin, []byte(`"bundle_signature":{`)) || bytes.Contains(sin, []byte("bundle_signature")) || bytes.Contains(sin, []byte("bundle_hmac")) {
		t.Errorf("signing inputs:\nhmac %s\nsig  %s", hin, sin)
	}

	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	foreign := signedBoth(t, newSigner(t), key)
	for i, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"changed field", edit(func(m map[string]any) { m["state"] = "degraded" }), ErrSignatureMismatch},
		{"no signature", edit(func(m map[string]any) { delete(m, "bundle_signature") }), ErrUnsigned},
		{"null signature", edit(func(m map[string]any) { m["bundle_signature"] = nil }), ErrUnsigned},
		{"foreign key", foreign, ErrSignatureMismatch},
		{"foreign signature, our key id", edit(func(m map[string]any) {
			var f map[string]any
			_ = json.Unmarshal(foreign, &f)
			sig := f["bundle_signature"].(map[string]any)
			sig["key_id"] = s.KeyID()
			m["bundle_signature"] = sig
		}), ErrSignatureMismatch},
	} {
		if err := VerifySignature(tc.raw, s.Public()); !errors.Is(err, tc.want) {
			t.Errorf("Test %d: %s: got %v, want %v", i, tc.name, err, tc.want)
		}
	}
	for i, bad := range []string{`{"alg":"Ed25519","key_id":"x","sig":"%%%"}`, `{"alg":"Ed25519"}`, `"x"`, `{"alg":"Ed25519","key_id":"","sig":"","extra":1}`} {
		r := edit(func(m map[string]any) { m["bundle_signature"] = json.RawMessage(bad) })
		if err := VerifySignature(r, s.Public()); err == nil {
			t.Errorf("Test %d: malformed bundle_signature %s accepted", i, bad)
		}
	}
}

func FuzzVerifySignature(f *testing.F) {
	s := newSigner(f)
	f.Add(signedBoth(f, s, bytes.Repeat([]byte{7}, 32)))
	f.Add([]byte(`{"bundle_signature":{"alg":"Ed25519","key_id":"","sig":""}}`))
	f.Add([]byte(`{"bundle_signature":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = VerifySignature(raw, s.Public())
		_, _ = SignatureInput(raw)
	})
}
