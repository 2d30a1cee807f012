package daemon

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// onceBundle runs the real daemon once (its own sandbox, its launcher, the
// six built-ins) and returns the signed bundle it printed.
func onceBundle(t *testing.T, e *daemontest.Env) map[string]any {
	t.Helper()
	cmd := exec.Command(e.Daemon, "--config", e.PolicyPath, "--once")
	cmd.Env = append(os.Environ(), e.ExtraEnv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) || len(out) == 0 {
		t.Fatalf("runtime-attestor --once: %v\n%s", err, stderr.String())
	}
	var b map[string]any
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatalf("bundle: %v: %s", err, out)
	}
	f := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(f, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command(e.Attestctl, "verify-bundle", f, "--key", e.KeyPath).CombinedOutput(); err != nil {
		t.Fatalf("attestctl verify-bundle: %v\n%s", err, o)
	}
	return b
}

// TestHostilePluginUnderTheDaemon: a third-party plugin dropped into the
// plugin folder is not run until the policy lists it (one info finding
// names it); listed with nothing granted, it tries to read the HMAC key,
// the token and the policy, to append to the audit log, to plant files in
// the run folder, and it claims bundle fields that only built-ins fill.
// Every attempt fails, and the bundle, still signed and verifiable, says
// what it said without the plugin.
func TestHostilePluginUnderTheDaemon(t *testing.T) {
	t.Parallel()
	e := daemontest.New(t, daemontest.Options{})
	e.ExtraEnv = append(e.ExtraEnv, "RUNTIME_DIRECTORY="+e.RunDir)
	testbin.Install(t, testbin.Build(t, "./testplugins/hostile", "attestor-check-hostile"), e.PluginDir, "attestor-check-vendor")
	base := onceBundle(t, e)
	checks, _ := base["checks"].(map[string]any)
	vendor, _ := checks["vendor"].(map[string]any)
	if fs, _ := vendor["findings"].([]any); len(fs) != 1 || !strings.Contains(mustJSON(t, fs), "core.plugin_unlisted") || vendor["measurements"] != nil {
		t.Fatalf("unlisted vendor: %s, want one core.plugin_unlisted finding and no measurements", mustJSON(t, vendor))
	}

	// --once writes no audit record: lay one down to attack.
	if err := os.WriteFile(e.AuditPath, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := mustJSON(t, map[string]any{
		"read":   []string{e.KeyPath, e.TokenPath, e.PolicyPath, e.AuditPath},
		"append": []string{e.AuditPath, e.KeyPath},
		"create": []string{filepath.Join(e.RunDir, "planted"), filepath.Join(e.PluginDir, "attestor-check-planted")},
		"list":   []string{e.RunDir},
	})
	e.WritePolicy(strings.Replace(e.DevelopmentPolicy(), "\nplugins:\n", "\nplugins:\n  vendor:\n    config: "+plan+"\n", 1))
	b := onceBundle(t, e)
	checks, _ = b["checks"].(map[string]any)
	vendor, _ = checks["vendor"].(map[string]any)
	ms, _ := vendor["measurements"].(map[string]any)
	tries, _ := ms["attempts"].(map[string]any)
	if len(tries) != 9 {
		t.Fatalf("vendor: %s, want its 9 attempts", mustJSON(t, vendor))
	}
	for what, outcome := range tries {
		if outcome == "ok" || !strings.Contains(outcome.(string), "permission denied") {
			t.Errorf("%s: %v, want permission denied", what, outcome)
		}
	}
	for _, f := range []string{"tpm_available", "tpm_quote_verified", "kernel_lockdown", "state"} {
		if mustJSON(t, b[f]) != mustJSON(t, base[f]) {
			t.Errorf("%s = %v with the hostile plugin, %v without", f, b[f], base[f])
		}
	}
	if a, _ := os.ReadFile(e.AuditPath); string(a) != "{}\n" {
		t.Errorf("the audit log is now %q", a)
	}
	for _, f := range []string{filepath.Join(e.RunDir, "planted"), filepath.Join(e.PluginDir, "attestor-check-planted")} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s was planted", f)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
