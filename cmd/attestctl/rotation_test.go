package main

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// TestRotationWithoutRestart follows docs/deployment.md's procedures on a
// running daemon: a new HMAC key signs from the next attestation on; a new
// API token counts after SIGHUP; a pinned plugin is upgraded with the
// plugin disabled for the swap, never failed (which would latch).
func TestRotationWithoutRestart(t *testing.T) {
	env := daemontest.New(t, daemontest.Options{})
	kernel := filepath.Join(env.PluginDir, pluginPrefix+"kernel")
	oldSum, err := hashFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	// EditPolicy starts from the development policy each time.
	setPolicy := func(pin string, enabled bool) {
		env.EditPolicy(func(doc map[string]any) {
			daemontest.SetPolicyKey(doc, pin, "plugins", "kernel", "sha256")
			daemontest.SetPolicyKey(doc, enabled, "plugins", "kernel", "enabled")
		})
	}
	setPolicy(oldSum, true)
	p := env.Start()
	if st := env.State(); st != "attested" {
		t.Fatalf("state %s before the rotations", st)
	}
	verify := func(key string) int {
		t.Helper()
		_, body := env.Get("/api/v1/attest")
		f := filepath.Join(t.TempDir(), "attest.json")
		if err := os.WriteFile(f, body, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, _ := env.RunAttestctl(nil, "verify-bundle", "--key", key, f)
		return code
	}
	oldKey := filepath.Join(env.Dir, "old.key")
	raw, _ := os.ReadFile(env.KeyPath)
	if err := os.WriteFile(oldKey, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	// The key: replaced atomically, read again by the next attestation.
	tmp := env.KeyPath + ".new"
	if err := os.WriteFile(tmp, []byte("a brand new development key of 32+ bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, env.KeyPath); err != nil {
		t.Fatal(err)
	}
	refreshBundle(t, env)
	if verify(env.KeyPath) != exitOK || verify(oldKey) != exitFail {
		t.Errorf("after the key rotation: new key %d, old key %d; want 0 and 1", verify(env.KeyPath), verify(oldKey))
	}

	// The token: replaced, then SIGHUP.
	oldToken := env.Token
	env.Token = "a-rotated-token-0123456789abcdef"
	if err := os.WriteFile(env.TokenPath, []byte(env.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload(t, env, p)
	if code, _, _ := env.Do(http.MethodPost, "/api/v1/refresh", oldToken); code != http.StatusUnauthorized {
		t.Errorf("the old token after SIGHUP: %d, want 401", code)
	}
	refreshBundle(t, env) // the new token works

	// The plugin: disable it for the swap, swap, re-pin and enable it.
	setPolicy(oldSum, false)
	reload(t, env, p)
	bin, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(env.Dir, "attestor-check-kernel.new")
	if err := os.WriteFile(next, append(bin, "\x00release 2"...), 0o755); err != nil {
		t.Fatal(err)
	}
	newSum, _ := hashFile(next)
	if err := os.Rename(next, kernel); err != nil {
		t.Fatal(err)
	}
	// An attestation in the window: the new binary is not run, and the
	// appliance is not failed (which would latch).
	if b := refreshBundle(t, env); b.State == "failed" || (b.Checks["kernel"].SHA256 != nil && *b.Checks["kernel"].SHA256 == newSum) {
		t.Errorf("in the window: state %s, kernel %+v, findings %+v", b.State, b.Checks["kernel"], b.Failures)
	}
	setPolicy(newSum, true)
	reload(t, env, p)
	if b := refreshBundle(t, env); b.State != "attested" || *b.Checks["kernel"].SHA256 != newSum {
		t.Errorf("after the upgrade: state %s, kernel %v, findings %+v", b.State, b.Checks["kernel"].SHA256, b.Failures)
	}
}

// reload sends SIGHUP and waits for the accepted reload's audit record and
// an attestation after it (the one the reload starts), so that a refresh
// that follows does not join it.
func reload(t *testing.T, env *daemontest.Env, p *daemontest.Proc) {
	t.Helper()
	n := daemontest.CountAudit(env.AuditRecords(), "policy_reload", nil)
	p.Signal(syscall.SIGHUP)
	env.WaitAudit(p, 30*time.Second, "the reload and an attestation after it", func(recs []daemontest.AuditRecord) bool {
		seen := 0
		for i, r := range recs {
			if r.Type == "policy_reload" {
				seen++
				if seen > n && r.Data["accepted"] == true && daemontest.CountAudit(recs[i+1:], "attestation", nil) > 0 {
					return true
				}
			}
		}
		return false
	})
}
