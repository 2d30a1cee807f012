// Package launcher is the launcher's own side of package launch: what runs
// in the process the plugin host forks, between the fork and the plugin's
// first instruction, when the host uses its own executable as the launcher
// (test binaries; the daemon when no attestor-launcher is installed beside
// it). It sets no_new_privs, restricts its one thread with the Landlock
// ruleset the host built, installs the seccomp filter the host assembled
// and executes the verified plugin descriptor with execveat(fd, "",
// AT_EMPTY_PATH).
//
// The shipped launcher, cmd/attestor-launcher, is the same contract in C:
// a few system calls and no Go runtime to start at every plugin start. A
// program that hosts plugins with its own executable as the launcher calls
// Main first thing in main: every package linked into it runs its init
// functions at each such start, before Main.
package launcher

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// Env names the variable that puts an executable in launcher mode; its
// value is "<version>,<binary fd>,<ruleset fd>,<seccomp fd>,<restrict
// flags>", the ruleset fd "-" where the kernel has no Landlock (Value). The
// launcher removes it from the plugin's environment.
const Env = "RUNTIME_ATTESTOR_LAUNCH"

// Version names this contract in Env's value. A launcher refuses any other
// version, so a daemon upgraded without the attestor-launcher beside it (or
// the other way round) fails each start with a line saying so, instead of
// a launcher applying descriptors it reads differently.
const Version = "v1"

// Fixed descriptor numbers in the launcher (the host's exec.Cmd
// ExtraFiles 0 to 3).
const (
	// BinaryFD is the verified plugin file, executed by descriptor; it
	// stays open, read-only, in the plugin.
	BinaryFD = 3
	// GrantFD is the plugin's sealed grant (Spec as JSON, without the
	// launcher's filter), left open in the plugin and named there by
	// sandbox.GrantFDEnv; the launcher does not read it.
	GrantFD = 4
	// RulesetFD is the Landlock ruleset (sandbox.PluginRuleset), closed
	// once the launcher restricted itself with it.
	RulesetFD = 5
	// SeccompFD is a sealed memory file holding the launcher's seccomp
	// program (sandbox.Program), closed before the plugin runs.
	SeccompFD = 6
)

// Failed starts the one line the launcher prints on stderr before it exits
// with ExitFailed, so the host can tell a launch failure from a plugin that
// exited.
const Failed = "runtime-attestor launcher: cannot confine and start the plugin: "

// ExitFailed is the launcher's exit status when it cannot start the plugin.
const ExitFailed = 125

// Spec is what the host decides for one plugin process. The launcher gets
// Seccomp in its own file (SeccompFD) and a ruleset made from Rules
// (RulesetFD); the plugin gets the rest as its grant (GrantFD), which it
// reads as a sandbox.Confinement.
type Spec struct {
	Rules sandbox.Rules `json:"rules"`
	// Landlock says whether the kernel has Landlock, so enforces Rules.
	Landlock bool `json:"landlock"`
	// Seccomp is the launcher's filter for Rules, assembled by the host
	// (filter.Programs); the launcher refuses to start a plugin without.
	Seccomp sandbox.Program `json:"-"`
	// PluginSeccomp are the filters the plugin narrows itself with, one
	// per plugin profile, assembled by the host; the launcher leaves them
	// to the plugin.
	PluginSeccomp sandbox.PluginPrograms `json:"plugin_programs,omitempty"`
}

// Value is Env's value for the fixed descriptors: with a ruleset (and its
// restrict flags) or, where the kernel has no Landlock, without.
func Value(ruleset bool, flags uint32) string {
	rs := "-"
	if ruleset {
		rs = strconv.Itoa(RulesetFD)
	}
	return fmt.Sprintf("%s,%d,%s,%d,%d", Version, BinaryFD, rs, SeccompFD, flags)
}

// init keeps, in launcher mode, the main goroutine on the main thread (a
// LockOSThread during init does): the plugin must be executed from the
// thread the host forked, the only one that carries the parent-death
// signal the host set, which a thread created later does not inherit and
// execve keeps only on the executing thread.
func init() {
	if _, ok := os.LookupEnv(Env); ok {
		runtime.LockOSThread()
	}
}

// Active reports whether the process was started in launcher mode.
func Active() bool {
	_, ok := os.LookupEnv(Env)
	return ok
}

// Main runs the launcher when the process is in launcher mode, and returns
// at once otherwise. In launcher mode it never returns: it executes the
// plugin, or exits with ExitFailed after one line on stderr.
func Main() {
	v, ok := os.LookupEnv(Env)
	if !ok {
		return
	}
	err := run(v)
	fmt.Fprintln(os.Stderr, Failed+err.Error())
	os.Exit(ExitFailed)
}

func run(v string) error {
	ruleset, flags, err := parse(v)
	if err != nil {
		return err
	}
	prog, err := readProgram()
	if err != nil {
		return err
	}
	// The plugin gets descriptors 0 to 4 only, whatever else this
	// process inherited: every one from RulesetFD on closes at execveat
	// (the ruleset is closed once applied).
	if err := unix.CloseRange(RulesetFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		closeOnExecFrom(RulesetFD)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, Env+"=") })
	lowerPriority()
	return sandbox.ExecConfined(BinaryFD, os.Args, env, ruleset, flags, prog)
}

// closeOnExecFrom marks the descriptors from first on close-on-exec one at
// a time (kernels before 5.11 have no CLOSE_RANGE_CLOEXEC).
func closeOnExecFrom(first int) {
	var lim unix.Rlimit
	max := 1 << 20
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < uint64(max) {
		max = int(lim.Cur)
	}
	for fd := first; fd < max; fd++ {
		syscall.CloseOnExec(fd)
	}
}

// parse reads Env's value: exactly one of the two forms Value writes.
func parse(v string) (ruleset int, flags uint32, err error) {
	bad := fmt.Errorf("%s=%q: want %q or %q", Env, v, Value(true, 0), Value(false, 0))
	rest, ok := strings.CutPrefix(v, Version+",")
	switch {
	case !ok && strings.HasPrefix(v, "v"):
		return 0, 0, fmt.Errorf("%s=%q: another contract version, this launcher speaks %s only: install the attestor-launcher built with this daemon", Env, v, Version)
	case !ok:
		return 0, 0, bad
	}
	f := strings.Split(rest, ",")
	if len(f) != 4 || f[0] != strconv.Itoa(BinaryFD) || f[2] != strconv.Itoa(SeccompFD) {
		return 0, 0, bad
	}
	n, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return 0, 0, bad
	}
	switch f[1] {
	case strconv.Itoa(RulesetFD):
		return RulesetFD, uint32(n), nil
	case "-":
		if n != 0 {
			return 0, 0, bad
		}
		return -1, 0, nil
	}
	return 0, 0, bad
}

// readProgram reads the seccomp program at offset 0 through the
// descriptor number, with no *os.File whose finalizer could close it.
func readProgram() (sandbox.Program, error) {
	raw, err := io.ReadAll(io.NewSectionReader(fdReader(SeccompFD), 0, sandbox.MaxProgramBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the seccomp program: %w", err)
	}
	if len(raw) > sandbox.MaxProgramBytes {
		return nil, errors.New("seccomp program over the kernel's 4,096 instructions")
	}
	return sandbox.Program(raw), nil
}

// fdReader reads a descriptor with pread, leaving it open.
type fdReader int

func (r fdReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := unix.Pread(int(r), p, off)
	if err != nil {
		return 0, err
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}
