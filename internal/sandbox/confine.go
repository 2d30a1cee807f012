package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// ExecConfined confines the calling thread with r (Landlock, best effort:
// a kernel without Landlock leaves file access unrestricted) and with the
// seccomp profile PluginProfile(r), sets no_new_privs, and then executes
// the file open as fd, with argv and env, through execveat(fd, "",
// AT_EMPTY_PATH): the very file the descriptor refers to, never a path.
// The executed program starts confined: its first instruction already runs
// inside the domain and the filter, which it can narrow, never lift.
//
// The rules also grant executing (and reading) that one file, and what it
// needs to run (its ELF interpreter and libraries, found through the
// descriptor). Sockets are stream sockets only: Unix ones, and TCP ones
// when r grants a TCP port (socketConditions; any other socket(2) fails
// with EPERM): no UDP, raw, MPTCP or Unix datagram socket, which Landlock
// does not cover. Unless r grants a Unix socket or a TCP port to connect
// to (MayConnect), connect(2) fails with EPERM too: the plugin can listen
// on and accept from its go-plugin socket, and reach no socket at all,
// whatever the kernel's Landlock ABI (Landlock confines pathname Unix
// sockets only from ABI v9 on).
//
// prog is the filter the plugin host assembled for r (filter.Confined,
// from its cache filter.Programs): no launcher assembles one.
//
// It returns only on failure, and the caller must then exit: the thread
// may be partly confined. Only this thread is confined; execveat ends every
// other thread of the process, so only call it from a process that does
// nothing else (the daemon's launcher mode), on the main thread (locked
// with runtime.LockOSThread in an init function), which carries the
// process's parent-death signal.
func ExecConfined(fd int, argv, env []string, r Rules, prog Program) (abi int, err error) {
	runtime.LockOSThread() // never unlocked: this thread executes the plugin or the process exits
	if len(argv) == 0 {
		return 0, errors.New("empty argv")
	}
	if len(prog) == 0 {
		return 0, errors.New("no seccomp program for the plugin: the host assembles it (filter.Confined)")
	}
	if unix.Gettid() != unix.Getpid() {
		// The executed program would lose the parent-death signal, which
		// only the main thread carries (see launch's init).
		return 0, errors.New("not on the main thread: lock it in an init function")
	}
	profile := PluginProfile(r)
	own := r.Merge(Rules{Exec: []string{fmt.Sprintf("/proc/self/fd/%d", fd)}})
	abi, err = landlockThread(own)
	if err != nil {
		return abi, err
	}
	on, err := seccompAvailable()
	if err != nil {
		return abi, err
	}
	if on {
		if err := prog.load(); err != nil {
			return abi, fmt.Errorf("seccomp %s profile: %w", profile, err)
		}
	}
	return abi, execveat(fd, argv, env)
}

// landlockThread restricts the calling thread only, with no_new_privs set
// on it either way. It returns the kernel's Landlock ABI (0: none, nothing
// restricted).
func landlockThread(r Rules) (int, error) {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	rules, _, release, err := landlockRules(r, systemLDConfig())
	if err != nil {
		return 0, fmt.Errorf("landlock rules: %w", err)
	}
	defer release()
	abi := ABI()
	if abi == 0 {
		return 0, nil
	}
	cfg := landlock.V11.BestEffort()
	if abstractSocket(r.UnixSockets) {
		cfg.Scoped &^= ll.ScopeAbstractUnixSocket
	}
	rfd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return abi, fmt.Errorf("landlock ruleset (ABI v%d): %w", abi, err)
	}
	if rfd < 0 {
		return abi, nil
	}
	defer syscall.Close(rfd)
	if err := ll.LandlockRestrictSelf(rfd, flags); err != nil {
		return abi, fmt.Errorf("landlock restrict (ABI v%d): %w", abi, err)
	}
	return abi, nil
}

// MayConnect reports whether a plugin confined with r may call connect(2):
// only when r grants a Unix socket or a TCP port to connect to. A plugin
// serving go-plugin only listens and accepts.
func MayConnect(r Rules) bool {
	return len(r.UnixSockets) > 0 || len(r.ConnectTCP) > 0
}

// execveat executes the file open as fd.
func execveat(fd int, argv, env []string) error {
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return fmt.Errorf("argv: %w", err)
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	empty, _ := syscall.BytePtrFromString("")
	_, _, errno := syscall.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execveat(%d): %w", fd, errno)
}
