package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/secure-ai/runtime-attestor/plugins/binaries"
	"github.com/secure-ai/runtime-attestor/plugins/kernel"
	"github.com/secure-ai/runtime-attestor/plugins/ostree"
	"github.com/secure-ai/runtime-attestor/plugins/policies"
	"github.com/secure-ai/runtime-attestor/plugins/secureboot"
	"github.com/secure-ai/runtime-attestor/plugins/tpm"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sandbox"
)

// builtins construct the built-in checks as libraries, so the daemon can
// ask each what it will touch under the policy's configuration.
var builtins = map[string]func() sdk.Check{
	"binaries":   binaries.New,
	"kernel":     kernel.New,
	"ostree":     ostree.New,
	"policies":   policies.New,
	"secureboot": secureboot.New,
	"tpm":        tpm.New,
}

// pluginRules returns the union of what the enabled plugins need: each
// built-in's declared sandbox under its configuration, and each plugin's
// plugins.<name>.sandbox from the policy.
func pluginRules(ctx context.Context, pol *policy.Policy) ([]sandbox.Rules, error) {
	var out []sandbox.Rules
	for _, name := range policy.BuiltinPlugins {
		if !pol.PluginEnabled(name) {
			continue
		}
		cfg, err := pol.PluginConfigJSON(name)
		if err != nil {
			return nil, err
		}
		sb, ok, err := sdk.DeclaredSandbox(ctx, builtins[name](), cfg)
		if err != nil {
			return nil, fmt.Errorf("plugins.%s.config: %w", name, err)
		}
		if ok {
			out = append(out, sb)
		}
	}
	for name, pp := range pol.Plugins {
		if pol.PluginEnabled(name) {
			out = append(out, pp.Sandbox)
		}
	}
	out = append(out, identityRules(pol))
	return out, nil
}

// daemonPaths is what the daemon itself touches under pol. Folders, not
// files, for what an operator replaces by renaming (the policy, the key,
// the token): a Landlock rule on a file follows the file it named, not a
// new one renamed over it.
func daemonPaths(policyPath string, pol *policy.Policy, notifySocket string) sandbox.DaemonPaths {
	d := sandbox.DaemonPaths{
		PolicyFiles:  []string{filepath.Dir(policyPath)},
		PluginDir:    pol.PluginDir,
		Secrets:      []string{filepath.Dir(pol.HMACKeyPath)},
		AuditLogDir:  filepath.Dir(pol.AuditLogPath),
		RuntimeDir:   os.Getenv("RUNTIME_DIRECTORY"),
		SocketDir:    socketDir(),
		NotifySocket: notifySocket,
	}
	if pol.APITokenPath != "" {
		d.Secrets = append(d.Secrets, filepath.Dir(pol.APITokenPath))
	}
	if pol.SigningKeyPath != "" {
		d.Secrets = append(d.Secrets, filepath.Dir(pol.SigningKeyPath))
	}
	if _, port, err := net.SplitHostPort(pol.Listen); err == nil {
		if n, err := strconv.ParseUint(port, 10, 16); err == nil {
			d.ListenPort = uint16(n)
		}
	}
	return d
}

// socketDir is where the plugin host makes the plugins' socket folders.
func socketDir() string { return os.TempDir() }

// restrict confines the daemon (and so every plugin it starts) to what it
// and its plugins need under pol: Landlock best effort, seccomp allowlist.
// It returns the rules applied, for checking later reloads against them.
func (d *daemon) restrict(pol *policy.Policy, notifySocket string) (sandbox.Rules, error) {
	if err := prepareVerdictLog(pol); err != nil {
		d.logger.Warn("verdict log folder not made: verdicts will not be measured", "error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pol.AttestationTimeout)
	defer cancel()
	rules, err := pluginRules(ctx, pol)
	if err != nil {
		return sandbox.Rules{}, err
	}
	applied, st, err := sandbox.ApplyDaemon(daemonPaths(d.path, pol, notifySocket), rules...)
	if err != nil {
		return sandbox.Rules{}, fmt.Errorf("sandbox: %w", err)
	}
	d.logger.Info("sandboxed", "landlock_abi", st.ABI, "landlock", st.Landlock, "seccomp", st.Seccomp,
		"profile", st.Profile, "reason", st.Reason, "skipped", st.Skipped)
	return applied, nil
}

// uncovered returns the first path the new policy needs that the applied
// rules do not grant, or "" when the running sandbox covers the policy.
func uncovered(applied sandbox.Rules, policyPath string, pol *policy.Policy, notifySocket string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pol.AttestationTimeout)
	defer cancel()
	rules, err := pluginRules(ctx, pol)
	if err != nil {
		return "", err
	}
	want := sandbox.DaemonRules(daemonPaths(policyPath, pol, notifySocket), rules...)
	for _, l := range []struct {
		paths []string
		a     sandbox.Access
	}{{want.ReadOnly, sandbox.Read}, {want.Devices, sandbox.Read}, {want.ReadWrite, sandbox.Write}, {want.Exec, sandbox.Execute}} {
		for _, p := range l.paths {
			if !applied.Covers(p, l.a) {
				return fmt.Sprintf("%s (%s)", p, l.a), nil
			}
		}
	}
	return "", nil
}
