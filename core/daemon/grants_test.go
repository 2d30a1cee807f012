package daemon

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/policy"
)

// TestGrantsNeverExposeDaemonFiles: no plugin's grant, a built-in's
// declared one included, may reach a file only the daemon touches. The
// first case is the deployment docs' own layout: the signing key in the
// unit's StateDirectory, which is also the folder of the tpm plugin's
// default state_file, granted read-write to that plugin.
func TestGrantsNeverExposeDaemonFiles(t *testing.T) {
	t.Parallel()
	third := func(r sandbox.Rules) func(*policy.Policy) {
		return func(p *policy.Policy) {
			p.Plugins["vendor"] = policy.PluginPolicy{Enabled: true, Sandbox: policy.Grant(r)}
		}
	}
	cases := []struct {
		name string
		edit func(*policy.Policy)
		want string // "" = accepted
	}{
		{"defaults", func(*policy.Policy) {}, ""},
		{"signing key beside the tpm plugin's state file", func(p *policy.Policy) {
			p.SigningKeyPath = "/var/lib/secure-ai/runtime-attestor/signing.key"
		}, "declares a sandbox that grants read access to /var/lib/secure-ai/runtime-attestor/signing.key (signing_key_path)"},
		{"signing key in a folder of its own", func(p *policy.Policy) {
			p.SigningKeyPath = "/var/lib/secure-ai/identity/signing.key"
		}, ""},
		{"third-party plugin granted the audit folder", third(sandbox.Rules{ReadOnly: []string{"/var/lib/secure-ai/logs"}}),
			"plugins.vendor: its sandbox grants read access to /var/lib/secure-ai/logs/runtime-attestor-audit.key (audit_key_path)"},
		{"third-party plugin granted the seed", third(sandbox.Rules{ReadOnly: []string{"/var/lib/secure-ai/logs/runtime-attestor-audit.key.seed"}}),
			"audit_key_path's seed"},
		{"third-party plugin granted /run/secure-ai read-only", third(sandbox.Rules{ReadOnly: []string{"/run/secure-ai"}}),
			"(hmac_key_path)"},
		{"third-party plugin granted the verdict log's folder", third(sandbox.Rules{ReadWrite: []string{"/run/secure-ai"}}),
			"plugins.vendor: its sandbox grants"},
		{"third-party plugin granted the whole file system", third(sandbox.Rules{ReadOnly: []string{"/"}}), "plugins.vendor"},
		{"third-party plugin granted an unrelated folder", third(sandbox.Rules{ReadOnly: []string{"/var/lib/secure-ai/logsx"}}), ""},
		{"third-party plugin granted the daemon's port", third(sandbox.Rules{BindTCP: []uint16{8505}}),
			"plugins.vendor: its sandbox grants binding TCP port 8505, the port the daemon listens on"},
		{"third-party plugin granted another port", third(sandbox.Rules{BindTCP: []uint16{8506}, ConnectTCP: []uint16{8505}}), ""},
	}
	// A grant through a symbolic link reaches what the link points to.
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	link := filepath.Join(dir, "innocent")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(keys, link); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name string
		edit func(*policy.Policy)
		want string
	}{"third-party plugin granted a link to the signing key's folder", func(p *policy.Policy) {
		p.SigningKeyPath = filepath.Join(keys, "signing.key")
		third(sandbox.Rules{ReadOnly: []string{link}})(p)
	}, "(signing_key_path)"})
	d, plugins := grantDaemon(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := policy.Default()
			p.PluginDir = plugins
			c.edit(p)
			_, err := d.pluginGrants(context.Background(), p)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q, want %q in it", err, c.want)
			}
		})
	}
}

// grantDaemon is a daemon that can compute grants (its declarer runs the
// real launcher) and a plugin folder holding the real built-ins.
func grantDaemon(t *testing.T) (*daemon, string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range builtin.Names() {
		testbin.Plugin(t, dir, name)
	}
	launcher := testbin.Build(t, "./cmd/runtime-attestor", "runtime-attestor")
	return &daemon{logger: hclog.NewNullLogger(), declarer: pluginhost.NewDeclarer(pluginhost.DeclarerOptions{Launcher: launcher})}, dir
}

// TestGrantsOncePerPolicy: the daemon's sandbox and its plugin host see
// the grants computed once for the policy in force; a policy loaded again
// (a reload) is checked again, against the file system as it is then.
func TestGrantsOncePerPolicy(t *testing.T) {
	t.Parallel()
	d, plugins := grantDaemon(t)
	keys, link := keysAndLink(t)
	load := func() *policy.Policy {
		p := policy.Default()
		p.PluginDir = plugins
		p.SigningKeyPath = filepath.Join(keys, "signing.key")
		p.Plugins["vendor"] = policy.PluginPolicy{Enabled: true, Sandbox: policy.Grant(sandbox.Rules{ReadOnly: []string{link}})}
		return p
	}
	ctx := context.Background()
	first := load()
	g, err := d.grantsFor(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	// The link now leads to the signing key's folder.
	repoint(t, link, keys)
	again, err := d.grantsFor(ctx, first)
	if err != nil || !reflect.DeepEqual(again, g) {
		t.Fatalf("the same policy's grants were computed again: %v", err)
	}
	if _, err := d.grantsFor(ctx, load()); err == nil || !strings.Contains(err.Error(), "(signing_key_path)") {
		t.Fatalf("a policy loaded again was not checked again: %v", err)
	}
}

// TestGrantCheckedAtEachStart: a grant through a symbolic link that was
// harmless when the policy was loaded is refused at a later start once the
// link leads to the daemon's files (pluginhost.Options.CheckGrant).
func TestGrantCheckedAtEachStart(t *testing.T) {
	t.Parallel()
	keys, link := keysAndLink(t)
	pol := policy.Default()
	pol.SigningKeyPath = filepath.Join(keys, "signing.key")
	grant := sandbox.Rules{ReadOnly: []string{link}}
	check := grantCheck(pol)
	if err := check("vendor", grant); err != nil {
		t.Fatalf("refused while the link leads elsewhere: %v", err)
	}
	repoint(t, link, keys)
	err := check("vendor", grant)
	if err == nil || !strings.Contains(err.Error(), "plugins.vendor: its sandbox grants read access to") || !strings.Contains(err.Error(), "(signing_key_path)") {
		t.Fatalf("a link that now leads to the signing key's folder: %v", err)
	}
}

// keysAndLink makes a folder for the daemon's keys and a link, leading to
// another folder for now.
func keysAndLink(t *testing.T) (keys, link string) {
	t.Helper()
	dir := t.TempDir()
	keys, other, link := filepath.Join(dir, "keys"), filepath.Join(dir, "other"), filepath.Join(dir, "innocent")
	for _, p := range []string{keys, other} {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	return keys, link
}

// repoint makes link lead to target.
func repoint(t *testing.T, link, target string) {
	t.Helper()
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
