package daemon_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/secure-ai/runtime-attestor/builtin"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

func TestMain(m *testing.M) {
	if os.Getenv(execAsSystemd) != "" {
		execWithListenPID() // never returns
	}
	os.Exit(testbin.Main(m))
}

type attestResponse struct {
	State  string          `json:"state"`
	Bundle json.RawMessage `json:"bundle"`
}

func fetchBundle(t *testing.T, env *daemontest.Env) (attestResponse, map[string]any) {
	t.Helper()
	code, body := env.Get("/api/v1/attest")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/attest = %d: %s", code, body)
	}
	var r attestResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	var b map[string]any
	if err := json.Unmarshal(r.Bundle, &b); err != nil {
		t.Fatalf("bundle: %v: %s", err, r.Bundle)
	}
	return r, b
}

func codes(b map[string]any) []string {
	var out []string
	for _, c := range b["checks"].(map[string]any) {
		for _, f := range c.(map[string]any)["findings"].([]any) {
			out = append(out, f.(map[string]any)["code"].(string))
		}
	}
	return out
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDevelopmentPolicyEndToEnd runs the real daemon with the six real
// plugins under the development policy that `make run` uses, and walks the
// spec: health, verify, attest (signed bundle verifying with the key, in Go
// and in Python), refresh with and without the token, the status counters,
// the audit log, a refused and an accepted SIGHUP, and a clean SIGTERM with
// no plugin left behind.
func TestDevelopmentPolicyEndToEnd(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	p := env.Start()

	if s := env.State(); s != "attested" {
		t.Fatalf("state = %s, want attested on a development machine; log:\n%s", s, p.Stderr())
	}
	health := env.JSON("/health")
	if health["status"] != "ok" || health["state"] != "attested" {
		t.Fatalf("/health = %v", health)
	}
	if code, body := env.Get("/api/v1/verify"); code != 200 || !bytes.Contains(body, []byte(`"verified":true`)) {
		t.Fatalf("/api/v1/verify = %d %s", code, body)
	}

	resp, b := fetchBundle(t, env)
	key, err := os.ReadFile(env.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Verify(resp.Bundle, key); err != nil {
		t.Fatalf("bundle does not verify: %v", err)
	}
	for _, field := range []string{"timestamp", "state", "boot_measurements", "deployment_digest", "service_digests",
		"policy_digest", "registry_manifest_hash", "kernel_cmdline", "kernel_lockdown", "tpm_available",
		"tpm_quote_verified", "failures", "bundle_hmac", "checks"} {
		if _, ok := b[field]; !ok {
			t.Errorf("bundle has no %s", field)
		}
	}
	checks := b["checks"].(map[string]any)
	for _, name := range builtin.Names() {
		if _, ok := checks[name]; !ok {
			t.Errorf("bundle checks has no %s", name)
		}
	}
	if b["tpm_available"] != false || b["kernel_lockdown"] == nil || b["policy_digest"] == nil {
		t.Errorf("bundle fields not filled by their plugins: tpm_available=%v kernel_lockdown=%v policy_digest=%v",
			b["tpm_available"], b["kernel_lockdown"], b["policy_digest"])
	}
	digests, _ := b["service_digests"].(map[string]any)
	if len(digests) != 2 {
		t.Errorf("service_digests = %v, want the two development binaries", digests)
	}
	if py, err := exec.LookPath("python3"); err == nil {
		script := `import hashlib, hmac, json, sys
b = json.load(open(sys.argv[1]))
sig = b.pop("bundle_hmac")
msg = json.dumps(b, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
ok = hmac.compare_digest(hmac.new(open(sys.argv[2], "rb").read(), msg, hashlib.sha256).hexdigest(), sig)
sys.exit(0 if ok else 1)`
		bf := filepath.Join(env.Dir, "bundle.json")
		if err := os.WriteFile(bf, resp.Bundle, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(py, "-c", script, bf, env.KeyPath).CombinedOutput(); err != nil {
			t.Errorf("the README's Python verifier rejects the bundle: %v %s", err, out)
		}
		tampered := bytes.Replace(resp.Bundle, []byte(`"state":"attested"`), []byte(`"state":"degraded"`), 1)
		if err := os.WriteFile(bf, tampered, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command(py, "-c", script, bf, env.KeyPath).Run(); err == nil {
			t.Error("the Python verifier accepts a tampered bundle")
		}
	}

	// Refresh: refused without or with a wrong token, runs with the right one.
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {env.Token + "x", 401}, {env.Token, 200}} {
		code, body, err := env.Do(http.MethodPost, "/api/v1/refresh", tc.token)
		if err != nil || code != tc.want {
			t.Fatalf("refresh with %q = %d %s (%v), want %d", tc.token, code, body, err, tc.want)
		}
	}
	status := env.JSON("/api/security/status")
	if status["attestation_state"] != "attested" || status["attest_count"].(float64) < 2 || status["service_count"].(float64) != 2 {
		t.Fatalf("/api/security/status = %v", status)
	}

	// SIGHUP with a bad policy: refused, the old policy stays, a finding says so.
	good := env.DevelopmentPolicy()
	env.WritePolicy(good + "\nbogus_key: 1\n")
	p.Signal(syscall.SIGHUP)
	p.WaitState(30*time.Second, "degraded")
	if _, b := fetchBundle(t, env); !has(codes(b), "core.policy_reload") {
		failures, _ := json.Marshal(b["failures"])
		if !bytes.Contains(failures, []byte("core.policy_reload")) {
			t.Fatalf("degraded after a bad reload but no core.policy_reload finding: %s", failures)
		}
	}
	// A good policy again: degraded -> attested.
	env.WritePolicy(good)
	p.Signal(syscall.SIGHUP)
	p.WaitState(30*time.Second, "attested")

	// Plugins run only during their turn (resident_plugins: false).
	if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 5*time.Second); len(left) > 0 {
		t.Errorf("plugin processes running between attestations:\n%s", daemontest.Describe(left))
	}
	p.Stop()
	if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 5*time.Second); len(left) > 0 {
		t.Fatalf("plugins survive the daemon:\n%s", daemontest.Describe(left))
	}

	rep, err := audit.VerifyFile(env.AuditPath)
	if err != nil {
		t.Fatalf("audit log chain: %v", err)
	}
	raw, _ := os.ReadFile(env.AuditPath)
	for _, typ := range []string{`"start"`, `"attestation"`, `"refresh"`, `"policy_reload"`, `"state_change"`, `"stop"`} {
		if !bytes.Contains(raw, []byte(`"type":`+typ)) {
			t.Errorf("audit log (%d records) has no %s record", rep.Records, typ)
		}
	}
	if bytes.Contains(raw, []byte(env.Token)) {
		t.Error("the audit log contains the API token")
	}
}

// TestOnceExitCodes runs `runtime-attestor --once` under policies that end
// attested, degraded and failed, and a bad one.
func TestOnceExitCodes(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	dev := env.DevelopmentPolicy()
	missing := strings.Replace(dev, "service_binaries:\n", "service_binaries:\n  ghost: /nonexistent/ghost-service\n", 1)
	for i, tc := range []struct {
		name     string
		policy   string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"attested", dev, 0, `"state":"attested"`, ""},
		{"missing binary degrades", missing, 1, `binaries.missing`, ""},
		{"required TPM absent fails", strings.Replace(dev, "require_tpm: false", "require_tpm: true", 1), 2, `tpm.unavailable`, ""},
		{"required Secure Boot off fails", strings.Replace(dev, "require_secure_boot: false", "require_secure_boot: true", 1), 2, `"state":"failed"`, ""},
		{"bad policy", dev + "\nrefresh_interval: -5m\n", 3, "", "refresh_interval"},
		{"plugin refuses its config", strings.Replace(dev, "min_lockdown: none", "min_lockdown: paranoid", 1), 3, "", "plugins.kernel.config"},
	} {
		path := filepath.Join(env.Dir, "once.yaml")
		if err := os.WriteFile(path, []byte(tc.policy), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(env.Daemon, "--config", path, "--once")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.wantCode || !strings.Contains(stdout.String(), tc.wantOut) || !strings.Contains(stderr.String(), tc.wantErr) {
			t.Errorf("Test %d (%s): exit %d, want %d; stdout %q, want %q; stderr:\n%s", i, tc.name, code, tc.wantCode,
				truncate(stdout.String()), tc.wantOut, truncate(stderr.String()))
		}
		if tc.wantCode < 3 {
			key, _ := os.ReadFile(env.KeyPath)
			if err := bundle.Verify(bytes.TrimSpace(stdout.Bytes()), key); err != nil {
				t.Errorf("Test %d (%s): printed bundle does not verify: %v", i, tc.name, err)
			}
		}
	}
	if _, err := os.Stat(env.AuditPath); !os.IsNotExist(err) {
		t.Errorf("--once wrote the audit log (stat: %v)", err)
	}
	if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 5*time.Second); len(left) > 0 {
		t.Fatalf("plugins survive --once:\n%s", daemontest.Describe(left))
	}
}

// TestBadPolicyWritesNothing: a daemon refused at start writes no audit log
// and names the key.
func TestBadPolicyWritesNothing(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{Plugins: []string{}})
	env.WritePolicy(env.DevelopmentPolicy() + "\nthresholds:\n  degraded: 50\n  failed: 10\n")
	p := env.StartNoWait()
	if code := p.Wait(30 * time.Second); code != 3 {
		t.Fatalf("exit %d, want 3; log:\n%s", code, p.Stderr())
	}
	if !strings.Contains(p.Stderr(), "thresholds") {
		t.Errorf("error does not name the key: %s", p.Stderr())
	}
	if _, err := os.Stat(env.AuditPath); !os.IsNotExist(err) {
		t.Errorf("a refused daemon wrote the audit log (stat: %v)", err)
	}
}

func truncate(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}
