package wire

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// TestImposedAsDeclared: a plugin skips narrowing itself only when the
// grant its launcher imposed with Landlock is exactly its declaration plus
// its socket folder; a host that granted more, a kernel without Landlock,
// or no grant at all, makes it narrow.
// Not parallel: it sets the process's environment.
func TestImposedAsDeclared(t *testing.T) {
	sock := t.TempDir()
	t.Setenv(sandbox.PluginSocketEnv, sock)
	declared := sandbox.Rules{ReadOnly: []string{"/proc/cmdline", "/etc/os-release"}, Exec: []string{"/usr/bin/true"}}
	exact := sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}}
	for _, c := range []struct {
		name     string
		grant    *sandbox.Rules // nil: no grant descriptor
		want     bool
		unforced bool // the kernel has no Landlock
	}{
		{"exactly the declaration, not enforced", &exact, false, true},
		{"exactly the declaration", &sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}}, true, false},
		{"the declaration, repeated entries", &sandbox.Rules{ReadOnly: []string{"/proc/cmdline", "/proc/cmdline", "/etc/os-release"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}}, true, false},
		{"one more path", &sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline", "/etc/shadow"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}}, false, false},
		{"a TCP port more", &sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}, ConnectTCP: []uint16{443}}, false, false},
		{"without the socket folder", &sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline"}, Exec: []string{"/usr/bin/true"}}, false, false},
		{"no grant", nil, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(sandbox.GrantFDEnv, "")
			if c.grant != nil {
				setGrant(t, sandbox.Confinement{Rules: *c.grant, Landlock: !c.unforced})
			}
			host, _ := sandbox.HostConfinement()
			got, ok := imposedAsDeclared(host, declared)
			if ok != c.want {
				t.Fatalf("imposedAsDeclared = %v, want %v", ok, c.want)
			}
			if ok && !got.Covers("/proc/cmdline", sandbox.Read) {
				t.Errorf("the rules it returns (%+v) do not hold the declaration", got)
			}
		})
	}
}

// declaring is a check that declares a sandbox.
type declaring struct{ sdk.Check }

func (declaring) Sandbox() sdk.Sandbox { return sdk.Sandbox{ReadOnly: []string{"/etc/os-release"}} }

// TestNoProgramNoStart: a plugin whose grant carries no seccomp program
// (started by anything but the daemon's launcher) refuses to configure,
// and says why, rather than run without its own filter. Not parallel: it
// sets the process's environment.
func TestNoProgramNoStart(t *testing.T) {
	t.Setenv(CookieKey, CookieValue)
	for _, c := range []struct {
		name  string
		grant *sandbox.Confinement // nil: no grant descriptor
	}{
		{"no grant", nil},
		{"a grant without programs", &sandbox.Confinement{Rules: sandbox.Rules{ReadOnly: []string{"/etc/os-release"}}, Landlock: true}},
		{"only the other profile's program", &sandbox.Confinement{Programs: sandbox.PluginPrograms{"plugin-exec": sandbox.Program{6, 0, 0, 0, 0, 0, 0xff, 0x7f}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(sandbox.GrantFDEnv, "")
			if c.grant != nil {
				setGrant(t, *c.grant)
			}
			applied, err := applySandbox(declaring{}, hclog.NewNullLogger())
			if err == nil || !strings.Contains(err.Error(), "carries no seccomp program for the plugin profile") || applied != nil {
				t.Fatalf("applySandbox = %v, %v; want a refusal naming the missing program", applied, err)
			}
		})
	}
}

// setGrant hands this process c as its launcher's grant, in a file of its
// own (t.Setenv: not parallel).
func setGrant(t *testing.T, c sandbox.Confinement) {
	t.Helper()
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "grant")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	t.Setenv(sandbox.GrantFDEnv, strconv.Itoa(int(f.Fd())))
}

// TestConfinementLevel: a plugin that runs confined as declared says so at
// debug level; one without Landlock or without its seccomp filter warns,
// so an operator at the default level sees every such start.
func TestConfinementLevel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		landlock, seccomp bool
		want              hclog.Level
	}{
		{true, true, hclog.Debug},
		{false, true, hclog.Warn},
		{true, false, hclog.Warn},
		{false, false, hclog.Warn},
	} {
		if got := confinementLevel(c.landlock, c.seccomp); got != c.want {
			t.Errorf("confinementLevel(landlock=%t, seccomp=%t) = %s, want %s", c.landlock, c.seccomp, got, c.want)
		}
	}
}
