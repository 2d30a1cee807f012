package sandbox

import (
	"fmt"
	"slices"
)

// Profile is a seccomp-BPF system call allowlist.
//
// A call outside the list fails with EPERM (SECCOMP_RET_ERRNO) and is
// logged by the kernel's audit subsystem (SECCOMP_FILTER_FLAG_LOG), rather
// than killing the process: Go code sees an ordinary error and the daemon
// turns it into a finding (or a plugin into core.plugin_failed) instead of
// dying, so one syscall a new kernel, libc or Go release starts using
// cannot take the attestor down and with it every service gated on it. The
// call is refused either way; the audit record says which one it was.
//
// The lists were derived by tracing (strace -f -c) the daemon's plugin
// host, every kind of check plugin and the commands they run, plus what the
// Go runtime and glibc's loader need on paths the traces may not reach
// (signals, preemption, thread creation). See docs/deployment.md.
type Profile int

// The profiles.
const (
	// ProfilePlugin is a check plugin that runs no command: the Go
	// runtime, files, Unix and TCP sockets, the gRPC server. No execve.
	ProfilePlugin Profile = iota + 1
	// ProfilePluginExec is a check plugin that runs commands
	// (rpm-ostree): ProfilePlugin plus execve, waiting for children and
	// what a glibc/GLib program needs.
	ProfilePluginExec
	// ProfileDaemon is the daemon: ProfilePluginExec plus listening
	// sockets, process groups and sessions, and the calls its plugins
	// need to restrict themselves further (prctl, seccomp, landlock_*).
	ProfileDaemon
)

func (p Profile) String() string {
	switch p {
	case ProfilePlugin:
		return "plugin"
	case ProfilePluginExec:
		return "plugin-exec"
	case ProfileDaemon:
		return "daemon"
	}
	return fmt.Sprintf("profile(%d)", int(p))
}

// goRuntime is what every Go program here calls once running: memory,
// threads, signals, timers, the netpoller, files, sockets, randomness.
var goRuntime = []string{
	// memory
	"brk", "madvise", "mincore", "mmap", "mprotect", "mremap", "munmap",
	// threads, scheduling, futexes
	"clone", "clone3", "exit", "exit_group", "futex", "get_robust_list", "getpid", "getppid", "gettid",
	"nanosleep", "clock_nanosleep", "restart_syscall", "rseq", "sched_getaffinity", "sched_yield", "set_robust_list",
	"set_tid_address", "arch_prctl", "getrlimit", "prlimit64", "getrusage", "sysinfo", "uname",
	// signals (async preemption uses tgkill with SIGURG)
	"kill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait",
	"sigaltstack", "tgkill", "tkill",
	// time
	"clock_getres", "clock_gettime", "gettimeofday", "time",
	// netpoller and pipes
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd2",
	"pipe", "pipe2", "poll", "ppoll", "pselect6", "select",
	// file descriptors and files
	"access", "close", "close_range", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64",
	"fallocate", "fchdir", "fchmod", "fcntl", "fdatasync", "flock", "fstat", "fstatfs", "fsync",
	"ftruncate", "getcwd", "getdents", "getdents64", "ioctl", "lseek", "lstat", "newfstatat", "open",
	"openat", "openat2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readlink",
	"readlinkat", "readv", "stat", "statfs", "statx", "umask", "write", "writev",
	"mkdir", "mkdirat", "rename", "renameat", "renameat2", "rmdir", "unlink", "unlinkat",
	"fgetxattr", "flistxattr", "getxattr", "lgetxattr", "listxattr", "llistxattr",
	"copy_file_range", "sendfile", "splice", "memfd_create",
	// sockets (Unix for go-plugin, TCP client for vendors)
	"connect", "getpeername", "getsockname", "getsockopt", "recvfrom", "recvmmsg", "recvmsg", "sendmmsg",
	"sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketpair",
	// credentials (read only)
	"getegid", "geteuid", "getgid", "getgroups", "getresgid", "getresuid", "getuid", "capget",
	"getpgid", "getpgrp", "getsid", "getpriority",
	// randomness
	"getrandom",
}

// listening is what a server (and go-plugin's server side) needs.
var listening = []string{"accept", "accept4", "bind", "listen"}

// exec is what running and waiting for a child process needs, plus what a
// glibc/GLib program (rpm-ostree, a shell) calls once exec'd that a Go
// program does not.
var execCalls = []string{
	"execve", "execveat", "vfork", "wait4", "waitid", "pidfd_open", "pidfd_send_signal",
	"inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
	"signalfd", "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_settime",
	"sched_getparam", "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
	"chdir", "fchmodat", "chmod", "link", "linkat", "symlink", "symlinkat",
	"utimensat", "futimesat", "membarrier", "prctl",
	"setpgid", // a child started in a process group of its own (rpm-ostree)
	// A child in a session of its own: it then leaves the plugin's
	// process group, but not the plugin's PID namespace or the service's
	// cgroup, which is what ends it with the plugin.
	"setsid",
}

// daemonOnly is what the daemon needs beyond running plugins: sessions and
// process groups for its children, and the calls with which its children
// narrow their own sandbox (they inherit this filter) and lower their own
// priority (setpriority: the launcher sets nice 19 before it executes a
// plugin, whose own profile then refuses it).
var daemonOnly = []string{
	"setpgid", "setsid", "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
	"setpriority",
}

// Syscalls returns the profile's allowlist, sorted.
func (p Profile) Syscalls() []string {
	var out []string
	switch p {
	case ProfilePlugin:
		out = slices.Concat(goRuntime, listening)
	case ProfilePluginExec:
		out = slices.Concat(goRuntime, listening, execCalls)
	case ProfileDaemon:
		out = slices.Concat(goRuntime, listening, execCalls, daemonOnly)
	default:
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}
