package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/daemon"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/filter"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// daemonEnv carries a daemonSpec (JSON) to a re-executed test binary that
// restricts itself as the daemon does and then runs the daemon in it.
const daemonEnv = "DEPLOY_TEST_SANDBOXED_DAEMON"

type daemonSpec struct {
	Paths   sandbox.DaemonPaths `json:"paths"`
	Plugins []sandbox.Rules     `json:"plugins"`
	Args    []string            `json:"args"`
}

// runSandboxedDaemon is the child: ApplyDaemon, then daemon.Main.
func runSandboxedDaemon(raw string) int {
	var spec daemonSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "decode spec: %v\n", err)
		return 99
	}
	_, st, err := filter.ApplyDaemon(spec.Paths, spec.Plugins...)
	fmt.Fprintf(os.Stderr, "sandbox: %s\n", st)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		return 98
	}
	return daemon.Main(spec.Args, os.Stdout, os.Stderr)
}

// builtinRules is what the built-in plugins read and run with pol's paths
// and their defaults: the union the daemon's sandbox must allow, since its
// plugins inherit it. (Once the built-ins implement sdk.Sandboxer the daemon
// gets this from sdk.DeclaredSandbox instead.)
func builtinRules(policyFiles, serviceBinaries []string, manifest string) []sandbox.Rules {
	return []sandbox.Rules{
		{ReadOnly: []string{"/proc/cmdline", "/sys/kernel/security/lockdown", "/proc/sys/kernel/tainted",
			"/sys/module/module/parameters/sig_enforce", "/proc/modules"}}, // kernel
		{ReadOnly: []string{"/sys/firmware/efi"}}, // secureboot
		{Devices: []string{"/dev/tpmrm0"}},        // tpm
		{ReadOnly: []string{"/run/ostree-booted", "/sysroot", "/proc/cmdline"}, Exec: []string{"/usr/bin/rpm-ostree"}}, // ostree
		{ReadOnly: serviceBinaries},                                         // binaries
		{ReadOnly: append(append([]string(nil), policyFiles...), manifest)}, // policies
	}
}

