package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// TestLatchedFailureExplained: a daemon that fell to failed says, in
// /api/security/status and `attestctl status`, since when, which finding
// latched it and that a restart clears it; a corrected policy reloaded by
// SIGHUP does not clear it, a restart does.
func TestLatchedFailureExplained(t *testing.T) {
	env := daemontest.New(t, daemontest.Options{})
	agent := filepath.Join(env.Dir, "svc", "agent") // a folder of its own: the binaries plugin is granted it
	if err := os.Mkdir(filepath.Dir(agent), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agent, []byte("agent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	pin := func(sum string) {
		env.EditPolicy(func(doc map[string]any) {
			daemontest.SetPolicyKey(doc, map[string]any{"agent": map[string]any{"path": agent, "sha256": sum}}, "service_binaries")
			daemontest.SetPolicyKey(doc, map[string]any{"binaries.digest_mismatch": "critical"}, "severity_overrides")
		})
	}
	pin(wrong)
	p := env.Start()
	if st := env.State(); st != "failed" {
		t.Fatalf("state %s, want failed", st)
	}
	latched := func() *apitypes.LatchReport {
		t.Helper()
		_, body := env.Get("/api/security/status")
		var st apitypes.StatusResponse
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("status: %v: %s", err, body)
		}
		return st.Latched
	}
	l := latched()
	if l == nil || len(l.Findings) != 1 || l.Findings[0].Code != "binaries.digest_mismatch" || l.Findings[0].Subject != agent ||
		l.Findings[0].Plugin != "binaries" || l.Sequence != 1 || !strings.Contains(l.Clears, "restart") {
		t.Fatalf("latched = %+v", l)
	}
	since, err := time.Parse(time.RFC3339, l.Since)
	if err != nil || time.Since(since) > time.Hour || time.Since(since) < -time.Minute {
		t.Errorf("since %q: %v", l.Since, err)
	}
	code, out, stderr := env.RunAttestctl(nil, "--addr", env.URL(""), "status")
	if code != exitOK {
		t.Fatalf("status exit %d: %s", code, stderr)
	}
	for _, want := range []string{"Failed since:", l.Since + " (", "attestation 1", "Latched by:", "critical binaries.digest_mismatch (binaries, " + agent + ")", "Clears:", "daemon restarts"} {
		if !strings.Contains(out, want) {
			t.Errorf("attestctl status does not say %q:\n%s", want, out)
		}
	}

	// The right pin, reloaded: still failed, same latch.
	sum, _ := hashFile(agent)
	pin(sum)
	p.Signal(syscall.SIGHUP)
	env.WaitAudit(p, 30*time.Second, "an attestation after the reload", func(recs []daemontest.AuditRecord) bool {
		return daemontest.CountAudit(recs, "attestation", nil) >= 2
	})
	if st := env.State(); st != "failed" {
		t.Errorf("after the reload the state is %s: failed must hold until restart", st)
	}
	if l2 := latched(); l2 == nil || l2.Since != l.Since || l2.Sequence != 1 {
		t.Errorf("after the reload latched = %+v, want the first latch %+v", l2, l)
	}

	// A restart clears it.
	p.Stop()
	env.Start()
	if st := env.State(); st != "attested" {
		t.Errorf("after a restart the state is %s", st)
	}
	if l3 := latched(); l3 != nil {
		t.Errorf("after a restart latched = %+v, want null", l3)
	}
}
