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
// "<mode>:<launcher>" makes it install a seccomp filter that answers every
// seccomp(2) with an errno (EPERM: a filter around the daemon that
// refuses it; ENOSYS: one that hides it; ENOSYS+PRCTL: one that hides it
// and makes prctl(PR_GET_SECCOMP) fail with EINVAL too, as on a kernel
// without seccomp), then execute the launcher with its own argv,
// environment (less this variable) and descriptors, as the launcher would
// be started inside such a filter.
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

// seccompDenial is the wrapper's filter: seccomp(2) answers errno and,
// with prctl, prctl(PR_GET_SECCOMP) answers EINVAL; all else is allowed.
func seccompDenial(errno syscall.Errno, prctl bool) []unix.SockFilter {
	const nr, arg0 = 0, 16 // offsets in struct seccomp_data (arg0's low half, little-endian)
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	insts := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: nr},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_SECCOMP, Jt: 0, Jf: 1},
		ret(unix.SECCOMP_RET_ERRNO | uint32(errno)),
	}
	if prctl {
		insts = append(insts,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_PRCTL, Jt: 0, Jf: 3},
			unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: arg0},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.PR_GET_SECCOMP, Jt: 0, Jf: 1},
			ret(unix.SECCOMP_RET_ERRNO|uint32(unix.EINVAL)),
		)
	}
	return append(insts, ret(unix.SECCOMP_RET_ALLOW))
}

// runDenyingSeccomp is the wrapper mode; it returns only on failure.
func runDenyingSeccomp(v string) int {
	mode, launcher, _ := strings.Cut(v, ":")
	name, prctl := strings.CutSuffix(mode, "+PRCTL")
	errno := map[string]syscall.Errno{"EPERM": unix.EPERM, "ENOSYS": unix.ENOSYS}[name]
	if errno == 0 || launcher == "" {
		fmt.Fprintf(os.Stderr, "%s=%q: want EPERM:<path>, ENOSYS:<path> or ENOSYS+PRCTL:<path>\n", denySeccompEnv, v)
		return 2
	}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "no_new_privs:", err)
		return 2
	}
	insts := seccompDenial(errno, prctl)
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
