package launch

import (
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/peercred"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/wire"
)

// TestGrantReadByThePlugin: the grant the host hands the launcher is
// what the plugin side reads back as its grant (sandbox.HostGrant), so the
// two encodings cannot drift.
func TestGrantReadByThePlugin(t *testing.T) {
	want := sandbox.Rules{ReadOnly: []string{"/etc/os-release"}, ReadWrite: []string{"/run/x"}, Devices: []string{"/dev/tpmrm0"}, ConnectTCP: []uint16{443}}
	progs := sandbox.PluginPrograms{"plugin": sandbox.Program{1, 2, 3, 4, 5, 6, 7, 8}}
	f, err := GrantFile(Spec{Rules: want, Landlock: true, Seccomp: sandbox.Program{8, 7, 6, 5, 4, 3, 2, 1}, PluginSeccomp: progs})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv(sandbox.GrantFDEnv, strconv.Itoa(int(f.Fd())))
	got, ok := sandbox.HostGrant()
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("HostGrant() = %+v, %t; want %+v", got, ok, want)
	}
	if c, ok := sandbox.HostConfinement(); !ok || !reflect.DeepEqual(c.Programs, progs) || !c.Landlock {
		t.Fatalf("HostConfinement() = %+v, %t; want the plugin programs %v", c, ok, progs)
	}
	// Read twice: the descriptor stays open and is read from its start.
	if again, ok := sandbox.HostGrant(); !ok || !reflect.DeepEqual(again, want) {
		t.Fatalf("second HostGrant() = %+v, %t", again, ok)
	}
	// Without Landlock the rules are not enforced: no grant to explain a
	// denial with, but the programs to narrow with all the same.
	nf, err := GrantFile(Spec{Rules: want, PluginSeccomp: progs})
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	t.Setenv(sandbox.GrantFDEnv, strconv.Itoa(int(nf.Fd())))
	if _, ok := sandbox.HostGrant(); ok {
		t.Error("a grant Landlock does not enforce was read as enforced")
	}
	if c, ok := sandbox.HostConfinement(); !ok || !reflect.DeepEqual(c.Programs, progs) {
		t.Errorf("HostConfinement() without Landlock = %+v, %t", c, ok)
	}
	for _, v := range []string{"", "x", "2", "987654"} {
		t.Setenv(sandbox.GrantFDEnv, v)
		if _, ok := sandbox.HostGrant(); ok {
			t.Errorf("%s=%q: a grant was read", sandbox.GrantFDEnv, v)
		}
	}
}

// TestPluginStartDescription: what a plugin gets from Plugin: its grant
// plus its socket folder and nothing else, and an environment of PATH,
// the log level, GOMAXPROCS, the socket folder, the grant's descriptor and
// the launcher's variable; the launcher's four descriptors.
func TestPluginStartDescription(t *testing.T) {
	t.Parallel()
	bin, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	p := Plugin{Launcher: "/proc/self/exe", Binary: bin, Argv0: "/plugins/attestor-check-x",
		Rules: sandbox.Rules{ReadOnly: []string{"/etc/x"}}, SocketDir: "/run/sock", LogLevel: "debug", GOMAXPROCS: 1}
	if g := p.Grant(); !reflect.DeepEqual(g, sandbox.Rules{ReadOnly: []string{"/etc/x"}, ReadWrite: []string{"/run/sock"}}) {
		t.Errorf("grant %+v", g)
	}
	client, cmd, rules, err := p.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer rules.Close()
	defer client.Kill()
	var names []string
	for _, kv := range cmd.Env {
		names = append(names, kv[:strings.IndexByte(kv, '=')])
	}
	slices.Sort(names)
	want := []string{"GOMAXPROCS", Env, sandbox.GrantFDEnv, wire.LogLevelEnv, "PATH", "PLUGIN_UNIX_SOCKET_DIR"}
	if peercred.SelfPidfsIno() != 0 {
		want = append(want, peercred.DaemonEnv)
	}
	slices.Sort(want)
	if !slices.Equal(names, want) || cmd.Args[0] != p.Argv0 || cmd.Dir != "/" || len(cmd.ExtraFiles) != 4 || cmd.ExtraFiles[0] != bin || cmd.ExtraFiles[SeccompFD-3] == nil {
		t.Errorf("command env %v args %v dir %q files %d", names, cmd.Args, cmd.Dir, len(cmd.ExtraFiles))
	}
	if !cmd.SysProcAttr.Setpgid || cmd.SysProcAttr.Pdeathsig == 0 || cmd.SysProcAttr.Cloneflags != 0 {
		t.Errorf("process attributes %+v", cmd.SysProcAttr)
	}
	if _, _, _, err := (Plugin{Launcher: "/proc/self/exe", Binary: bin}).Client(); err == nil {
		t.Error("a plugin without a socket folder was given a client")
	}
}
