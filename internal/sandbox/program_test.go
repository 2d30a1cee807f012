package sandbox

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// TestPrograms: the host's cache hands out, for rules that differ only in
// their paths, the very program ExecConfined would assemble, and another
// one whenever the filter differs (a command to run, a socket to reach,
// TCP).
func TestPrograms(t *testing.T) {
	t.Parallel()
	var ps Programs
	for _, c := range []struct {
		name string
		r    Rules
	}{
		{"reads only", Rules{ReadOnly: []string{"/etc"}}},
		{"reads elsewhere", Rules{ReadOnly: []string{"/proc"}, ReadWrite: []string{"/run/x"}}},
		{"runs a command", Rules{Exec: []string{"/usr/bin/true"}}},
		{"reaches a socket", Rules{UnixSockets: []string{"/run/tpm.sock"}}},
		{"binds TCP", Rules{BindTCP: []uint16{8080}}},
		{"connects TCP", Rules{ConnectTCP: []uint16{443}}},
	} {
		got, err := ps.For(c.r)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want, err := ConfinedProgram(c.r)
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
	a, _ := ps.For(Rules{})
	b, _ := ps.For(Rules{ConnectTCP: []uint16{443}})
	if bytes.Equal(a, b) {
		t.Error("a plugin that may connect over TCP got the filter of one that may not")
	}
}

// TestProgramRefused: a program that is not whole instructions, too long,
// or that the kernel refuses is not loaded, and says why.
func TestProgramRefused(t *testing.T) {
	t.Parallel()
	runtime.LockOSThread() // a loaded filter would stay on this thread
	defer runtime.UnlockOSThread()
	bad := bytes.Repeat([]byte{0xff}, 8) // an unknown BPF opcode
	for _, c := range []struct {
		name string
		p    Program
		want string
	}{
		{"empty", nil, "want 1 to"},
		{"partial instruction", Program{1, 2, 3}, "want 1 to"},
		{"too long", make(Program, 8*(maxProgram+1)), "want 1 to"},
		{"not BPF", Program(bad), "load the seccomp program"},
	} {
		if err := c.p.load(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: load = %v, want an error with %q", c.name, err, c.want)
		}
	}
}
