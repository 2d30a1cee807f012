package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// narrowing are the calls with which a confined process narrows its own
// confinement further (the SDK applies a check's own declaration on top of
// what the host imposed) and execveat, with which the host's launcher
// executes the plugin once confined. None of them widens anything: a
// Landlock domain and a seccomp filter only stack, and an executed image
// inherits both and no_new_privs.
var narrowing = []string{"execveat", "prctl", "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"}

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
// prog is the filter as the plugin host assembled it for r (Programs.For);
// nil assembles it here.
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
	if prog == nil {
		if prog, err = ConfinedProgram(r); err != nil {
			return abi, err
		}
	}
	if seccomp.Supported() {
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

// confinedFilter is p's allowlist plus the narrowing calls, on the calling
// thread only, with socket(2) limited to AF_UNIX unless r grants TCP and
// without connect(2) unless MayConnect(r).
func confinedFilter(k programKey) (seccomp.Filter, error) {
	names := append(k.profile.Syscalls(), narrowing...)
	if names == nil {
		return seccomp.Filter{}, fmt.Errorf("unknown seccomp profile %d", int(k.profile))
	}
	group := seccomp.SyscallGroup{Action: seccomp.ActionAllow}
	for _, n := range names {
		if n == "socket" || sendFlagsArg[n] != 0 || (!k.connect && n == "connect") {
			continue
		}
		group.Names = append(group.Names, n)
	}
	group.NamesWithCondtions = append(socketConditions(k.tcp), sendConditions(names)...)
	group.Names = sortUnique(group.Names)
	return seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagLog,
		Policy:     seccomp.Policy{DefaultAction: seccomp.ActionErrno, Syscalls: []seccomp.SyscallGroup{group}},
	}, nil
}

// socketConditions are the socket(2) calls a plugin may make: stream
// sockets only (SOCK_STREAM, optionally with SOCK_NONBLOCK and
// SOCK_CLOEXEC), of AF_UNIX, and with tcp of AF_INET or AF_INET6 with
// protocol 0 or IPPROTO_TCP. Landlock confines TCP ports only, so any
// other socket (UDP, raw, MPTCP, SCTP) would reach the network, or bind
// the daemon's port, unconfined; and a Unix datagram socket could send to
// the journal or syslog without connect(2).
func socketConditions(tcp bool) []seccomp.NameWithConditions {
	eq := func(arg uint32, v uint64) seccomp.Condition {
		return seccomp.Condition{Argument: arg, Operation: seccomp.Equal, Value: v}
	}
	const flags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	stream := []seccomp.Condition{
		{Argument: 1, Operation: seccomp.BitsSet, Value: unix.SOCK_STREAM},
		{Argument: 1, Operation: seccomp.BitsNotSet, Value: ^uint64(unix.SOCK_STREAM | flags)},
	}
	out := []seccomp.NameWithConditions{{Name: "socket", Conditions: append(seccomp.ArgumentConditions{eq(0, unix.AF_UNIX)}, stream...)}}
	if !tcp {
		return out
	}
	for _, family := range []uint64{unix.AF_INET, unix.AF_INET6} {
		for _, proto := range []uint64{0, unix.IPPROTO_TCP} {
			c := append(seccomp.ArgumentConditions{eq(0, family), eq(2, proto)}, stream...)
			out = append(out, seccomp.NameWithConditions{Name: "socket", Conditions: c})
		}
	}
	return out
}

// sendFlagsArg is the argument holding the flags of each send call.
var sendFlagsArg = map[string]uint32{"sendto": 3, "sendmsg": 2, "sendmmsg": 3}

// sendConditions allow the send calls among names only without
// MSG_FASTOPEN: TCP Fast Open connects as it sends, past the missing
// connect(2) and past Landlock's connect_tcp rules.
func sendConditions(names []string) []seccomp.NameWithConditions {
	var out []seccomp.NameWithConditions
	for _, n := range sortUnique(append([]string(nil), names...)) {
		if arg, ok := sendFlagsArg[n]; ok {
			out = append(out, seccomp.NameWithConditions{Name: n, Conditions: seccomp.ArgumentConditions{
				{Argument: arg, Operation: seccomp.BitsNotSet, Value: unix.MSG_FASTOPEN}}})
		}
	}
	return out
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
