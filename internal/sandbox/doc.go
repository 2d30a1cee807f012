// Package sandbox restricts the calling process with Landlock and seccomp-BPF.
// The runtime-attestor daemon uses it once its policy is loaded, the SDK uses
// it for every check plugin that declares its needs (sdk.Sandboxer), and a
// vendor can call it directly.
//
// Two mechanisms, applied in this order by Apply:
//
//   - Landlock (Rules): the file hierarchies the process may still read,
//     write or execute, the devices it may open, the pathname Unix sockets
//     it may connect to and the TCP ports it may bind or connect to.
//     Everything else is denied with EACCES. Best effort: on a kernel
//     without Landlock nothing is restricted and Status.Landlock is false;
//     on a kernel with Landlock a failure to restrict is an error. Executing
//     a file also needs its ELF interpreter, its shared libraries and, for a
//     script, its "#!" interpreter: Apply finds and grants them itself.
//   - seccomp-BPF (Profile): an allowlist of system calls, installed on
//     every thread (TSYNC) with no_new_privs set. A call outside the list
//     fails with EPERM; the process is not killed (see Profile). This
//     package loads programs (Program) and assembles none: the daemon
//     assembles them (package internal/sandbox/filter) and hands each
//     plugin its own, so that no launcher or plugin start pays for the
//     assembler's tables.
//
// Both are inherited by every child process and cannot be lifted, only
// narrowed further. A process that starts other programs after it
// restricts itself must therefore allow what those programs need: the
// daemon's rule set is its own needs plus the union of its plugins' (see
// DaemonRules), and each plugin narrows itself again to exactly its own.
//
// A minimal plugin-side use, outside the SDK:
//
//	host, _ := sandbox.HostConfinement()
//	st, err := sandbox.Apply(sandbox.Rules{
//		ReadOnly: []string{"/sys/firmware/efi/efivars"},
//	}, sandbox.ProfilePlugin, host.Programs.For(sandbox.ProfilePlugin))
//	if err != nil {
//		return fmt.Errorf("sandbox: %w", err)
//	}
//	logger.Info("sandboxed", "landlock_abi", st.ABI, "landlock", st.Landlock, "seccomp", st.Seccomp)
package sandbox
