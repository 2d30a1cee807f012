// Package launch is the plugin host's launcher: the small step between the
// daemon's fork and a plugin's first instruction in which the host, not the
// plugin, confines the plugin process.
//
// The host decides everything before it forks: it opens and hashes the
// plugin file, builds the Landlock ruleset for the plugin's rules from
// that descriptor (sandbox.PluginRuleset) and takes the seccomp program
// assembled for them (filter.Programs). It then starts the launcher
// (cmd/attestor-launcher beside the daemon, see Installed, else its own
// executable again, /proc/self/exe, in launcher mode: package launcher)
// with four inherited descriptors: the plugin file, the plugin's sealed
// grant, the ruleset and a sealed memory file holding the program. The
// launcher sets no_new_privs, restricts itself with the ruleset, installs
// the program and executes the verified descriptor with execveat(fd, "",
// AT_EMPTY_PATH): the bytes that were hashed run, from no path anyone
// could rename over, and nothing the plugin's code does comes before its
// confinement. The grant stays open in the plugin, read-only and sealed,
// named by sandbox.GrantFDEnv: the SDK reads it to narrow itself and to
// explain a denial.
//
// A program that hosts plugins calls Main first thing in its main (the
// daemon, and test binaries that run a plugin host in-process).
package launch

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch/launcher"
)

// The launcher's descriptor layout, environment variable and failure
// report (package launcher, which see).
const (
	Env        = launcher.Env
	BinaryFD   = launcher.BinaryFD
	GrantFD    = launcher.GrantFD
	RulesetFD  = launcher.RulesetFD
	SeccompFD  = launcher.SeccompFD
	Failed     = launcher.Failed
	ExitFailed = launcher.ExitFailed
)

// Spec is what the host tells the launcher.
type Spec = launcher.Spec

// Main runs the launcher when the process is in launcher mode, and returns
// at once otherwise (launcher.Main).
func Main() { launcher.Main() }

// Value is Env's value (launcher.Value).
func Value(ruleset bool, flags uint32) string { return launcher.Value(ruleset, flags) }

// GrantFile returns a sealed, read-only memory file holding s as the
// plugin's grant (without the launcher's filter), to pass as GrantFD. The
// caller closes it once the launcher started.
func GrantFile(s Spec) (*os.File, error) {
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
