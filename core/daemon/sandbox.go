package daemon

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/filter"
	"github.com/secure-ai/runtime-attestor/policy"
)

// exposes returns why grant g would let its plugin read one of the
// daemon's secrets (the HMAC key, the API token, the signing key, the
// audit MAC key and its seed) or write the audit or verdict log or the
// declare and digest caches (declarecache.go), nil when it does not. A built-in's grant counts too: the tpm plugin's state_file
// folder (by default the unit's StateDirectory) must not hold the signing
// key.
func exposes(pol *policy.Policy, g sandbox.Rules) error {
	return newResolver().exposes(pol, g)
}

// exposes is the package's exposes, resolving paths through r.
func (r resolver) exposes(pol *policy.Policy, g sandbox.Rules) error {
	// Landlock follows a granted symbolic link to its target: compare the
	// targets too.
	real := g.Merge()
	for _, l := range []*[]string{&real.ReadOnly, &real.ReadWrite, &real.Exec, &real.Devices} {
		for i, p := range *l {
			(*l)[i] = r.resolve(p)
		}
	}
	for _, c := range ownFiles(pol) {
		if c.path != "" && (g.Covers(filepath.Clean(c.path), c.a) || real.Covers(r.resolve(c.path), c.a)) {
			return fmt.Errorf("its sandbox grants %s access to %s (%s), a file only the daemon may touch: "+
				"move the file to a folder no plugin is granted, or narrow the grant", c.a, c.path, c.key)
		}
	}
	if p := r.writesNear(g, real, pol.PluginDir); p != "" {
		return fmt.Errorf("its sandbox grants write access to %s, in or above plugin_dir (%s): a plugin able to write there "+
			"could change another plugin's executable; narrow the grant", p, pol.PluginDir)
	}
	if _, port, err := net.SplitHostPort(pol.Listen); err == nil && slices.Contains(g.BindTCP, parsePort(port)) {
		return fmt.Errorf("its sandbox grants binding TCP port %s, the port the daemon listens on (listen: %s): "+
			"a plugin bound there could answer in the daemon's place; remove %s from bind_tcp", port, pol.Listen, port)
	}
	return nil
}

// ownFile is a file only the daemon may touch, with the access no grant
// may give to it and the policy key that names it.
type ownFile struct {
	key, path string
	a         sandbox.Access
}

// ownFiles are the daemon's own files under pol ("" paths left in).
func ownFiles(pol *policy.Policy) []ownFile {
	var seed string
	if pol.AuditKeyPath != "" {
		seed = pol.AuditKeyPath + ".seed"
	}
	return []ownFile{
		{"hmac_key_path", pol.HMACKeyPath, sandbox.Read},
		{"api_token_path", pol.APITokenPath, sandbox.Read},
		{"signing_key_path", pol.SigningKeyPath, sandbox.Read},
		{"audit_key_path", pol.AuditKeyPath, sandbox.Read},
		{"audit_key_path's seed", seed, sandbox.Read},
		{"audit_log_path", pol.AuditLogPath, sandbox.Write},
		{"verdict_log_path", pol.VerdictLogPath, sandbox.Write},
		{"the declare cache folder beside signing_key_path", declareCacheDir(pol), sandbox.Write},
		{"the declare cache beside signing_key_path", declareCacheFile(pol), sandbox.Write},
		{"the digest cache beside signing_key_path", digestCacheFile(pol), sandbox.Write},
	}
}

// grantCheck is the plugin host's check at each start of a plugin
// (pluginhost.Options.CheckGrant): exposes again, on the real paths of
// what the plugin's Landlock rules are about to reach (each path opened
// once, and its rule made from that descriptor). A grant is checked when
// the policy is loaded, but a link in a folder someone else may write
// could lead to the daemon's files by a later start. The daemon's own
// files (and plugin_dir) are resolved once, here: they are in folders only
// the daemon's user changes.
func grantCheck(pol *policy.Policy) func(string, sandbox.Rules) error {
	own := newResolver()
	for _, f := range ownFiles(pol) {
		if f.path != "" {
			own.resolve(f.path)
		}
	}
	if pol.PluginDir != "" {
		own.resolve(pol.PluginDir)
	}
	return func(name string, g sandbox.Rules) error {
		if err := maps.Clone(own).exposes(pol, g); err != nil {
			return fmt.Errorf("plugins.%s: %w", name, err)
		}
		return nil
	}
}

