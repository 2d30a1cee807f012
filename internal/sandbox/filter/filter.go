// Package filter assembles the sandbox's seccomp-BPF programs
// (sandbox.Program) from its profiles and rules.
//
// Only the daemon links it. It assembles each distinct program once per
// run (Programs) and hands the bytes over: to the launcher in a sealed file,
// which loads them on the thread that executes the plugin
// (sandbox.ExecConfined), and to each plugin in its grant, with which the
// plugin narrows itself (sandbox.InstallProgram). go-seccomp-bpf's system
// call tables, built by its init functions, cost a process about 0.4 ms
// before main, which no launcher or plugin start then pays.
package filter

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// Narrowing are the calls the launcher's filter allows on top of a
// plugin's profile: those with which a confined process narrows its own
// confinement further (the SDK applies a check's own declaration on top of
// what the host imposed) and execveat, with which the launcher executes the
// plugin once confined. None of them widens anything: a Landlock domain
// and a seccomp filter only stack, and an executed image inherits both and
// no_new_privs. A plugin's own filter (Profile) takes them away again.
var Narrowing = []string{"execveat", "prctl", "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"}

// Profile assembles p's filter: its allowlist, EPERM for everything else.
// Install it with sandbox.InstallProgram (every thread, no_new_privs,
// refused calls logged).
func Profile(p sandbox.Profile) (sandbox.Program, error) {
	f, err := profileFilter(p)
	if err != nil {
		return nil, err
	}
	return assemble(f)
}

// Install assembles p's filter and installs it on every thread of the
// process, as sandbox.InstallProgram does. It reports false, and no error,
// when the kernel has no seccomp.
func Install(p sandbox.Profile) (bool, error) {
	prog, err := Profile(p)
	if err != nil {
		return false, err
	}
	on, err := sandbox.InstallProgram(prog)
	if err != nil {
		return false, fmt.Errorf("seccomp %s profile: %w", p, err)
	}
	return on, nil
}

// Confined assembles the filter the launcher installs for a plugin with
// rules r (sandbox.ExecConfined): its profile plus Narrowing, socket(2)
// limited to stream sockets, connect(2) only when r may connect.
func Confined(r sandbox.Rules) (sandbox.Program, error) {
	f, err := confinedFilter(keyOf(r))
	if err != nil {
		return nil, err
	}
	return assemble(f)
}

func profileFilter(p sandbox.Profile) (seccomp.Filter, error) {
	names := p.Syscalls()
	if names == nil {
		return seccomp.Filter{}, fmt.Errorf("unknown seccomp profile %d", int(p))
	}
	return seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync | seccomp.FilterFlagLog,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionErrno,
			Syscalls:      []seccomp.SyscallGroup{{Action: seccomp.ActionAllow, Names: names}},
		},
	}, nil
}

func assemble(f seccomp.Filter) (sandbox.Program, error) {
	insts, err := f.Policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble the seccomp policy: %w", err)
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("assemble the seccomp program: %w", err)
	}
	p := make(sandbox.Program, 0, 8*len(raw))
	for _, in := range raw {
		p = binary.NativeEndian.AppendUint16(p, in.Op)
		p = append(p, in.Jt, in.Jf)
		p = binary.NativeEndian.AppendUint32(p, in.K)
	}
	return p, nil
}

// key is all of a plugin's rules its launcher filter depends on: the whole
// input of confinedFilter, so that a filter cached under a key is the one
// its rules make.
type key struct {
	profile      sandbox.Profile
	connect, tcp bool
	own          bool // the profile's own filter (Profile), not the launcher's
}

func keyOf(r sandbox.Rules) key {
	return key{profile: sandbox.PluginProfile(r), connect: sandbox.MayConnect(r), tcp: len(r.BindTCP) > 0 || len(r.ConnectTCP) > 0}
}

// confinedFilter is k's profile allowlist plus Narrowing, on the calling
// thread only, with socket(2) limited to AF_UNIX unless k allows TCP and
// without connect(2) unless k may connect.
func confinedFilter(k key) (seccomp.Filter, error) {
	names := k.profile.Syscalls()
	if names == nil {
		return seccomp.Filter{}, fmt.Errorf("unknown seccomp profile %d", int(k.profile))
	}
	names = append(names, Narrowing...)
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

func sortUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// Programs assembles each distinct program once. A launcher filter
// depends on a plugin's rules only through its profile, whether it may
// connect and whether it may use TCP (key), so a daemon has at most
// eight, and a plugin's own filter only on its profile (two more). The
// zero value is ready; it is safe for concurrent use.
type Programs struct {
	mu sync.Mutex
	m  map[key]sandbox.Program
}

// For returns Confined(r).
func (ps *Programs) For(r sandbox.Rules) (sandbox.Program, error) {
	return ps.get(keyOf(r), func() (sandbox.Program, error) { return Confined(r) })
}

// ForProfile returns Profile(p).
func (ps *Programs) ForProfile(p sandbox.Profile) (sandbox.Program, error) {
	return ps.get(key{profile: p, own: true}, func() (sandbox.Program, error) { return Profile(p) })
}

// PluginPrograms returns the filters a plugin may narrow itself with, by
// profile name (sandbox.PluginPrograms): one per plugin profile, so that
// a plugin granted more than it declares finds the filter of its own
// declaration's profile.
func (ps *Programs) PluginPrograms() (sandbox.PluginPrograms, error) {
	out := sandbox.PluginPrograms{}
	for _, p := range []sandbox.Profile{sandbox.ProfilePlugin, sandbox.ProfilePluginExec} {
		prog, err := ps.ForProfile(p)
		if err != nil {
			return nil, err
		}
		out[p.String()] = prog
	}
	return out, nil
}

func (ps *Programs) get(k key, assemble func() (sandbox.Program, error)) (sandbox.Program, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[k]; ok {
		return p, nil
	}
	p, err := assemble()
	if err != nil {
		return nil, err
	}
	if ps.m == nil {
		ps.m = map[key]sandbox.Program{}
	}
	ps.m[k] = p
	return p, nil
}

// Apply is sandbox.Apply(r, p, Profile(p)): for a process that confines
// itself, with no host to hand it a program.
func Apply(r sandbox.Rules, p sandbox.Profile) (sandbox.Status, error) {
	prog, err := Profile(p)
	if err != nil {
		return sandbox.Status{Profile: p.String()}, err
	}
	return sandbox.Apply(r, p, prog)
}

// ApplyDaemon is sandbox.ApplyDaemon with the daemon profile's program.
func ApplyDaemon(d sandbox.DaemonPaths, plugins ...sandbox.Rules) (sandbox.Rules, sandbox.Status, error) {
	prog, err := Profile(sandbox.ProfileDaemon)
	if err != nil {
		return sandbox.Rules{}, sandbox.Status{Profile: sandbox.ProfileDaemon.String()}, err
	}
	return sandbox.ApplyDaemon(d, prog, plugins...)
}
