package main_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
)

// keygen runs attestctl keygen into a new folder and returns the key and
// public key paths.
func keygen(t *testing.T, args ...string) (key, pub string) {
	t.Helper()
	dir := t.TempDir()
	key = filepath.Join(dir, "signing.key")
	r := attestctl(t, "", nil, append([]string{"keygen", "--out", key}, args...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "key id ") {
		t.Fatalf("keygen: %s", r)
	}
	return key, key + ".pub"
}

// keyID is the key id of the private key file.
func keyID(t *testing.T, key string) string {
	t.Helper()
	s, err := identity.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	return s.KeyID()
}

func TestKeygen(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"ed25519", "p256"} {
		key, pub := keygen(t, "--type", kind)
		fi, err := os.Stat(key)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: key mode %v (%v), want 0600", kind, fi.Mode().Perm(), err)
		}
		if _, err := identity.Load(key); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
		if raw, _ := os.ReadFile(pub); !bytes.HasPrefix(raw, []byte("-----BEGIN PUBLIC KEY-----")) {
			t.Errorf("%s: public key file %q", kind, raw)
		}
		if r := attestctl(t, "", nil, "keygen", "--out", key); r.code != 2 || !strings.Contains(r.stderr, "never replaced") {
			t.Errorf("%s: keygen over an existing key: %s", kind, r)
		}
	}
	if r := attestctl(t, "", nil, "keygen", "--out", filepath.Join(t.TempDir(), "k"), "--type", "rsa"); r.code != 2 {
		t.Errorf("keygen --type rsa: %s", r)
	}
}

// signedBundleWith returns an attested bundle signed with the key file.
func signedBundleWith(t *testing.T, keyFile string, ts time.Time) []byte {
	t.Helper()
	s, err := identity.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b := bundle.Bundle{BundleVersion: bundle.Version, Sequence: 4, State: state.Attested, Timestamp: bundle.FormatTime(ts)}
	if err := b.SignWith(s); err != nil {
		t.Fatal(err)
	}
	if err := b.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVerifyBundlePubkey(t *testing.T) {
	t.Parallel()
	key, pub := keygen(t)
	_, otherPub := keygen(t)
	fresh := writeFile(t, "fresh.json", signedBundleWith(t, key, time.Now()))
	old := writeFile(t, "old.json", signedBundleWith(t, key, time.Now().Add(-time.Hour)))
	hmacKey := writeFile(t, "hmac.key", testKey)
	short := writeFile(t, "short.key", testKey[:31])
	for i, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--pubkey", pub, fresh}, 0, "bundle signature OK: state attested, attestation 4"},
		{[]string{"--pubkey", pub, fresh}, 0, "  bundle_signature: Ed25519 by key id " + keyID(t, key) + ", verified with " + pub + "\n"},
		{[]string{"--pubkey", pub, fresh}, 0, "  bundle_hmac:      present, not checked (no --key)\n"},
		{[]string{"--key", hmacKey, fresh}, 0, "  bundle_signature: Ed25519 by key id " + keyID(t, key) + ", not checked (no --pubkey)\n"},
		{[]string{"--key", hmacKey, fresh}, 0, "  bundle_hmac:      HMAC-SHA256, verified with " + hmacKey + " (key fingerprint "},
		{[]string{"--pubkey", otherPub, fresh}, 1, "signed by key " + keyID(t, key)[:16]},
		{[]string{"--pubkey", pub, "--key", hmacKey, "--max-age", "5m", fresh}, 0, "bundle signature OK"},
		{[]string{"--pubkey", otherPub, fresh}, 1, "not by this public key"},
		{[]string{"--pubkey", pub, "--max-age", "5m", old}, 1, "more than --max-age 5m0s"},
		{[]string{"--key", short, fresh}, 2, "holds 31 bytes, fewer than 32"},
		{[]string{"--pubkey", hmacKey, fresh}, 2, "not a PEM public key"},
		{[]string{"--pubkey", pub, "--max-age", "-1s", fresh}, 2, "must not be negative"},
	} {
		r := attestctl(t, "", nil, append([]string{"verify-bundle"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("Test %d: verify-bundle %q: %s\nwant exit %d with %q", i, tc.args, r, tc.code, tc.want)
		}
	}
}

// squatter is a real HTTP server on a loopback port that answers as an
// attestor would, with whatever bundle it was given: what a local process
// that grabbed the port while the attestor restarts can serve.
func squatter(t *testing.T, bundleRaw []byte, evidenceRaw []byte) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/verify", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(apitypes.VerifyResponse{Verified: true, State: state.Attested})
	})
	mux.HandleFunc("/api/v1/attest", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(apitypes.AttestResponse{State: state.Attested, Bundle: bundleRaw})
	})
	mux.HandleFunc("/api/v1/evidence", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(evidenceRaw)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestGateRefusesSquatter: a squatter's "attested" passes a gate that
// trusts the port, but not one that checks the signature: an unsigned
// bundle, one signed by another key, or an old genuine one (replay) are
// refused; the genuine fresh one passes.
func TestGateRefusesSquatter(t *testing.T) {
	t.Parallel()
	key, pub := keygen(t)
	foreignKey, _ := keygen(t)
	unsigned := func() []byte {
		b := bundle.Bundle{BundleVersion: 1, Sequence: 1, State: state.Attested, Timestamp: bundle.FormatTime(time.Now())}
		if err := b.Sign(testKey); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(b)
		return raw
	}()
	gate := func(url string, extra ...string) result {
		return attestctl(t, "", nil, append([]string{"gate", "--addr", url, "--timeout", "400ms", "--interval", "50ms"}, extra...)...)
	}
	if r := gate(squatter(t, unsigned, nil)); r.code != 0 {
		t.Fatalf("the port-trusting gate (the old behaviour) refused the squatter: %s", r)
	}
	for i, tc := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"unsigned", unsigned, "no bundle_signature"},
		{"foreign-signed", signedBundleWith(t, foreignKey, time.Now()), "not by this public key"},
		{"replayed old genuine bundle", signedBundleWith(t, key, time.Now().Add(-time.Hour)), "more than --max-age"},
	} {
		r := gate(squatter(t, tc.bundle, nil), "--pubkey", pub)
		if r.code != 1 || !strings.Contains(r.stderr, "NOT trusted") || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("Test %d: gate --pubkey against a squatter serving a %s bundle: %s", i, tc.name, r)
		}
	}
	s, err := identity.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	// The gate says which key signed what it believed.
	want := "attestor state attested (bundle_signature Ed25519 by key id " + s.KeyID() + ", verified with " + pub + ")\n"
	if r := gate(squatter(t, signedBundleWith(t, key, time.Now()), nil), "--pubkey", pub); r.code != 0 || r.stdout != want {
		t.Errorf("gate --pubkey refused a genuine signed bundle: %s\nwant stdout %q", r, want)
	}
}