// writesNear returns a path that g (as written) or real (its symbolic
// links resolved) grants write access to and that is dir, inside it or
// above it; "" when there is none or dir is "".
func (r resolver) writesNear(g, real sandbox.Rules, dir string) string {
	if dir == "" {
		return ""
	}
	for _, c := range []struct {
		r   sandbox.Rules
		dir string
	}{{g, filepath.Clean(dir)}, {real, r.resolve(dir)}} {
		for _, p := range slices.Concat(c.r.ReadWrite, c.r.Devices) {
			p = filepath.Clean(p)
			if sandbox.Within(p, c.dir) || sandbox.Within(c.dir, p) {
				return p
			}
		}
	}
	return ""
}

// parsePort is port as a number, 0 when it is not one.
func parsePort(port string) uint16 {
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}

// resolver resolves paths and remembers what it resolved. One check of
// every grant (pluginGrants) resolves the daemon's own files once for all
// plugins, not once for each grant (a dozen paths, each an lstat per
// component, twice per plugin: a fifth of the daemon's CPU before its
// first verdict). It is made for one check and dropped after it, so a
// symbolic link changed later is resolved again.
type resolver map[string]string

func newResolver() resolver { return resolver{} }

// resolve is path with its symbolic links resolved, as far as they exist:
// a file not made yet resolves through its folder.
func (r resolver) resolve(path string) string {
	path = filepath.Clean(path)
	if got, ok := r[path]; ok {
		return got
	}
	got := path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		got = real
	} else if dir := filepath.Dir(path); dir != path {
		got = filepath.Join(r.resolve(dir), filepath.Base(path))
	}
	r[path] = got
	return got
}

// pluginRules is every grant, for the daemon's own sandbox: the launcher
// that starts a plugin inherits the daemon's domain and narrows it, so the
// daemon's domain must hold what each plugin is granted.
func (d *daemon) pluginRules(ctx context.Context, pol *policy.Policy) ([]sandbox.Rules, error) {
	grants, err := d.grantsFor(ctx, pol)
	if err != nil {
		return nil, err
	}
	out := make([]sandbox.Rules, 0, len(grants.rules)+1)
	for _, g := range grants.rules {
		out = append(out, g)
	}
	// The evidence TPM is the daemon's own: no plugin's grant holds it.
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
		Self:         selfExe(),
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

// socketDir is where the plugin host makes its private folder (0700) for
// the plugins' socket folders: the service's own RuntimeDirectory under
// systemd, which no plugin's rules grant, else the temporary folder.
func socketDir() string {
	if d := os.Getenv("RUNTIME_DIRECTORY"); d != "" && filepath.IsAbs(d) {
		// systemd may list several, separated by ':'; the first is ours.
		d, _, _ = strings.Cut(d, ":")
		return d
	}
	return os.TempDir()
}

// selfExe is the daemon's own executable, which the plugin host runs again
// as the launcher of each plugin ("" when it cannot be found).
func selfExe() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// restrict confines the daemon (and so every plugin it starts) to what it
// and its plugins need under pol: Landlock best effort, seccomp allowlist.
// It returns the rules applied, for checking later reloads against them.
func (d *daemon) restrict(pol *policy.Policy, notifySocket string) (sandbox.Rules, error) {
	if err := prepareVerdictLog(pol); err != nil {
		d.logger.Warn("verdict log folder not made: verdicts will not be measured", "error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pol.AttestationTimeout)
	defer cancel()
	rules, err := d.pluginRules(ctx, pol)
	if err != nil {
		return sandbox.Rules{}, err
	}
	applied, st, err := filter.ApplyDaemon(daemonPaths(d.path, pol, notifySocket), rules...)
	if err != nil {
		return sandbox.Rules{}, fmt.Errorf("sandbox: %w", err)
	}
	d.logger.Info("sandboxed", "landlock_abi", st.ABI, "landlock", st.Landlock, "seccomp", st.Seccomp,
		"profile", st.Profile, "reason", st.Reason, "skipped", st.Skipped)
	return applied, nil
}

// uncovered returns the first path the new policy needs that the applied
// rules do not grant, or "" when the running sandbox covers the policy.
func (d *daemon) uncovered(applied sandbox.Rules, policyPath string, pol *policy.Policy, notifySocket string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pol.AttestationTimeout)
	defer cancel()
	rules, err := d.pluginRules(ctx, pol)
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
