package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

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

// TestSeccompRefusedIsAnError: a filter around the process that refuses
// seccomp(2) is not a kernel without seccomp: installing a program fails
// and says why, rather than leaving the filter out.
func TestSeccompRefusedIsAnError(t *testing.T) {
	t.Parallel()
	if ok, err := seccompAvailable(); !ok || err != nil {
		t.Skipf("no seccomp here: %v", err)
	}
	deny := ProgramOf([]unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_SECCOMP},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	})
	errs := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and the
		// filter and no_new_privs (both per thread) with it.
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			errs <- err
			return
		}
		if err := deny.load(); err != nil {
			errs <- err
			return
		}
		if ok, err := seccompAvailable(); ok || err == nil || !strings.Contains(err.Error(), "refused") {
			errs <- fmt.Errorf("seccompAvailable under a filter refusing seccomp(2) = %v, %v; want an error", ok, err)
			return
		}
		_, err := InstallProgram(deny)
		if err == nil {
			errs <- errors.New("InstallProgram under a filter refusing seccomp(2) reported no error")
			return
		}
		errs <- nil
	}()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
