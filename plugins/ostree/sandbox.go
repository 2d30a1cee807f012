package ostree

import (
	"os"
	"os/exec"
	"path/filepath"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// SystemBusSocket is the D-Bus system bus, through which rpm-ostree asks
// rpm-ostreed for the status.
const SystemBusSocket = "/run/dbus/system_bus_socket"

var _ sdk.Sandboxer = (*Check)(nil)

// Sandbox implements sdk.Sandboxer: the check reads the ostree-booted
// record, the sysroot, the kernel command line, libostree's run-time state
// and the boot partition's entries (root_path is only stat'ed, which
// Landlock does not restrict), and runs rpm-ostree
// (with its interpreter and libraries, which the SDK adds), which talks to
// rpm-ostreed over the system bus. When rpm-ostree was not found at
// Configure, nothing may be executed: the check then reports rpm-ostree
// missing and measures from ostree's files.
func (c *Check) Sandbox() sdk.Sandbox {
	s := c.settings
	sb := sdk.Sandbox{ReadOnly: []string{s.RunOstreeBooted, s.Sysroot, s.CmdlinePath, s.RunOstreeDir, s.BootPath}}
	if c.rpmOStreePath != "" {
		sb.Exec = []string{c.rpmOStreePath}
		sb.UnixSockets = []string{SystemBusSocket}
	}
	return sb.Merge()
}

// resolveCommand returns the absolute, clean path of the command name (an
// absolute path, or a name looked up on PATH), or "" when there is no such
// executable.
func resolveCommand(name string) string {
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			return ""
		}
		return filepath.Clean(name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	return abs
}
