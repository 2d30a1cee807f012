package sandbox

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Program is an assembled seccomp-BPF program, as the kernel takes it: one
// struct sock_filter (code u16, jt u8, jf u8, k u32, in host byte order)
// every 8 bytes. The plugin host assembles the launcher's filter once per
// daemon run (Programs) and hands it over in the sealed rules file, so that
// no plugin start pays for assembling it again.
type Program []byte

// maxProgram is the kernel's bound on a classic BPF program
// (BPF_MAXINSNS instructions).
const maxProgram = 4096

// ConfinedProgram assembles the filter ExecConfined installs for a plugin
// with rules r.
func ConfinedProgram(r Rules) (Program, error) {
	f, err := confinedFilter(keyOf(r))
	if err != nil {
		return nil, err
	}
	return assemble(f)
}

func assemble(f seccomp.Filter) (Program, error) {
	insts, err := f.Policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble the seccomp policy: %w", err)
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("assemble the seccomp program: %w", err)
	}
	p := make(Program, 0, 8*len(raw))
	for _, in := range raw {
		p = binary.NativeEndian.AppendUint16(p, in.Op)
		p = append(p, in.Jt, in.Jf)
		p = binary.NativeEndian.AppendUint32(p, in.K)
	}
	return p, nil
}

// load installs p on the calling thread only (no TSYNC), logging refused
// calls (SECCOMP_FILTER_FLAG_LOG), as ExecConfined's own filter is; the
// caller has set no_new_privs. The kernel checks the program itself.
func (p Program) load() error { return p.install(seccomp.FilterFlagLog) }

// InstallProgram installs p, as InstallSeccomp installs a profile's
// filter: on every thread of the process (TSYNC), with no_new_privs,
// refused calls logged. It reports false, and no error, when the kernel
// has no seccomp.
func InstallProgram(p Program) (bool, error) {
	if !seccomp.Supported() {
		return false, nil
	}
	if err := seccomp.SetNoNewPrivs(); err != nil {
		return false, fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	return true, p.install(seccomp.FilterFlagTSync | seccomp.FilterFlagLog)
}

func (p Program) install(flags seccomp.FilterFlag) error {
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

// PluginProgram assembles the filter of the profile a plugin with rules r
// narrows itself with (Profile.Filter), for InstallProgram.
func PluginProgram(r Rules) (Program, error) {
	f, err := PluginProfile(r).Filter()
	if err != nil {
		return nil, err
	}
	return assemble(f)
}

// programKey is all of a plugin's rules its filter depends on: the whole
// input of confinedFilter, so that a filter cached under a key is the
// one its rules make.
type programKey struct {
	profile      Profile
	connect, tcp bool
	plugin       bool // the plugin's own filter (PluginProgram), not the launcher's
}

func keyOf(r Rules) programKey {
	return programKey{profile: PluginProfile(r), connect: MayConnect(r), tcp: len(r.BindTCP) > 0 || len(r.ConnectTCP) > 0}
}

// Programs assembles each distinct launcher filter once: a filter depends
// on a plugin's rules only through its profile, whether it may connect and
// whether it may use TCP (programKey), so a daemon has at most eight, and
// a plugin's own filter only through its profile (two more). The
// zero value is ready; it is safe for concurrent use.
type Programs struct {
	mu sync.Mutex
	m  map[programKey]Program
}

// For returns the program ExecConfined would assemble for r.
func (ps *Programs) For(r Rules) (Program, error) { return ps.get(keyOf(r), r, ConfinedProgram) }

// ForPlugin returns PluginProgram(r).
func (ps *Programs) ForPlugin(r Rules) (Program, error) {
	return ps.get(programKey{profile: PluginProfile(r), plugin: true}, r, PluginProgram)
}

func (ps *Programs) get(k programKey, r Rules, assemble func(Rules) (Program, error)) (Program, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[k]; ok {
		return p, nil
	}
	p, err := assemble(r)
	if err != nil {
		return nil, err
	}
	if ps.m == nil {
		ps.m = map[programKey]Program{}
	}
	ps.m[k] = p
	return p, nil
}
