package pluginhost

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/launchprobe"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/filter"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// TestLauncherLoadsTheHostsProgram: the launcher installs the seccomp
// program the host assembled (filter.Programs), not one of its own: with
// a program that refuses execveat it cannot execute the plugin,
// with the host's program for the rules the plugin runs.
func TestLauncherLoadsTheHostsProgram(t *testing.T) {
	t.Parallel()
	for name, l := range launchers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testLoadsTheHostsProgram(t, l)
		})
	}
}

func testLoadsTheHostsProgram(t *testing.T, l string) {
	exe := binary(t, "light") // exits 1 with a message when run by hand
	// Refuses execveat alone: the launcher runs, and cannot execute.
	noExec := sandbox.ProgramOf([]unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_EXECVEAT},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	})
	var ps filter.Programs
	good, err := ps.For(sandbox.Rules{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		prog       sandbox.Program
		exit       int
		wantStderr string
	}{
		{"a program that refuses execveat", noExec, launch.ExitFailed, "execveat(3): operation not permitted"},
		{"the host's program", good, 1, "not run by hand"},
	} {
		bin, err := os.Open(exe)
		if err != nil {
			t.Fatal(err)
		}
		cmd, rules, err := launch.Command(l, bin, exe, []string{"PATH=/usr/bin:/bin"}, launch.Spec{Seccomp: c.prog})
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err = cmd.Run()
		rules.Close()
		bin.Close()
		var ee *exec.ExitError
		// The C launcher writes strerror's text, capitalised.
		if !errors.As(err, &ee) || ee.ExitCode() != c.exit || !strings.Contains(strings.ToLower(stderr.String()), c.wantStderr) {
			t.Errorf("%s: %v, stderr %q; want exit %d and %q", c.name, err, stderr.String(), c.exit, c.wantStderr)
		}
	}
}

// launchers are the two launchers a host can use: the shipped one (C) and
// the host's own executable in launcher mode (this test binary, whose
// TestMain calls launch.Main). Both keep the one contract of package
// launcher.
func launchers(t *testing.T) map[string]string {
	return map[string]string{"attestor-launcher": launcher(t), "self": launch.Self}
}

// probeCommand is the launch of testplugins/launchprobe with no rules
// (nothing but its own file granted) and the host's program for them.
func probeCommand(t *testing.T, l string) (*exec.Cmd, func()) {
	t.Helper()
	exe := testbin.Build(t, "./testplugins/launchprobe", "launchprobe")
	bin, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	var ps filter.Programs
	prog, err := ps.For(sandbox.Rules{})
	if err != nil {
		t.Fatal(err)
	}
	cmd, files, err := launch.Command(l, bin, "/plugins/probe", []string{"PATH=/usr/bin:/bin"}, launch.Spec{Landlock: sandbox.ABI() > 0, Seccomp: prog})
	if err != nil {
		t.Fatal(err)
	}
	return cmd, func() { files.Close(); bin.Close() }
}

// TestLauncherContract: each launcher starts the plugin exactly as the
// contract says: its argv, the environment without the launcher's
// variable and with the grant's, descriptors 3 and 4 open and the
// ruleset's and the program's closed, nice 19, no_new_privs, the seccomp
// filter installed and the Landlock domain in force before its first
// instruction.
func TestLauncherContract(t *testing.T) {
	t.Parallel()
	for name, l := range launchers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd, done := probeCommand(t, l)
			defer done()
			// A stray descriptor the launcher inherited (fd 7) does not
			// reach the plugin.
			cmd.ExtraFiles = append(cmd.ExtraFiles, sealed(t, []byte("stray")))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			var got launchprobe.Report
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			want := launchprobe.Report{Argv0: "/plugins/probe", GrantFD: "4", OpenFDs: []int{launch.BinaryFD, launch.GrantFD}, Nice: 19, NoNewPrivs: 1, Seccomp: 2, ReadPasswd: "EACCES"}
			if sandbox.ABI() == 0 {
				want.ReadPasswd = got.ReadPasswd
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the plugin started with %+v; want %+v", got, want)
			}
		})
	}
}

// TestLauncherRefuses: a launcher handed a variable or a program other
// than the host writes starts nothing: one line with the failure prefix,
// exit 125.
func TestLauncherRefuses(t *testing.T) {
	t.Parallel()
	prog := func(b []byte) func(*exec.Cmd) {
		return func(cmd *exec.Cmd) { cmd.ExtraFiles[launch.SeccompFD-3] = sealed(t, b) }
	}
	env := func(v string) func(*exec.Cmd) {
		return func(cmd *exec.Cmd) {
			cmd.Env = append(slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, launch.Env+"=") }), launch.Env+"="+v)
		}
	}
	denying := func(errno string) func(*exec.Cmd) {
		return func(cmd *exec.Cmd) {
			if err := denyingSeccomp(cmd, errno); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A jump past the end: the kernel refuses the program.
	invalid := sandbox.ProgramOf([]unix.SockFilter{{Code: unix.BPF_JMP | unix.BPF_JA, K: 5}, {Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}})
	cases := []struct {
		name   string
		change func(*exec.Cmd)
		want   string
	}{
		{"other descriptors", env("v1,3,4,5,6"), launch.Env},
		{"no ruleset with flags", env("v1,3,-,6,1"), launch.Env},
		{"flags not a number", env("v1,3,5,6,x"), launch.Env},
		{"flags out of range", env("v1,3,5,6,4294967296"), launch.Env},
		{"an empty value", env(""), launch.Env},
		{"no version", env("3,5,6,0"), launch.Env},
		{"another version", env("v2,3,5,6,0"), "install the attestor-launcher built with this daemon"},
		{"an empty program", prog(nil), "seccomp"},
		{"a program of 7 bytes", prog(make([]byte, 7)), "seccomp"},
		{"a program over 4096 instructions", prog(make([]byte, 8*4097)), "seccomp"},
		{"a program the kernel refuses", prog(invalid), "seccomp"},
		{"no program at all", func(cmd *exec.Cmd) { cmd.ExtraFiles[launch.SeccompFD-3] = nil }, "seccomp"},
		{"seccomp(2) refused around the launcher", denying("EPERM"), "seccomp(2) is refused"},
		{"seccomp(2) hidden around the launcher", denying("ENOSYS"), "a filter around this process hides it"},
		{"seccomp(2) and PR_GET_SECCOMP hidden around the launcher", denying("ENOSYS+PRCTL"), "(/proc/self/status shows it): a filter around this process hides it"},
	}
	if sandbox.ABI() > 0 {
		// Not a ruleset: landlock_restrict_self fails.
		cases = append(cases, struct {
			name   string
			change func(*exec.Cmd)
			want   string
		}{"a ruleset that is not one", func(cmd *exec.Cmd) { cmd.ExtraFiles[launch.RulesetFD-3] = sealed(t, []byte("not a ruleset")) }, "andlock"})
	}
	for name, l := range launchers(t) {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				cmd, done := probeCommand(t, l)
				defer done()
				c.change(cmd)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != launch.ExitFailed || stdout.Len() > 0 ||
					!strings.HasPrefix(stderr.String(), launch.Failed) || !strings.Contains(stderr.String(), c.want) {
					t.Errorf("%v, stdout %q, stderr %q; want exit %d and one line naming %s", err, stdout.String(), stderr.String(), launch.ExitFailed, c.want)
				}
			})
		}
	}
}

// sealed is a sealed memory file holding b, closed with the test.
func sealed(t *testing.T, b []byte) *os.File {
	t.Helper()
	f, err := launch.SealedFile("test", b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
