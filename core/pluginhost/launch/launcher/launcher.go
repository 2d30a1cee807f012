// Package launcher is the launcher's own side of package launch: what runs
// in the process the plugin host forks, between the fork and the plugin's
// first instruction. It reads the rules the host decided, confines its one
// thread (Landlock, seccomp, no_new_privs) and executes the verified plugin
// descriptor with execveat(fd, "", AT_EMPTY_PATH).
//
// It imports only what that needs (internal/sandbox and the standard
// library): every package linked into the launcher runs its init functions
// at each plugin start, before Main. The shipped launcher is its own small
// executable, cmd/attestor-launcher; a program that hosts plugins with its
// own executable as the launcher (test binaries, the daemon when no
// attestor-launcher is installed beside it) calls Main first thing in main.
package launcher

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// Env names the variable that puts an executable in launcher mode; its
// value is "<binary fd>,<rules fd>". The launcher removes it from the
// plugin's environment.
const Env = "RUNTIME_ATTESTOR_LAUNCH"

// Fixed descriptor numbers in the launcher (the host's exec.Cmd
// ExtraFiles 0 and 1).
const (
	BinaryFD = 3
	RulesFD  = 4
)

// Failed starts the one line the launcher prints on stderr before it exits
// with ExitFailed, so the host can tell a launch failure from a plugin that
// exited.
const Failed = "runtime-attestor launcher: cannot confine and start the plugin: "

// ExitFailed is the launcher's exit status when it cannot start the plugin.
const ExitFailed = 125

// maxRules bounds the rules file: a policy that lists thousands of service
// binaries stays far below.
const maxRules = 16 << 20

// Spec is what the host tells the launcher. The launcher leaves it open in
// the plugin as its grant, which the plugin reads as a
// sandbox.Confinement: the same fields, but Seccomp.
type Spec struct {
	Rules sandbox.Rules `json:"rules"`
	// Landlock says whether the kernel has Landlock, so enforces Rules.
	Landlock bool `json:"landlock"`
	// Seccomp is the launcher's filter for Rules, assembled by the host
	// (filter.Programs); the launcher refuses to start a plugin without.
	Seccomp sandbox.Program `json:"seccomp"`
	// PluginSeccomp are the filters the plugin narrows itself with, one
	// per plugin profile, assembled by the host; the launcher leaves them
	// to the plugin.
	PluginSeccomp sandbox.PluginPrograms `json:"plugin_programs,omitempty"`
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
	if v != strconv.Itoa(BinaryFD)+","+strconv.Itoa(RulesFD) {
		return fmt.Errorf("%s=%q: want %d,%d", Env, v, BinaryFD, RulesFD)
	}
	spec, err := readSpec()
	if err != nil {
		return err
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, Env+"=") || strings.HasPrefix(kv, sandbox.GrantFDEnv+"=")
	})
	// The rules stay open in the plugin, read-only and sealed, as its
	// grant (sandbox.HostConfinement): the SDK narrows the plugin with the
	// programs in it and, where Landlock enforces the rules, tells a
	// denial by the sandbox from another permission error with them.
	env = append(env, sandbox.GrantFDEnv+"="+strconv.Itoa(RulesFD))
	lowerPriority()
	_, err = sandbox.ExecConfined(BinaryFD, os.Args, env, spec.Rules, spec.Seccomp)
	return err
}

func readSpec() (Spec, error) {
	// Read at offset 0 through the descriptor number, with no *os.File
	// whose finalizer could close it before the plugin inherits it.
	raw, err := io.ReadAll(io.NewSectionReader(fdReader(RulesFD), 0, maxRules+1))
	if err != nil {
		return Spec{}, fmt.Errorf("read the rules: %w", err)
	}
	if len(raw) > maxRules {
		return Spec{}, fmt.Errorf("rules over %d bytes", maxRules)
	}
	var s Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return Spec{}, fmt.Errorf("decode the rules: %w", err)
	}
	if err := s.Rules.Validate(); err != nil {
		return Spec{}, fmt.Errorf("rules: %w", err)
	}
	return s, nil
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