// TestFullAttestationUnderSandbox runs the real daemon (--once) with the
// six built-in plugins, as real subprocesses, inside the daemon's Landlock
// rule set and seccomp profile (the same list as the unit's
// SystemCallFilter=): the attestation still reaches "attested". Then a
// policy file outside the rule set is refused with EACCES and shows up in
// the bundle as a finding, while the rest of the attestation still works.
func TestFullAttestationUnderSandbox(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	pluginDir := filepath.Join(root, "plugins")
	run := filepath.Join(root, "run")
	logs := filepath.Join(root, "logs")
	// The service binary and the policy files in folders of their own: the
	// binaries and policies plugins are granted their folders, and the
	// daemon refuses a grant over its keys.
	binDir, etc := filepath.Join(root, "bin"), filepath.Join(root, "etc")
	for _, d := range []string{pluginDir, run, logs, binDir, etc} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range builtins {
		testbin.Plugin(t, pluginDir, p)
	}
	svc := testbin.Install(t, testbin.Build(t, "./cmd/attestctl", "attestctl"), binDir, "attestctl")
	key, token := filepath.Join(run, "attestation-hmac-key"), filepath.Join(run, "attestor-api-token")
	writeSecret(t, key, strings.Repeat("ab", 32))
	writeSecret(t, token, strings.Repeat("cd", 32))
	// The signing key in a folder of its own, as the unit's identity state
	// folder: no plugin is granted it.
	idDir := filepath.Join(root, "identity")
	if err := os.Mkdir(idDir, 0o700); err != nil {
		t.Fatal(err)
	}
	signingKey := filepath.Join(idDir, "signing.key")
	signer, err := identity.WriteNew(identity.KeyEd25519, signingKey, signingKey+".pub")
	if err != nil {
		t.Fatal(err)
	}
	pf1, pf2 := filepath.Join(etc, "policy.yaml"), filepath.Join(etc, "agent.yaml")
	manifest := filepath.Join(etc, "registry-manifest.json")
	for p, data := range map[string]string{pf1: "rules: []\n", pf2: "agents: []\n", manifest: "{\"models\":[]}\n"} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := "/etc/hostname" // exists, and outside every rule below
	if _, err := os.Stat(outside); err != nil {
		outside = "/etc/passwd"
	}

	for _, tc := range []struct {
		name        string
		policyFiles []string
		wantState   string
		wantDenied  bool
	}{
		{"attested", []string{pf1, pf2}, "attested", false},
		{"denied-file", []string{pf1, pf2, outside}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy := filepath.Join(root, tc.name+".yaml")
			var pf strings.Builder
			for _, f := range tc.policyFiles {
				fmt.Fprintf(&pf, "  - %q\n", f)
			}
			yaml := fmt.Sprintf(`require_tpm: false
require_secure_boot: false
service_binaries:
  attestctl: %q
policy_files:
%shmac_key_path: %q
signing_key_path: %q
api_token_path: %q
audit_log_path: %q
listen: 127.0.0.1:8505
plugin_dir: %q
plugin_timeout: 20s
attestation_timeout: 60s
plugins:
  policies:
    config:
      registry_manifest_path: %q
  kernel:
    config:
      min_lockdown: none
severity_overrides:
  kernel.tainted: info
`, svc, pf.String(), key, signingKey, token, filepath.Join(logs, "audit.jsonl"), pluginDir, manifest)
			if err := os.WriteFile(policy, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			// The sandbox allows the first two policy files only.
			spec := daemonSpec{
				Paths: sandbox.DaemonPaths{
					PolicyFiles: []string{policy},
					PluginDir:   pluginDir,
					Secrets:     []string{key, token, idDir},
					AuditLogDir: logs,
					RuntimeDir:  run,
					// Where the plugin host makes its private folder.
					SocketDir: os.TempDir(),
					// This test binary runs the daemon, and so is the
					// plugin host's launcher (/proc/self/exe).
					Self: self(t),
				},
				Plugins: builtinRules([]string{pf1, pf2}, []string{svc}, manifest),
				Args:    []string{"--config", policy, "--once", "--log-json"},
			}
			bundle, stderr, code := sandboxedDaemon(t, spec)
			if !strings.Contains(stderr, "seccomp daemon profile installed") {
				t.Fatalf("the daemon ran without its seccomp filter:\n%s", stderr)
			}
			var b struct {
				State  string `json:"state"`
				Checks map[string]struct {
					Findings []struct {
						Code, Message, Subject string
					} `json:"findings"`
				} `json:"checks"`
				PolicyDigest string `json:"policy_digest"`
				KernelCmd    string `json:"kernel_cmdline"`
				BundleHMAC   string `json:"bundle_hmac"`
				Signature    *struct {
					Alg   string `json:"alg"`
					KeyID string `json:"key_id"`
				} `json:"bundle_signature"`
			}
			if err := json.Unmarshal([]byte(bundle), &b); err != nil {
				t.Fatalf("exit %d, bundle %q: %v\nstderr:\n%s", code, bundle, err, stderr)
			}
			var findings []string
			for name, c := range b.Checks {
				for _, f := range c.Findings {
					findings = append(findings, fmt.Sprintf("%s: %s %s (%s)", name, f.Code, f.Subject, f.Message))
				}
			}
			t.Logf("exit %d, state %s, findings:\n%s", code, b.State, strings.Join(findings, "\n"))
			if len(b.Checks) != len(builtins) {
				t.Errorf("%d checks in the bundle, want %d", len(b.Checks), len(builtins))
			}
			if b.BundleHMAC == "" || b.KernelCmd == "" {
				t.Errorf("bundle unsigned or without the kernel command line: hmac %q cmdline %q", b.BundleHMAC, b.KernelCmd)
			}
			if b.Signature == nil || b.Signature.Alg != identity.AlgEd25519 || b.Signature.KeyID != signer.KeyID() {
				t.Errorf("bundle_signature %+v, want Ed25519 by %s", b.Signature, signer.KeyID())
			}
			if tc.wantState != "" && b.State != tc.wantState {
				t.Errorf("state %s, want %s\nstderr:\n%s", b.State, tc.wantState, stderr)
			}
			denied := false
			for _, f := range findings {
				if strings.Contains(f, outside) && strings.Contains(f, "permission denied") {
					denied = true
				}
				if !tc.wantDenied && strings.Contains(f, "permission denied") {
					t.Errorf("denied inside the rule set: %s", f)
				}
			}
			if tc.wantDenied {
				if sandbox.ABI() == 0 {
					t.Skip("this kernel has no Landlock: the denial cannot be shown")
				}
				if !denied {
					t.Errorf("no finding shows %s refused (permission denied)", outside)
				}
			}
		})
	}
}

func writeSecret(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sandboxedDaemon re-executes the test binary as a sandboxed daemon and
// returns its stdout (the bundle), stderr and exit code.
func sandboxedDaemon(t *testing.T, spec daemonSpec) (string, string, int) {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+string(raw))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sandboxed daemon: %v\n%s", err, stderr.String())
	}
	if code > daemon.ExitFailed {
		t.Fatalf("sandboxed daemon could not run (exit %d):\n%s", code, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

// self is this test binary's path, symlinks resolved.
func self(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}
