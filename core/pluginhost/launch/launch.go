// Package launch is the plugin host's launcher: the small step between the
// daemon's fork and a plugin's first instruction in which the host, not the
// plugin, confines the plugin process.
//
// The host starts its own executable again (/proc/self/exe) in launcher
// mode, with two inherited descriptors: the plugin file it verified (opened
// and hashed through that descriptor) and a sealed memory file holding the
// rules the host decided for this plugin. The launcher reads the rules,
// confines its one thread (Landlock, seccomp, no_new_privs) and executes
// the verified descriptor with execveat(fd, "", AT_EMPTY_PATH): the bytes
// that were hashed run, from no path anyone could rename over, and nothing
// the plugin's code does comes before its confinement. The rules file stays
// open in the plugin, read-only and sealed, named by sandbox.GrantFDEnv:
// the SDK reads its grant there to explain a denial.
//
// A program that hosts plugins calls Main first thing in its main (the
// daemon, and test binaries that run a plugin host in-process).
package launch

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

// Spec is what the host tells the launcher.
type Spec struct {
	Rules sandbox.Rules `json:"rules"`
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
	// grant (sandbox.HostGrant): where Landlock enforces them, the SDK
	// tells a denial by the sandbox from another permission error with it.
	if sandbox.ABI() > 0 {
		env = append(env, sandbox.GrantFDEnv+"="+strconv.Itoa(RulesFD))
	}
	lowerPriority()
	_, err = sandbox.ExecConfined(BinaryFD, os.Args, env, spec.Rules)
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

// RulesFile returns a sealed, read-only memory file holding s, to pass to
// the launcher as RulesFD. The caller closes it once the launcher started.
func RulesFile(s Spec) (*os.File, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode the plugin's rules: %w", err)
	}
	f, err := SealedFile("attestor-plugin-rules", raw)
	if err != nil {
		return nil, fmt.Errorf("the plugin's rules: %w", err)
	}
	return f, nil
}

// SealedFile returns a memory file holding data, positioned at its start
// and sealed (it can no longer be written, grown, shrunk or unsealed), for
// a child process to read. The caller closes it.
func SealedFile(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("write: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("rewind: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal: %w", err)
	}
	return f, nil
}
