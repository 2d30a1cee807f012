package filter

import (
	"bytes"
	"slices"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// TestPrograms: the cache hands out, for rules that differ only in their
// paths, the very program Confined assembles, and another one whenever the
// filter differs (a command to run, a socket to reach, TCP).
func TestPrograms(t *testing.T) {
	t.Parallel()
	var ps Programs
	for _, c := range []struct {
		name string
		r    sandbox.Rules
	}{
		{"reads only", sandbox.Rules{ReadOnly: []string{"/etc"}}},
		{"reads elsewhere", sandbox.Rules{ReadOnly: []string{"/proc"}, ReadWrite: []string{"/run/x"}}},
		{"runs a command", sandbox.Rules{Exec: []string{"/usr/bin/true"}}},
		{"reaches a socket", sandbox.Rules{UnixSockets: []string{"/run/tpm.sock"}}},
		{"binds TCP", sandbox.Rules{BindTCP: []uint16{8080}}},
		{"connects TCP", sandbox.Rules{ConnectTCP: []uint16{443}}},
	} {
		got, err := ps.For(c.r)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want, err := Confined(c.r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || len(got) == 0 || len(got)%8 != 0 {
			t.Errorf("%s: cached program (%d bytes) is not the one assembled for the rules (%d bytes)", c.name, len(got), len(want))
		}
	}
	if len(ps.m) != 5 {
		t.Errorf("%d programs assembled for 6 rule sets of 5 filters", len(ps.m))
	}
	a, _ := ps.For(sandbox.Rules{})
	b, _ := ps.For(sandbox.Rules{ConnectTCP: []uint16{443}})
	if bytes.Equal(a, b) {
		t.Error("a plugin that may connect over TCP got the filter of one that may not")
	}
}

// TestProfiles: every profile assembles, a profile's own program is not
// the launcher's (which leaves the narrowing calls), the plugin programs
// are one per plugin profile, and an unknown profile is refused.
func TestProfiles(t *testing.T) {
	t.Parallel()
	var ps Programs
	for _, p := range []sandbox.Profile{sandbox.ProfilePlugin, sandbox.ProfilePluginExec, sandbox.ProfileDaemon} {
		own, err := ps.ForProfile(p)
		if err != nil || len(own) == 0 || len(own)%8 != 0 {
			t.Fatalf("%s: %d bytes, %v", p, len(own), err)
		}
		if want, _ := Profile(p); !bytes.Equal(own, want) {
			t.Errorf("%s: cached program is not the one Profile assembles", p)
		}
	}
	plain, _ := Profile(sandbox.ProfilePlugin)
	launcher, _ := Confined(sandbox.Rules{})
	if bytes.Equal(plain, launcher) {
		t.Error("the plugin's own filter is the launcher's")
	}
	pp, err := ps.PluginPrograms()
	if err != nil {
		t.Fatal(err)
	}
	exec, _ := Profile(sandbox.ProfilePluginExec)
	if len(pp) != 2 || !bytes.Equal(pp.For(sandbox.ProfilePlugin), plain) || !bytes.Equal(pp.For(sandbox.ProfilePluginExec), exec) {
		t.Errorf("plugin programs: %d of them, not the plugin and plugin-exec filters", len(pp))
	}
	if pp.For(sandbox.ProfileDaemon) != nil {
		t.Error("a plugin is handed the daemon's filter")
	}
	if _, err := Profile(0); err == nil {
		t.Error("profile 0 assembled")
	}
	if _, err := confinedFilter(key{}); err == nil {
		t.Error("the launcher filter of profile 0 assembled")
	}
	if !slices.Contains(Narrowing, "execveat") {
		t.Error("the launcher's filter would not let it execute the plugin")
	}
}
