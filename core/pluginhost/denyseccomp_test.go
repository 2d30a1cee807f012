package pluginhost

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// denySeccompEnv puts the test binary in wrapper mode: its value
// "<errno>:<launcher>" makes it install a seccomp filter that answers
// every seccomp(2) with that errno (EPERM: a filter around the daemon that
// refuses it; ENOSYS: one that hides it), then execute the launcher with
// its own argv, environment (less this variable) and descriptors, as the
// launcher would be started inside such a filter.
const denySeccompEnv = "PLUGINHOST_TEST_DENY_SECCOMP"

// denyingSeccomp changes a launcher command to start inside a filter that
// answers seccomp(2) with errno.
func denyingSeccomp(cmd *exec.Cmd, errno string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd.Env = append(cmd.Env, denySeccompEnv+"="+errno+":"+cmd.Path)
	cmd.Path = self
	return nil
}

// runDenyingSeccomp is the wrapper mode; it returns only on failure.
func runDenyingSeccomp(v string) int {
	name, launcher, _ := strings.Cut(v, ":")
	errno := map[string]syscall.Errno{"EPERM": unix.EPERM, "ENOSYS": unix.ENOSYS}[name]
	if errno == 0 || launcher == "" {
		fmt.Fprintf(os.Stderr, "%s=%q: want EPERM:<path> or ENOSYS:<path>\n", denySeccompEnv, v)
		return 2
	}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "no_new_privs:", err)
		return 2
	}
	insts := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_SECCOMP, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(errno)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(insts)), Filter: &insts[0]}
	// On every thread (TSYNC): the exec below may run on any of them.
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); e != 0 {
		fmt.Fprintln(os.Stderr, "seccomp:", e)
		return 2
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, denySeccompEnv+"=") {
			env = append(env, kv)
		}
	}
	err := syscall.Exec(launcher, os.Args, env)
	fmt.Fprintln(os.Stderr, "exec the launcher:", err)
	return 2
}
