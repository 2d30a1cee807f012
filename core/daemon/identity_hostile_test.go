package daemon

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// TestHostileVsIdentity: with a signing key, an audit MAC
// key and its seed, a verdict log and an evidence TPM (swtpm) configured,
// a third-party plugin granted nothing — one that never confines itself,
// and one that declares the whole file system — tries to read the signing
// key, the audit key and the seed, to append to and replace the verdict
// log, to replace the signing key, and to reach the evidence TPM: a TLS
// handshake, then a raw TPM2_PCR_Extend of the verdict PCR. Every attempt
// is refused by the host's confinement (the TPM socket by the plugin's
// seccomp filter, which has no connect(2) for a plugin granted no socket,
// whatever the kernel's Landlock ABI), the verdict PCR holds only the
// daemon's extends, and the key and log are as they were.
func TestHostileVsIdentity(t *testing.T) {
	t.Parallel()
	// Short subtest names: the plugins' socket paths live under t.TempDir.
	for name, plugin := range map[string]string{"h": "hostile", "w": "hostilewide"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := daemontest.New(t, daemontest.Options{})
			e.ExtraEnv = append(e.ExtraEnv, "RUNTIME_DIRECTORY="+e.RunDir)
			testbin.Install(t, testbin.Build(t, "./testplugins/"+plugin, "attestor-check-"+plugin), e.PluginDir, "attestor-check-vendor")
			tpm := swtpmtest.Start(t)
			idDir := filepath.Join(e.Dir, "identity")
			if err := os.Mkdir(idDir, 0o700); err != nil {
				t.Fatal(err)
			}
			signingKey := filepath.Join(idDir, "signing.key")
			if _, err := identity.WriteNew(identity.KeyEd25519, signingKey, signingKey+".pub"); err != nil {
				t.Fatal(err)
			}
			auditKey := filepath.Join(e.RunDir, "audit.key") // made at start, with its seed
			verdictLog := filepath.Join(e.RunDir, "verdict.log")
			attacks := map[string]any{
				"read":   []string{signingKey, auditKey, auditKey + ".seed", verdictLog},
				"list":   []string{idDir},
				"append": []string{verdictLog, auditKey},
				"create": []string{filepath.Join(idDir, "planted"), filepath.Join(e.RunDir, "verdict.log.planted")},
				"rename": [][2]string{{signingKey, signingKey + ".stolen"}, {verdictLog, verdictLog + ".old"}},
			}
			attacks["connect"] = []string{tpm.Socket}
			attacks["extend_pcr"] = []string{tpm.Socket}
			const want = 13
			plan := mustJSON(t, attacks)
			pol := strings.Replace(e.DevelopmentPolicy(), "\nplugins:\n", "\nplugins:\n  vendor:\n    config: "+plan+"\n", 1)
			pol = strings.Replace(pol, `signing_key_path: "`+e.SigningKey+`"`, "signing_key_path: "+signingKey, 1)
			e.WritePolicy(pol + "\nevidence_tpm_socket: " + tpm.Socket + "\n")
			p := e.Start()
			defer p.Stop()
			// The first verdict is measured just after it is served; the
			// plugin's second turn (a refresh) finds the verdict log there.
			logBefore := waitFile(t, verdictLog)
			if logBefore == nil {
				_, st := e.Get("/api/security/status")
				t.Fatalf("no verdict measured into %s: status %s\n%s", verdictLog, st, p.Stderr())
			}
			for _, f := range []string{auditKey, auditKey + ".seed"} {
				if _, err := os.Stat(f); err != nil {
					t.Fatalf("the daemon made no %s: %v\n%s", f, err, p.Stderr())
				}
			}
			keyBefore, err := os.ReadFile(signingKey)
			if err != nil {
				t.Fatal(err)
			}
			code, body, err := e.Do(http.MethodPost, "/api/v1/refresh", e.Token)
			if err != nil || code != http.StatusOK {
				t.Fatalf("refresh: %d %v: %s", code, err, body)
			}
			var b map[string]any
			if err := json.Unmarshal(body, &b); err != nil {
				t.Fatalf("refresh: %v: %s", err, body)
			}
			if inner, ok := b["bundle"].(map[string]any); ok {
				b = inner
			}
			checks, _ := b["checks"].(map[string]any)
			vendor, _ := checks["vendor"].(map[string]any)
			ms, _ := vendor["measurements"].(map[string]any)
			tries, _ := ms["attempts"].(map[string]any)
			if len(tries) != want {
				t.Fatalf("vendor: %s, want its %d attempts", mustJSON(t, vendor), want)
			}
			for what, outcome := range tries {
				o, _ := outcome.(string)
				// Files: Landlock (EACCES). The TPM socket: seccomp
				// (EPERM), before any Landlock check.
				deny := "permission denied"
				if strings.HasPrefix(what, "connect ") || strings.HasPrefix(what, "extend_pcr ") {
					deny = "operation not permitted"
				}
				if o == "ok" || !strings.Contains(o, deny) || strings.Contains(o, "reached") || strings.Contains(o, "connected") {
					t.Errorf("%s: %v, want %s", what, outcome, deny)
				}
			}
			// The verdict PCR holds the daemon's extends only: the verdict
			// log the evidence carries replays to its quoted value.
			_, akBody := e.Get("/api/v1/ak")
			var ak struct {
				PEM string `json:"pem"`
			}
			if err := json.Unmarshal(akBody, &ak); err != nil || ak.PEM == "" {
				t.Fatalf("ak: %v: %s", err, akBody)
			}
			nonce := strings.Repeat("a5", 32)
			code, ev := e.Get("/api/v1/evidence?nonce=" + nonce)
			if code != http.StatusOK {
				t.Fatalf("evidence: %d %s", code, ev)
			}
			akFile, evFile := filepath.Join(e.Dir, "ak.pem"), filepath.Join(e.Dir, "evidence.json")
			for f, b := range map[string][]byte{akFile: []byte(ak.PEM), evFile: ev} {
				if err := os.WriteFile(f, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			rc, out, errOut := e.RunAttestctl(nil, "verify-evidence", "--ak", akFile, "--nonce", nonce, "--pubkey", signingKey+".pub", "--allow-degraded", evFile)
			if rc != 0 || !strings.Contains(out, "replay PCR 13") {
				t.Errorf("verify-evidence: exit %d\n%s%s", rc, out, errOut)
			}
			if k, err := os.ReadFile(signingKey); err != nil || string(k) != string(keyBefore) {
				t.Errorf("the signing key changed or went: %v", err)
			}
			if l, err := os.ReadFile(verdictLog); err != nil || !strings.HasPrefix(string(l), string(logBefore)) {
				t.Errorf("the verdict log lost its first record: %q, %v", l, err)
			}
			for _, f := range []string{filepath.Join(idDir, "planted"), filepath.Join(e.RunDir, "verdict.log.planted")} {
				if _, err := os.Lstat(f); err == nil {
					t.Errorf("%s was planted", f)
				}
			}
		})
	}
}

// waitFile waits up to 30 s for path to exist and hold something, and
// returns it (nil when it never did).
func waitFile(t *testing.T, path string) []byte {
	t.Helper()
	for i := 0; i < 300; i++ {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return b
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
