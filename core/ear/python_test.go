package ear

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
)

// docsPython returns the ```python block of doc that contains marker.
func docsPython(t *testing.T, doc, marker string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```python\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
		if strings.Contains(m[1], marker) {
			return m[1]
		}
	}
	t.Fatalf("docs/%s has no python block with %q", doc, marker)
	return ""
}

// python runs script with args; it skips the test when python3 or its
// cryptography package is missing.
func python(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if exec.Command(py, "-c", "import cryptography").Run() != nil {
		t.Skip("python3 has no cryptography (apt-get install python3-cryptography)")
	}
	p := filepath.Join(t.TempDir(), "verify.py")
	if err := os.WriteFile(p, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, append([]string{p}, args...)...).CombinedOutput()
	return string(out), err
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDocsPythonVerifiesEAR runs the Python script of docs/api.md on EAR
// results of both key types, and on a tampered one.
func TestDocsPythonVerifiesEAR(t *testing.T) {
	t.Parallel()
	script := docsPython(t, "api.md", "eat_profile")
	for _, kind := range []string{identity.KeyEd25519, identity.KeyP256} {
		s := signer(t, kind)
		c, err := Build(sampleBundle(t, "attested"), Options{Version: "1", Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := Sign(c, s)
		if err != nil {
			t.Fatal(err)
		}
		pub := writeTemp(t, "pub.pem", s.PublicPEM())
		out, err := python(t, script, writeTemp(t, "ear.jwt", []byte(tok)), pub)
		if err != nil || !strings.Contains(out, "runtime-attestor affirming") || !strings.Contains(out, `kernel contraindicated {"configuration": 2, "executables": 96}`) {
			t.Errorf("%s: the docs' script on a genuine EAR: %v\n%s", kind, err, out)
		}
		parts := strings.Split(tok, ".")
		claims := strings.Replace(string(mustB64(t, parts[1])), `"contraindicated"`, `"affirming"`, 1)
		forged := parts[0] + "." + b64([]byte(claims)) + "." + parts[2]
		if out, err := python(t, script, writeTemp(t, "forged.jwt", []byte(forged)), pub); err == nil {
			t.Errorf("%s: the docs' script accepted a tampered EAR:\n%s", kind, out)
		}
	}
}

// TestDocsPythonVerifiesBundleSignature runs the bundle_signature script
// of docs/bundle.md on a signed bundle with awkward strings, and on a
// changed one.
func TestDocsPythonVerifiesBundleSignature(t *testing.T) {
	t.Parallel()
	script := docsPython(t, "bundle.md", "bundle_signature OK")
	for _, kind := range []string{identity.KeyEd25519, identity.KeyP256} {
		s := signer(t, kind)
		b := bundle.Bundle{BundleVersion: 1, State: "attested", KernelCmdline: bundle.Ptr("ro quiet é ☃ \"x\" \\ <&> \u2028 \x01"),
			ServiceDigests: map[string]string{"zeta": "1", "Alpha": "2", "émile": "3"}}
		if err := b.SignWith(s); err != nil {
			t.Fatal(err)
		}
		if err := b.Sign([]byte(strings.Repeat("k", 32))); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(map[string]any{"state": "attested", "bundle": b})
		pub := writeTemp(t, "pub.pem", s.PublicPEM())
		if out, err := python(t, script, writeTemp(t, "attest.json", raw), pub); err != nil || !strings.Contains(out, "bundle_signature OK: attested") {
			t.Errorf("%s: the docs' script on a genuine bundle: %v\n%s", kind, err, out)
		}
		changed := strings.Replace(string(raw), `"state":"attested","score"`, `"state":"failed","score"`, 1)
		if changed == string(raw) {
			t.Fatal("test bug: nothing changed")
		}
		if out, err := python(t, script, writeTemp(t, "changed.json", []byte(changed)), pub); err == nil {
			t.Errorf("%s: the docs' script accepted a changed bundle:\n%s", kind, out)
		}
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
