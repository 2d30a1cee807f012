package kernel_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/plugins/kernel"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// broad are folders no built-in plugin may be given whole.
var broad = []string{"/", "/proc", "/sys", "/dev", "/etc", "/run", "/usr", "/var", "/tmp"}

func TestSandboxDeclared(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name string
		cfg  string
		want sdk.Sandbox
	}{
		{"default", `{}`, sdk.Sandbox{ReadOnly: []string{
			"/proc/cmdline", "/proc/modules", "/proc/sys/kernel/tainted",
			"/sys/kernel/security/lockdown", "/sys/module/module/parameters/sig_enforce",
		}}},
		{"fixture tree", `{"cmdline_path":"/srv/k/cmdline","lockdown_path":"/srv/k/lockdown","tainted_path":"/srv/k/tainted",
			"sig_enforce_path":"/srv/k/sig_enforce","modules_path":"/srv/k/modules","min_lockdown":"integrity"}`,
			sdk.Sandbox{ReadOnly: []string{"/srv/k/cmdline", "/srv/k/lockdown", "/srv/k/modules", "/srv/k/sig_enforce", "/srv/k/tainted"}}},
		{"unclean paths are cleaned", `{"cmdline_path":"/proc//cmdline","tainted_path":"/proc/sys/kernel/../kernel/tainted/"}`,
			sdk.Sandbox{ReadOnly: []string{
				"/proc/cmdline", "/proc/modules", "/proc/sys/kernel/tainted",
				"/sys/kernel/security/lockdown", "/sys/module/module/parameters/sig_enforce",
			}}},
		{"one file for everything", `{"cmdline_path":"/x","lockdown_path":"/x","tainted_path":"/x","sig_enforce_path":"/x","modules_path":"/x"}`,
			sdk.Sandbox{ReadOnly: []string{"/x"}}},
	} {
		sb, ok, err := sdk.DeclaredSandbox(context.Background(), kernel.New(), []byte(tc.cfg))
		if err != nil || !ok {
			t.Fatalf("Test %d (%s): DeclaredSandbox = %v, %v", i, tc.name, ok, err)
		}
		if !reflect.DeepEqual(sb, tc.want) {
			t.Errorf("Test %d (%s): declared %+v\nwant     %+v", i, tc.name, sb, tc.want)
		}
		if err := sandbox.Rules(sb).Validate(); err != nil {
			t.Errorf("Test %d (%s): Validate: %v", i, tc.name, err)
		}
		for _, p := range sb.ReadOnly {
			for _, b := range broad {
				if p == b {
					t.Errorf("Test %d (%s): declares all of %s", i, tc.name, b)
				}
			}
		}
	}
	if _, _, err := sdk.DeclaredSandbox(context.Background(), kernel.New(), []byte(`{"cmdline_path":"proc/cmdline"}`)); err == nil {
		t.Error("DeclaredSandbox accepted a configuration Configure refuses")
	}
}

// TestSandboxedSubprocess: the real plugin, started as the daemon starts
// it, measures a fixture tree after confining itself to it, and can no
// longer read another tree with the same files once reconfigured to it,
// while a fresh process can.
func TestSandboxedSubprocess(t *testing.T) {
	t.Parallel()
	allowed, other := copyTree(t, "fcos_hardened"), copyTree(t, "fcos_hardened")
	cfg := func(root string) []byte {
		b, _ := json.Marshal(merge(paths(root), strict))
		return b
	}

	p := plugintest.Start(t, "kernel")
	p.MustConfigure(t, cfg(allowed))
	m := p.MustMeasure(t)
	if len(m.Findings) != 0 || string(m.Measurements[kernel.KeyLockdown]) != `"integrity"` ||
		!strings.Contains(string(m.Measurements[kernel.KeyCmdline]), "lockdown=integrity") ||
		string(m.Measurements[kernel.KeyModuleSigEnforce]) != "true" || string(m.Measurements[kernel.KeyTainted]) != "0" {
		t.Fatalf("sandboxed measurement of %s: measurements %s findings %+v", allowed, m.Measurements, m.Findings)
	}

	// A fresh process reads the other tree: what follows is the sandbox.
	fresh := plugintest.Start(t, "kernel")
	fresh.MustConfigure(t, cfg(other))
	if m := fresh.MustMeasure(t); len(m.Findings) != 0 {
		t.Fatalf("fresh process on %s: findings %+v", other, m.Findings)
	}

	plugintest.NeedLandlock(t)
	p.MustConfigure(t, cfg(other))
	m = p.MustMeasure(t)
	for _, key := range []string{kernel.KeyCmdline, kernel.KeyLockdown, kernel.KeyTainted, kernel.KeyModuleSigEnforce} {
		if v, ok := m.Measurements[key]; ok {
			t.Errorf("%s = %s read from outside the sandbox", key, v)
		}
	}
	denied := map[string]bool{}
	for _, f := range m.Findings {
		if f.Code == kernel.CodeUnreadable {
			if !strings.Contains(f.Message, "permission denied") || !strings.HasPrefix(f.Subject, other) {
				t.Errorf("unreadable finding %+v, want permission denied on a file under %s", f, other)
			}
			denied[f.Subject] = true
		}
	}
	if len(denied) != 4 { // cmdline, lockdown, tainted, sig_enforce; modules is only looked at
		t.Fatalf("after reconfiguring outside the sandbox: %d files denied, want 4; findings %+v", len(denied), m.Findings)
	}
}