// TestEvidenceEndToEnd runs the real daemon with a signing key and swtpm:
// GET /api/v1/evidence verified by attestctl verify-evidence and by
// tpm2_checkquote; a wrong nonce, a changed bundle field, a changed PCR and
// a replayed quote refused; the gate with --ak passes the daemon and
// refuses a squatter replaying the daemon's evidence.
func TestEvidenceEndToEnd(t *testing.T) {
	t.Parallel()
	sw := swtpmtest.Start(t)
	env := daemontest.New(t, daemontest.Options{})
	key, pub := keygen(t)
	env.EditPolicy(func(doc map[string]any) {
		doc["signing_key_path"] = key
		doc["evidence_tpm_socket"] = sw.Socket
	})
	p := env.Start()
	defer p.Stop()
	if st := env.State(); st != "attested" {
		t.Fatalf("state %s; log:\n%s", st, p.Stderr())
	}
	code, body := env.Get("/api/v1/ak")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/ak: %d %s", code, body)
	}
	var ak evidence.AKPublic
	if err := json.Unmarshal(body, &ak); err != nil {
		t.Fatal(err)
	}
	akFile := writeFile(t, "ak.pem", []byte(ak.PEM))

	nonce := strings.Repeat("c3", 32)
	code, evRaw := env.Get("/api/v1/evidence?nonce=" + nonce)
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/evidence: %d %s\n%s", code, evRaw, p.Stderr())
	}
	evFile := writeFile(t, "evidence.json", evRaw)
	export := filepath.Join(t.TempDir(), "checkquote")
	r := attestctl(t, "", nil, "verify-evidence", "--ak", akFile, "--nonce", nonce, "--pubkey", pub, "--max-age", "10m", "--export", export, evFile)
	if r.code != 0 || !strings.Contains(r.stdout, "evidence OK: TPM quote of 13 PCRs") {
		t.Fatalf("verify-evidence of genuine evidence: %s", r)
	}
	checkquote(t, export)

	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(evRaw))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return writeFile(t, "edited.json", out)
	}
	for i, tc := range []struct {
		name, file, nonce, want string
	}{
		{"wrong nonce", evFile, strings.Repeat("c4", 32), "not an answer to this request"},
		{"changed bundle field", edit(func(m map[string]any) { m["bundle"].(map[string]any)["score"] = 0.5 }), nonce, "quote_nonce_mismatch"},
		{"changed PCR", edit(func(m map[string]any) {
			m["quote"].(map[string]any)["pcrs"].(map[string]any)["0"] = strings.Repeat("11", 32)
		}), nonce, "quote_pcr_digest_mismatch"},
	} {
		r := attestctl(t, "", nil, "verify-evidence", "--ak", akFile, "--nonce", tc.nonce, tc.file)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("Test %d: verify-evidence, %s: %s\nwant exit 1 with %q", i, tc.name, r, tc.want)
		}
	}
	_, otherPub := keygen(t) // not an AK at all, but a foreign key must never verify
	if r := attestctl(t, "", nil, "verify-evidence", "--ak", otherPub, "--nonce", nonce, evFile); r.code != 1 || !strings.Contains(r.stderr, "not the pinned AK") {
		t.Errorf("verify-evidence with another key as AK: %s", r)
	}

	gate := func(url string) result {
		return attestctl(t, "", nil, "gate", "--addr", url, "--pubkey", pub, "--ak", akFile, "--timeout", "5s", "--interval", "100ms")
	}
	signer, err := identity.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	if r := gate("http://" + env.Addr); r.code != 0 || r.stdout != "attestor state attested (bundle_signature Ed25519 by key id "+signer.KeyID()+", verified with "+pub+"; TPM quote over a fresh nonce verified with the AK)\n" {
		t.Errorf("gate --ak against the daemon: %s", r)
	}
	_, bundleBody := env.Get("/api/v1/attest")
	var ar apitypes.AttestResponse
	_ = json.Unmarshal(bundleBody, &ar)
	r = attestctl(t, "", nil, "gate", "--addr", squatter(t, ar.Bundle, evRaw), "--pubkey", pub, "--ak", akFile, "--timeout", "400ms", "--interval", "50ms")
	if r.code != 1 || !strings.Contains(r.stderr, "evidence NOT trusted") {
		t.Errorf("gate --ak against a squatter replaying genuine evidence and bundle: %s", r)
	}
	_, metrics := env.Get("/metrics")
	if !strings.Contains(string(metrics), `runtime_attestor_evidence_requests_total{result="ok"}`) {
		t.Error("/metrics does not count evidence requests")
	}
}

