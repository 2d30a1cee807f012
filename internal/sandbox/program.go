package sandbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Program is an assembled seccomp-BPF program, as the kernel takes it: one
// struct sock_filter (code u16, jt u8, jf u8, k u32, in host byte order)
// every 8 bytes. Only the daemon assembles programs (package
// internal/sandbox/filter), once per run; the launcher and the plugins
// load the bytes they are handed, in sealed memory files, and link no
// assembler.
type Program []byte

// ProgramOf encodes instructions as a Program.
func ProgramOf(insts []unix.SockFilter) Program {
	p := make(Program, 0, 8*len(insts))
	for _, in := range insts {
		p = binary.NativeEndian.AppendUint16(p, in.Code)
		p = append(p, in.Jt, in.Jf)
		p = binary.NativeEndian.AppendUint32(p, in.K)
	}
	return p
}

// maxProgram is the kernel's bound on a classic BPF program
// (BPF_MAXINSNS instructions).
const maxProgram = 4096

// MaxProgramBytes is the size of the largest Program the kernel takes.
const MaxProgramBytes = 8 * maxProgram

// load installs p on the calling thread only (no TSYNC), logging refused
// calls (SECCOMP_FILTER_FLAG_LOG), as ExecConfined's own filter is; the
// caller has set no_new_privs. The kernel checks the program itself.
func (p Program) load() error { return p.install(unix.SECCOMP_FILTER_FLAG_LOG) }

// InstallProgram installs p, as the daemon installs its own profile's
// filter: on every thread of the process (TSYNC), with no_new_privs,
// refused calls logged. It reports false, and no error, when the kernel
// has no seccomp; an error when seccomp(2) itself is refused.
func InstallProgram(p Program) (bool, error) {
	if ok, err := seccompAvailable(); !ok {
		return false, err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return false, fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	return true, p.install(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG)
}

// seccompAvailable reports whether the kernel has seccomp:
// SECCOMP_SET_MODE_STRICT with flags, which are invalid for it, fails with
// EINVAL where seccomp exists, with ENOSYS where it does not. Any other
// answer is a filter around this process that refuses seccomp(2): an
// error, not a kernel without seccomp, so that no filter is left out
// silently.
func seccompAvailable() (bool, error) {
	_, _, errno := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_STRICT, 1, 0)
	switch errno {
	case unix.EINVAL:
		return true, nil
	case unix.ENOSYS:
		// A kernel without seccomp also fails PR_GET_SECCOMP (EINVAL);
		// one that answers it has seccomp, and a filter around this
		// process hides seccomp(2) behind ENOSYS.
		if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == nil {
			return false, errors.New("seccomp(2) answers ENOSYS on a kernel that has seccomp (prctl PR_GET_SECCOMP works): a filter around this process hides it, so no seccomp filter can be installed")
		}
		return false, nil
	}
	return false, fmt.Errorf("seccomp(2) is refused (%v): a filter around this process denies it, so no seccomp filter can be installed", errno)
}

// launchSeccomp is seccompAvailable for the launcher, which installs the
// filter a plugin runs its first instruction under: an ENOSYS counts as a
// kernel without seccomp only when /proc/self/status has no Seccomp line
// either, a field a filter cannot change (a filter around the launcher
// could make PR_GET_SECCOMP fail as well as seccomp(2)). Call it before
// Landlock, which would hide the status.
func launchSeccomp() (bool, error) {
	on, err := seccompAvailable()
	if on || err != nil {
		return on, err
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, fmt.Errorf("seccomp(2) answers ENOSYS, and /proc/self/status (which tells a kernel without seccomp from a filter hiding it) cannot be read: %w", err)
	}
	if bytes.HasPrefix(status, []byte("Seccomp:")) || bytes.Contains(status, []byte("\nSeccomp:")) {
		return false, errors.New("seccomp(2) answers ENOSYS on a kernel that has seccomp (/proc/self/status shows it): a filter around this process hides it, so no seccomp filter can be installed")
	}
	return false, nil
}

// PluginPrograms are the filters the host assembled for a plugin to narrow
// itself with, by profile name (Profile.String): the launcher hands them
// over in the plugin's grant (HostConfinement).
type PluginPrograms map[string]Program

// For returns p's program, nil when the host gave none.
func (pp PluginPrograms) For(p Profile) Program { return pp[p.String()] }

func (p Program) install(flags uintptr) error {
	n := len(p) / 8
	if len(p)%8 != 0 || n == 0 || n > maxProgram {
		return fmt.Errorf("seccomp program of %d bytes: want 1 to %d instructions of 8 bytes", len(p), maxProgram)
	}
	filter := make([]unix.SockFilter, n)
	for i := range filter {
		b := p[8*i:]
		filter[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	prog := unix.SockFprog{Len: uint16(n), Filter: &filter[0]}
	r, _, errno := syscall.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	switch {
	case errno != 0:
		return fmt.Errorf("load the seccomp program: %w", errno)
	case r != 0: // TSYNC: the id of a thread that could not be synchronised
		return fmt.Errorf("load the seccomp program: thread %d could not take it", r)
	}
	return nil
}
