// Package launch is the plugin host's launcher: the small step between the
// daemon's fork and a plugin's first instruction in which the host, not the
// plugin, confines the plugin process.
//
// The host starts the launcher (cmd/attestor-launcher beside the daemon,
// see Installed and package launcher, else its own executable again,
// /proc/self/exe, in launcher mode), with two inherited descriptors: the plugin file it verified (opened
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

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch/launcher"
)

// The launcher's descriptor layout, environment variable and failure
// report (package launcher, which see).
const (
	Env        = launcher.Env
	BinaryFD   = launcher.BinaryFD
	RulesFD    = launcher.RulesFD
	Failed     = launcher.Failed
	ExitFailed = launcher.ExitFailed
)

// Spec is what the host tells the launcher.
type Spec = launcher.Spec

// Main runs the launcher when the process is in launcher mode, and returns
// at once otherwise (launcher.Main).
func Main() { launcher.Main() }

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
