package daemon_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// TestUntrustedFilesRefusedAtStart: each file the daemon trusts, made
// replaceable by someone else, stops it at start with a message naming the
// path and the fix, having written nothing.
func TestUntrustedFilesRefusedAtStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown files to another user")
	}
	t.Parallel()
	for i, tc := range []struct {
		name  string
		spoil func(env *daemontest.Env) string // returns the path to be named
		fix   string
	}{
		{"policy owned by another user", func(env *daemontest.Env) string { return chown(t, env.PolicyPath) }, "chown root"},
		{"policy world-writable", func(env *daemontest.Env) string { return chmod(t, env.PolicyPath, 0o666) }, "chmod go-w"},
		{"policy's folder world-writable", func(env *daemontest.Env) string { return chmod(t, filepath.Dir(env.PolicyPath), 0o777) }, "chmod go-w"},
		{"key's folder group-writable", func(env *daemontest.Env) string { return chmod(t, filepath.Dir(env.KeyPath), 0o770) }, "chmod go-w"},
		{"key owned by another user", func(env *daemontest.Env) string { return chown(t, env.KeyPath) }, "chown root"},
		{"token owned by another user", func(env *daemontest.Env) string { return chown(t, env.TokenPath) }, "chown root"},
		{"plugin folder world-writable", func(env *daemontest.Env) string { return chmod(t, env.PluginDir, 0o777) }, "chmod go-w"},
		{"plugin folder owned by another user", func(env *daemontest.Env) string { return chown(t, env.PluginDir) }, "chown root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := daemontest.New(t, daemontest.Options{Plugins: []string{}})
			named := tc.spoil(env)
			p := env.StartNoWait()
			if code := p.Wait(60 * time.Second); code != 3 {
				t.Fatalf("Test %d: exit %d, want 3; log:\n%s", i, code, p.Stderr())
			}
			if log := p.Stderr(); !(strings.Contains(log, named+" ") || strings.Contains(log, named+":")) || !strings.Contains(log, tc.fix) {
				t.Errorf("Test %d: the refusal does not name %s and %q:\n%s", i, named, tc.fix, log)
			}
			if recs := env.AuditRecords(); len(recs) != 0 {
				t.Errorf("Test %d: %d audit records written", i, len(recs))
			}
		})
	}
}

// TestFileTrustChangeWhileRunning: a trusted file's folder made writable
// by others while the daemon runs is core.file_trust (high) at the next
// attestation, and clears when fixed.
func TestFileTrustChangeWhileRunning(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	p := env.Start()
	dir := filepath.Dir(env.KeyPath)
	chmod(t, dir, 0o777)
	finding := func() string {
		code, body, err := env.Do(http.MethodPost, "/api/v1/refresh", env.Token)
		if err != nil || code != 200 {
			t.Fatalf("refresh: %d %v %s", code, err, body)
		}
		var r struct {
			State  string
			Bundle struct {
				Failures []struct{ Code, Severity, Message string }
			}
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		for _, f := range r.Bundle.Failures {
			if f.Code == "core.file_trust" {
				return r.State + " " + f.Severity + " " + f.Message
			}
		}
		return r.State
	}
	if got := finding(); !strings.HasPrefix(got, "degraded high") || !strings.Contains(got, dir) {
		t.Fatalf("after chmod 0777 %s: %q, want degraded with core.file_trust (high) naming it; log:\n%s", dir, got, p.Stderr())
	}
	chmod(t, dir, 0o700)
	if got := finding(); got != "attested" {
		t.Fatalf("after the fix: %q, want attested", got)
	}
	p.Stop()
}

func chown(t *testing.T, p string) string {
	t.Helper()
	if err := os.Lchown(p, 12345, -1); err != nil {
		t.Fatal(err)
	}
	return p
}

func chmod(t *testing.T, p string, m os.FileMode) string {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
	return p
}
