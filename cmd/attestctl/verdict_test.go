package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/verdict"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
)

// TestVerdictHistoryEndToEnd: a swtpm-backed daemon goes attested →
// degraded (a pinned service binary changed) → attested (restored);
// verify-evidence recovers that history from copies of the evidence and
// the verdict log alone, after the daemon has stopped. A restarted daemon
// continues the log without extending history again, and a forged copy
// of the log fails.
func TestVerdictHistoryEndToEnd(t *testing.T) {
	t.Parallel()
	sw := swtpmtest.Start(t)
	env := daemontest.New(t, daemontest.Options{})
	key, pub := keygen(t)
	svc := filepath.Join(t.TempDir(), "svc")
	good := []byte("#!/bin/true\n")
	if err := os.WriteFile(svc, good, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	logPath := filepath.Join(env.RunDir, "verdicts", "verdict.log")
	env.EditPolicy(func(doc map[string]any) {
		doc["signing_key_path"] = key
		doc["evidence_tpm_socket"] = sw.Socket
		doc["verdict_log_path"] = logPath
		doc["service_binaries"] = map[string]any{"svc": map[string]any{"path": svc, "sha256": hex.EncodeToString(sum[:])}}
	})
	p := env.Start()
	if st := env.State(); st != "attested" {
		p.Stop()
		t.Fatalf("state %s; log:\n%s", st, p.Stderr())
	}
	refresh := func(want string) {
		t.Helper()
		code, body, err := env.Do(http.MethodPost, "/api/v1/refresh", env.Token)
		if err != nil || code != http.StatusOK || !strings.Contains(string(body), `"state":"`+want+`"`) {
			t.Fatalf("refresh: %d %s %v, want state %s\n%s", code, body, err, want, p.Stderr())
		}
	}
	if err := os.WriteFile(svc, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	refresh("degraded")
	if err := os.WriteFile(svc, good, 0o755); err != nil {
		t.Fatal(err)
	}
	refresh("attested")
	refresh("attested")

	status := env.JSON("/api/security/status")
	vm, _ := status["verdict_measurement"].(map[string]any)
	if vm["measuring"] != true || vm["records"] != 3.0 || vm["pcr"] != 13.0 {
		t.Errorf("status verdict_measurement %v", vm)
	}
	_, akBody := env.Get("/api/v1/ak")
	var ak evidence.AKPublic
	if err := json.Unmarshal(akBody, &ak); err != nil {
		t.Fatal(err)
	}
	nonce := strings.Repeat("5a", 32)
	code, evRaw := env.Get("/api/v1/evidence?nonce=" + nonce)
	if code != http.StatusOK {
		t.Fatalf("evidence: %d %s", code, evRaw)
	}
	logCopy, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	_, attest := env.Get("/api/v1/attest")
	p.Stop()

	// The value a fleet operator pins, computed from a known-good bundle,
	// is the PCR after the first (attested) verdict.
	recs, err := verdict.Parse(logCopy, 13)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := verdict.Replay(recs[:1])
	if r := attestctl(t, string(attest), nil, "verdict-pcr"); r.code != 0 || !strings.Contains(r.stdout, "pcr 13 after it: "+hex.EncodeToString(first)) {
		t.Errorf("verdict-pcr of the attested bundle: %s\nwant the PCR after the first verdict, %x", r, first)
	}

	// Another machine's view: copies of the files, no daemon.
	akFile := writeFile(t, "ak.pem", []byte(ak.PEM))
	evFile := writeFile(t, "evidence.json", evRaw)
	copyFile := writeFile(t, "verdict.log", logCopy)
	export := filepath.Join(t.TempDir(), "checkquote")
	r := attestctl(t, "", nil, "verify-evidence", "--ak", akFile, "--nonce", nonce, "--pubkey", pub, "--export", export, "--verdict-log", copyFile, evFile)
	history := regexp.MustCompile(`(?s)3 verdicts since boot replay PCR 13.*\n  attested at \S+ \(attestation 1\)\n  degraded at \S+ \(attestation 2\): binaries.digest_mismatch\n  attested at \S+ \(attestation 3\)\n$`)
	if r.code != 0 || !history.MatchString(r.stdout) {
		t.Fatalf("verify-evidence with the verdict log: %s", r)
	}
	t.Logf("verify-evidence:\n%s", r.stdout)
	checkquote(t, export)
	if r2 := attestctl(t, "", nil, "verify-evidence", "--ak", akFile, "--nonce", nonce, evFile); r2.code != 0 || r2.stdout != r.stdout {
		t.Errorf("verify-evidence with the log the evidence carries: %s", r2)
	}
	forged := strings.Replace(string(logCopy), `"state":"degraded","finding_codes":["binaries.digest_mismatch"]`, `"state":"attested","finding_codes":[]`, 1)
	if forged == string(logCopy) {
		t.Fatal("forgery did not apply")
	}
	if r := attestctl(t, "", nil, "verify-evidence", "--ak", akFile, "--nonce", nonce, "--verdict-log", writeFile(t, "forged.log", []byte(forged)), evFile); r.code != 1 || !strings.Contains(r.stderr, "edited record") {
		t.Errorf("verify-evidence with a forged log: %s", r)
	}
	dropped := strings.Join(strings.SplitAfter(string(logCopy), "\n")[:2], "")
	if r := attestctl(t, "", nil, "verify-evidence", "--ak", akFile, "--nonce", nonce, "--verdict-log", writeFile(t, "short.log", []byte(dropped)), evFile); r.code != 1 || !strings.Contains(r.stderr, "replays PCR 13") {
		t.Errorf("verify-evidence with the last verdict dropped: %s", r)
	}

	// A restarted daemon continues the log: the same verdict is not
	// extended again.
	p = env.Start()
	defer p.Stop()
	if st := env.State(); st != "attested" {
		t.Fatalf("restarted: state %s\n%s", st, p.Stderr())
	}
	nonce2 := strings.Repeat("6b", 32)
	_, evRaw2 := env.Get("/api/v1/evidence?nonce=" + nonce2)
	r = attestctl(t, "", nil, "verify-evidence", "--ak", akFile, "--nonce", nonce2, writeFile(t, "evidence2.json", evRaw2))
	if r.code != 0 || !strings.Contains(r.stdout, "3 verdicts since boot") {
		t.Errorf("after a restart: %s\n%s", r, p.Stderr())
	}
}
