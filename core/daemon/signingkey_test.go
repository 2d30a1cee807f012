package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// TestSigningKeyAtStart: the daemon never runs silently unsigned. A
// signing_key_path whose file is missing stops the start with the path
// and the command that makes it; one that holds no usable key stops it
// too; the development policy's key signs every bundle; an explicit
// signing_key_path: "" runs without bundle_signature and says so.
func TestSigningKeyAtStart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(t *testing.T, e *daemontest.Env) string // the signing_key_path to set; "keep" = the policy's
		want  []string                                     // in stderr of a refused start; nil = starts
	}{
		{"missing", func(t *testing.T, e *daemontest.Env) string {
			return filepath.Join(e.Dir, "identity", "signing.key")
		}, []string{"signing_key_path: " + "@/identity/signing.key does not exist", "attestctl keygen --out @/identity/signing.key"}},
		{"not a key", func(t *testing.T, e *daemontest.Env) string {
			p := filepath.Join(e.Dir, "garbage.key")
			if err := os.WriteFile(p, []byte("not a key\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, []string{"signing_key_path: signing key @/garbage.key: not a PKCS#8 PEM private key", "attestctl keygen"}},
		{"development key", func(*testing.T, *daemontest.Env) string { return "keep" }, nil},
		{"explicitly none", func(*testing.T, *daemontest.Env) string { return "" }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := daemontest.New(t, daemontest.Options{})
			path := c.setup(t, e)
			if path != "keep" {
				e.EditPolicy(func(doc map[string]any) { doc["signing_key_path"] = path })
			}
			if c.want != nil {
				p := e.StartNoWait()
				code := p.Wait(30 * time.Second)
				for _, w := range c.want {
					if w = strings.ReplaceAll(w, "@", e.Dir); !strings.Contains(p.Stderr(), w) {
						t.Errorf("stderr lacks %q:\n%s", w, p.Stderr())
					}
				}
				if code != ExitNoRun {
					t.Errorf("exit %d, want %d", code, ExitNoRun)
				}
				if _, err := os.Stat(e.AuditPath); err == nil {
					t.Errorf("a refused start wrote %s", e.AuditPath)
				}
				return
			}
			p := e.Start()
			defer p.Stop()
			_, body := e.Get("/api/v1/attest")
			var a struct {
				Bundle struct {
					Signature *struct {
						Alg   string `json:"alg"`
						KeyID string `json:"key_id"`
					} `json:"bundle_signature"`
				} `json:"bundle"`
			}
			if err := json.Unmarshal(body, &a); err != nil {
				t.Fatalf("attest: %v: %s", err, body)
			}
			sig := a.Bundle.Signature
			if path == "" {
				if sig != nil || !strings.Contains(p.Stderr(), `signing_key_path is "": bundles carry no bundle_signature`) {
					t.Errorf("without a key: signature %+v; log:\n%s", sig, p.Stderr())
				}
				return
			}
			s, err := identity.Load(e.SigningKey)
			if err != nil {
				t.Fatal(err)
			}
			if sig == nil || sig.Alg != identity.AlgEd25519 || sig.KeyID != s.KeyID() {
				t.Errorf("bundle_signature %+v, want Ed25519 by %s", sig, s.KeyID())
			}
		})
	}
}
