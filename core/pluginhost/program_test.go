package pluginhost

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/filter"
)

// TestLauncherLoadsTheHostsProgram: the launcher installs the seccomp
// program the host assembled (filter.Programs), not one of its own: with
// a program that refuses execveat it cannot execute the plugin,
// with the host's program for the rules the plugin runs.
func TestLauncherLoadsTheHostsProgram(t *testing.T) {
	t.Parallel()
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
		cmd, rules, err := launch.Command(launcher(t), bin, exe, []string{"PATH=/usr/bin:/bin"}, launch.Spec{Seccomp: c.prog})
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err = cmd.Run()
		rules.Close()
		bin.Close()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.exit || !strings.Contains(stderr.String(), c.wantStderr) {
			t.Errorf("%s: %v, stderr %q; want exit %d and %q", c.name, err, stderr.String(), c.exit, c.wantStderr)
		}
	}
}
