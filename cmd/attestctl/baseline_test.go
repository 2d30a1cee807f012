package main

import (
	"encoding/json"
	"github.com/secure-ai/runtime-attestor/builtin"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/policy"
)

// TestBaselineAttestThenTamper drives the flow an operator follows: on a
// good machine, attestctl baseline writes a production policy; the real
// daemon with it is attested; a changed service binary and a changed
// plugin each raise their finding.
func TestBaselineAttestThenTamper(t *testing.T) {
	env := daemontest.New(t, daemontest.Options{})
	svcDir := filepath.Join(env.Dir, "svc")
	if err := os.MkdirAll(svcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(svcDir, "agent")
	if err := os.WriteFile(agent, []byte("agent v1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env.EditPolicy(func(doc map[string]any) {
		daemontest.SetPolicyKey(doc, map[string]any{"agent": agent}, "service_binaries")
	})

	out := filepath.Join(env.Dir, "production.yaml")
	code, _, stderr := env.RunAttestctl(nil, "baseline", "--policy", env.PolicyPath, "--daemon", env.Daemon, "-o", out)
	if code != exitOK {
		t.Fatalf("baseline exit %d:\n%s", code, stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse(raw)
	if err != nil {
		t.Fatalf("the baseline does not load: %v\n%s", err, raw)
	}
	if pol.RunUnlistedPlugins {
		t.Error("run_unlisted_plugins is true")
	}
	for _, name := range builtin.Names() {
		want, err := hashFile(filepath.Join(env.PluginDir, pluginPrefix+name))
		if err != nil {
			t.Fatal(err)
		}
		if got := pol.Plugins[name].SHA256; got != want {
			t.Errorf("plugins.%s.sha256 = %q, want %q", name, got, want)
		}
	}
	wantAgent, _ := hashFile(agent)
	if got := pol.ServiceBinaries["agent"]; got.SHA256 != wantAgent || got.Path != agent || len(pol.ServiceBinaries) != 1 {
		t.Errorf("service_binaries = %+v, want only agent pinned to %s", pol.ServiceBinaries, wantAgent)
	}
	for _, want := range []string{"# --- Hardware roots", "# --- Plugins", "# --- Signing identity", "boot_reference is the boot reference", "expected_deployments"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the baseline does not explain %q:\n%s", want, raw)
		}
	}

	t.Logf("baseline:\n%s", raw)
	if err := os.WriteFile(env.PolicyPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p := env.Start()
	if st := p.WaitState(60*time.Second, "attested", "degraded", "failed"); st != "attested" {
		t.Fatalf("with its own baseline the machine is %s:\n%s", st, env.JSON("/api/v1/attest"))
	}

	// A changed service binary.
	if err := os.WriteFile(agent, []byte("agent v1, patched\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if b := refreshBundle(t, env); !hasFinding(b, "binaries.digest_mismatch", agent) {
		t.Errorf("a changed service binary: findings %+v", b.Failures)
	}
	// A replaced plugin: another executable under the kernel plugin's name.
	src, err := os.ReadFile(filepath.Join(env.PluginDir, pluginPrefix+"policies"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(env.Dir, "swap")
	if err := os.WriteFile(tmp, src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(env.PluginDir, pluginPrefix+"kernel")); err != nil {
		t.Fatal(err)
	}
	if b := refreshBundle(t, env); !hasFinding(b, "core.plugin_untrusted", "") {
		t.Errorf("a replaced plugin: findings %+v", b.Failures)
	}
}

// TestBaselineRefusesABadMachine: a service the policy lists but the
// machine lacks is named, and nothing is written.
func TestBaselineRefusesABadMachine(t *testing.T) {
	env := daemontest.New(t, daemontest.Options{})
	gone := filepath.Join(env.Dir, "svc", "no-such-service") // not beside the run folder: the binaries plugin is granted its folder
	env.EditPolicy(func(doc map[string]any) {
		daemontest.SetPolicyKey(doc, map[string]any{"ghost": gone}, "service_binaries")
	})
	out := filepath.Join(env.Dir, "production.yaml")
	code, _, stderr := env.RunAttestctl(nil, "baseline", "--policy", env.PolicyPath, "--daemon", env.Daemon, "-o", out)
	if code != exitFail || !strings.Contains(stderr, "ghost ("+gone+")") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a policy was written for a machine that is not good: %v", err)
	}
}

func refreshBundle(t *testing.T, env *daemontest.Env) *bundle.Bundle {
	t.Helper()
	status, body, err := env.Do(http.MethodPost, "/api/v1/refresh", env.Token)
	if err != nil || status != http.StatusOK {
		t.Fatalf("refresh: %d %v %s", status, err, body)
	}
	var att struct {
		Bundle json.RawMessage `json:"bundle"`
	}
	if err := json.Unmarshal(body, &att); err != nil {
		t.Fatalf("refresh answer: %v: %s", err, body)
	}
	b := new(bundle.Bundle)
	if err := json.Unmarshal(att.Bundle, b); err != nil {
		t.Fatalf("bundle: %v: %s", err, att.Bundle)
	}
	return b
}

func hasFinding(b *bundle.Bundle, code, subject string) bool {
	for _, f := range b.Failures {
		if f.Code == code && (subject == "" || f.Subject == subject) {
			return true
		}
	}
	return false
}