// checkquote runs tpm2_checkquote on the files verify-evidence exported,
// with the qualifying data it wrote, then with the data of another nonce.
func checkquote(t *testing.T, dir string) {
	t.Helper()
	bin, err := exec.LookPath("tpm2_checkquote")
	if err != nil {
		t.Log("tpm2_checkquote is not installed (scripts/install-deps.sh): not run")
		return
	}
	qd, err := os.ReadFile(filepath.Join(dir, "qualification.hex"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(q string) ([]byte, error) {
		return exec.Command(bin, "-u", filepath.Join(dir, "ak.pem"), "-m", filepath.Join(dir, "quote.msg"),
			"-s", filepath.Join(dir, "quote.sig"), "-f", filepath.Join(dir, "pcrs.bin"), "-g", "sha256",
			"-q", q).CombinedOutput()
	}
	if out, err := run(strings.TrimSpace(string(qd))); err != nil {
		t.Errorf("tpm2_checkquote refused the daemon's evidence: %v\n%s", err, out)
	}
	if out, err := run(strings.Repeat("00", 32)); err == nil {
		t.Errorf("tpm2_checkquote accepted other qualifying data:\n%s", out)
	}
}

// TestVerifyEvidenceState: genuine evidence of a degraded bundle is
// refused unless --allow-degraded. The evidence was recorded from the
// go-tpm-tools simulator (core/evidence/testdata), so no TPM is needed.
func TestVerifyEvidenceState(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "core", "evidence", "testdata")
	ak := filepath.Join(dir, "ak.pem")
	nonce := strings.Repeat("01", 32)
	for i, tc := range []struct {
		file string
		args []string
		code int
		want string
	}{
		{"evidence.json", nil, 0, "state attested"},
		{"evidence-degraded.json", nil, 1, "the quote is genuine but the bundle's state is degraded, not attested"},
		{"evidence-degraded.json", []string{"--allow-degraded"}, 0, "state degraded"},
		{"evidence.json", []string{"--nonce", "0102"}, 2, "fewer than 16"},
		{"evidence.json", []string{"--ak", ""}, 2, "--ak is required"},
	} {
		args := append([]string{"verify-evidence", "--ak", ak, "--nonce", nonce}, tc.args...)
		r := attestctl(t, "", nil, append(args, filepath.Join(dir, tc.file))...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("Test %d: %s %q: %s\nwant exit %d with %q", i, tc.file, tc.args, r, tc.code, tc.want)
		}
	}
}

// TestDaemonWithoutTPM: the real daemon with a signing key and no TPM signs
// its bundles and EAR results, and answers evidence with 409, never a quote.
func TestDaemonWithoutTPM(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	key, pub := keygen(t)
	env.EditPolicy(func(doc map[string]any) {
		doc["signing_key_path"] = key
		doc["evidence_tpm_device"] = filepath.Join(t.TempDir(), "no-tpm")
	})
	p := env.Start()
	defer p.Stop()
	code, body := env.Get("/api/v1/evidence?nonce=" + strings.Repeat("ab", 16))
	var e apitypes.ErrorResponse
	if code != http.StatusConflict || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "no TPM") {
		t.Errorf("evidence without a TPM: %d %s, want 409 with a JSON error", code, body)
	}
	_, attest := env.Get("/api/v1/attest")
	if r := attestctl(t, string(attest), nil, "verify-bundle", "--pubkey", pub, "--max-age", "5m"); r.code != 0 {
		t.Errorf("the daemon's bundle with its public key: %s", r)
	}
	code, tok := env.Get("/api/v1/ear")
	if code != http.StatusOK || strings.Count(string(tok), ".") != 2 {
		t.Errorf("GET /api/v1/ear: %d %s", code, tok)
	}
}
