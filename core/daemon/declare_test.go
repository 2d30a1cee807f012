package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/policy"
)

// declareEnv is a daemon able to run declare runs with a short timeout, a
// plugin folder with the declarer test plugin as attestor-check-<as>, and
// a default policy on that folder.
func declareEnv(t *testing.T, as string) (*daemon, *policy.Policy) {
	t.Helper()
	dir := t.TempDir()
	testbin.Install(t, testbin.Build(t, "./testplugins/declarer", "attestor-check-declarer"), dir, "attestor-check-"+as)
	launcher := testbin.Build(t, "./cmd/runtime-attestor", "runtime-attestor")
	d := &daemon{logger: hclog.NewNullLogger(), declarer: pluginhost.NewDeclarer(pluginhost.DeclarerOptions{Launcher: launcher, Timeout: 2 * time.Second})}
	pol := policy.Default()
	pol.PluginDir = dir
	pol.SigningKeyPath = filepath.Join(t.TempDir(), "keys", "signing.key")
	return d, pol
}

// TestHostileBuiltinDeclaration: a built-in's executable that declares
// garbage, floods, hangs or names "/" or a relative path is granted its
// policy grant only, with a core.plugin_sandbox finding saying why; one
// that declares the signing key's folder makes the policy refused.
func TestHostileBuiltinDeclaration(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, mode string
		sandbox    func(pol *policy.Policy) sandbox.Rules
		want       string // in the finding; "" = an error instead
	}{
		{"garbage", "garbage", nil, "not the expected JSON"},
		{"huge", "huge", nil, "more than 1048576 bytes"},
		{"hang", "hang", nil, "no declaration within 2s"},
		{"root", "raw", func(*policy.Policy) sandbox.Rules { return sandbox.Rules{ReadOnly: []string{"/"}} }, `the root folder "/"`},
		{"relative", "raw", func(*policy.Policy) sandbox.Rules { return sandbox.Rules{ReadOnly: []string{"etc"}} }, "not absolute"},
		{"signing key", "raw", func(p *policy.Policy) sandbox.Rules {
			return sandbox.Rules{ReadOnly: []string{filepath.Dir(p.SigningKeyPath)}}
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, pol := declareEnv(t, "kernel")
			cfg := map[string]any{"declare": c.mode}
			if c.sandbox != nil {
				cfg["sandbox"] = c.sandbox(pol)
			}
			pol.Plugins["kernel"] = policy.PluginPolicy{Enabled: true, Config: cfg, Sandbox: policy.Grant{ReadOnly: []string{"/proc/cmdline"}}}
			g, err := d.pluginGrants(context.Background(), pol)
			if c.want == "" {
				if err == nil || !strings.Contains(err.Error(), "plugins.kernel: the executable") || !strings.Contains(err.Error(), "(signing_key_path)") {
					t.Fatalf("pluginGrants = %v, want the declared signing key refused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := g.rules["kernel"]; !slices.Equal(got.ReadOnly, []string{"/proc/cmdline"}) || len(got.ReadWrite)+len(got.Exec)+len(got.Devices) != 0 {
				t.Errorf("kernel granted %+v, want its policy grant only", got)
			}
			n := g.notices["kernel"]
			if len(n) != 1 || n[0].Code != CodeSandbox || !strings.Contains(n[0].Message, c.want) || !strings.Contains(n[0].Message, "plugins.kernel.sandbox only") {
				t.Errorf("notices %+v, want one %s saying %q", n, CodeSandbox, c.want)
			}
		})
	}
}

// TestThirdPartyShortfall: a third-party plugin that declares more than
// its policy grants runs with the grant, and its finding names each
// missing path with the policy line that grants it; a declared daemon
// secret is named as never granted, not as a line to add.
func TestThirdPartyShortfall(t *testing.T) {
	t.Parallel()
	d, pol := declareEnv(t, "vendor")
	declared := sandbox.Rules{
		ReadOnly:   []string{"/etc/os-release", "/usr/share/misc", pol.SigningKeyPath},
		Devices:    []string{"/dev/null"},
		ConnectTCP: []uint16{443},
	}
	pol.Plugins["vendor"] = policy.PluginPolicy{Enabled: true, Config: map[string]any{"sandbox": declared},
		Sandbox: policy.Grant{ReadOnly: []string{"/usr/share"}}}
	g, err := d.pluginGrants(context.Background(), pol)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.rules["vendor"]; !slices.Equal(got.ReadOnly, []string{"/usr/share"}) || len(got.Devices)+len(got.ConnectTCP) != 0 {
		t.Errorf("vendor granted %+v, want its policy grant only", got)
	}
	n := g.notices["vendor"]
	if len(n) != 1 || n[0].Code != CodeSandbox {
		t.Fatalf("notices %+v, want one %s", n, CodeSandbox)
	}
	msg := n[0].Message
	for _, want := range []string{
		`plugins.vendor.sandbox.read_only: ["/etc/os-release"]`,
		`plugins.vendor.sandbox.devices: ["/dev/null"]`,
		"plugins.vendor.sandbox.connect_tcp: [443]",
		"Never granted, files only the daemon may touch: " + pol.SigningKeyPath,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("finding %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "/usr/share/misc") || strings.Contains(msg, "read_only: [/etc/os-release, "+pol.SigningKeyPath) {
		t.Errorf("finding %q names a granted path or offers the signing key", msg)
	}
	// Granted all it declares but the secret: only the secret is named.
	pp := pol.Plugins["vendor"]
	pp.Sandbox = policy.Grant{ReadOnly: []string{"/etc/os-release", "/usr/share"}, Devices: []string{"/dev/null"}, ConnectTCP: []uint16{443}}
	pol.Plugins["vendor"] = pp
	if g, err = d.pluginGrants(context.Background(), pol); err != nil {
		t.Fatal(err)
	}
	if n := g.notices["vendor"]; len(n) != 1 || strings.Contains(n[0].Message, "add to the policy") {
		t.Errorf("notices %+v, want the secret only", n)
	}
	if d.declarer.Runs() != 1 {
		t.Errorf("%d declare runs for one executable and configuration, want 1", d.declarer.Runs())
	}
}
