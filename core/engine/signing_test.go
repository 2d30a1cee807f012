package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/policy"
)

// TestBundleSignature: with signing_key_path the bundle carries a
// bundle_signature that verifies with the public key, beside a bundle_hmac
// that still verifies for an HMAC-only verifier; a configured key that cannot
// be used leaves the bundle without a signature, reports core.signing_key
// and is never attested.
func TestBundleSignature(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name  string
		setup func(t *testing.T, path string) *identity.Signer
	}{
		{"good key", func(t *testing.T, path string) *identity.Signer {
			s, err := identity.WriteNew(identity.KeyEd25519, path, path+".pub")
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"missing key", func(*testing.T, string) *identity.Signer { return nil }},
		{"group-readable key", func(t *testing.T, path string) *identity.Signer {
			if _, err := identity.WriteNew(identity.KeyEd25519, path, path+".pub"); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o640); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
	} {
		var keyPath string
		f := newFixture(t, []echoPlugin{{name: "vendor"}}, func(p *policy.Policy) {
			keyPath = filepath.Join(filepath.Dir(p.HMACKeyPath), "case.key") // not the fixture's own key
			p.SigningKeyPath = keyPath
		})
		s := tc.setup(t, keyPath)
		snap, b := f.attest()
		if err := bundle.Verify(snap.Bundle, f.key); err != nil {
			t.Errorf("Test %d (%s): bundle_hmac: %v", i, tc.name, err)
		}
		_, finding := codes(b)["core.signing_key"]
		if s == nil {
			if b.BundleSignature != nil || !finding || snap.State == state.Attested {
				t.Errorf("Test %d (%s): signature %v, core.signing_key %v, state %s; want none, reported, not attested", i, tc.name, b.BundleSignature, finding, snap.State)
			}
			continue
		}
		if finding || snap.State != state.Attested {
			t.Errorf("Test %d (%s): core.signing_key %v, state %s", i, tc.name, finding, snap.State)
		}
		if err := bundle.VerifySignature(snap.Bundle, s.Public()); err != nil {
			t.Errorf("Test %d (%s): bundle_signature: %v", i, tc.name, err)
		}
	}
}
