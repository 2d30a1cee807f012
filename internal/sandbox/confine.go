package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// PluginRuleset builds the Landlock ruleset that confines a plugin with r:
// r plus executing (and reading) the file open as exe, and what running it
// needs (its ELF interpreter and libraries, found through the
// descriptor). The plugin host builds it before it starts the launcher,
// which restricts itself with the descriptor (landlock_restrict_self) and
// executes exe: a ruleset is bound to the files its rules were made from,
// so what the plugin may reach is fixed here, in the host, whatever a path
// names later. flags are the ones landlock_restrict_self takes with it.
//
// It returns a nil file, and no error, where the kernel has no Landlock:
// file access is then not narrowed (best effort, as Apply). The caller
// closes the file once the launcher started.
//
// guard, when not nil, sees the rules as the real paths of what they will
// grant (each path opened once, links followed, and the rule made from
// that descriptor) and may refuse them: the daemon checks there that no
// grant reaches its own files, with no moment left for a link to change.
func PluginRuleset(r Rules, exe *os.File, guard func(real Rules) error) (rs *os.File, flags uint32, err error) {
	own := r.Merge(Rules{Exec: []string{fmt.Sprintf("/proc/self/fd/%d", exe.Fd())}})
	rules, _, release, err := landlockRules(own, systemLDConfig(), guard)
	if err != nil {
		return nil, 0, fmt.Errorf("landlock rules: %w", err)
	}
	defer release()
	abi := ABI()
	if abi == 0 {
		return nil, 0, nil
	}
	cfg := landlock.V11.BestEffort()
	if abstractSocket(r.UnixSockets) {
		cfg.Scoped &^= ll.ScopeAbstractUnixSocket
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return nil, 0, fmt.Errorf("landlock ruleset (ABI v%d): %w", abi, err)
	}
	if fd < 0 {
		return nil, 0, nil
	}
	return os.NewFile(uintptr(fd), "landlock-ruleset"), flags, nil
}

// ExecConfined confines the calling thread and then executes the file open
// as fd, with argv and env, through execveat(fd, "", AT_EMPTY_PATH): the
// very file the descriptor refers to, never a path. It sets no_new_privs,
// restricts the thread with the Landlock ruleset open as ruleset (from
// PluginRuleset, with its flags; -1 where the kernel has no Landlock) and
// installs prog, the seccomp filter the plugin host assembled for the
// plugin's rules (filter.Confined): its profile, sockets limited to stream
// sockets (Unix ones, and TCP ones when the rules grant a TCP port; no UDP,
// raw, MPTCP or Unix datagram socket, which Landlock does not cover), and
// connect(2) only when the rules grant something to connect to
// (MayConnect). The executed program starts confined: its first
// instruction already runs inside the domain and the filter, which it can
// narrow, never lift.
//
// cmd/attestor-launcher does the same in a few system calls, without a Go
// runtime to start; this is the same step for a host that uses its own
// executable as the launcher (package launcher).
//
// It returns only on failure, and the caller must then exit: the thread
// may be partly confined. Only this thread is confined; execveat ends every
// other thread of the process, so only call it from a process that does
// nothing else (launcher mode), on the main thread (locked with
// runtime.LockOSThread in an init function), which carries the process's
// parent-death signal.
func ExecConfined(fd int, argv, env []string, ruleset int, flags uint32, prog Program) error {
	runtime.LockOSThread() // never unlocked: this thread executes the plugin or the process exits
	if len(argv) == 0 {
		return errors.New("empty argv")
	}
	if len(prog) == 0 {
		return errors.New("no seccomp program for the plugin: the host assembles it (filter.Confined)")
	}
	if unix.Gettid() != unix.Getpid() {
		// The executed program would lose the parent-death signal, which
		// only the main thread carries (see launcher's init).
		return errors.New("not on the main thread: lock it in an init function")
	}
	on, err := launchSeccomp() // before Landlock, which hides /proc
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	if ruleset >= 0 {
		err := ll.LandlockRestrictSelf(ruleset, flags)
		_ = syscall.Close(ruleset)
		if err != nil {
			return fmt.Errorf("landlock restrict (ABI v%d): %w", ABI(), err)
		}
	}
	if on {
		if err := prog.load(); err != nil {
			return fmt.Errorf("seccomp: %w", err)
		}
	}
	return execveat(fd, argv, env)
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
