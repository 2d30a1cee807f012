package sdk

import (
	"context"
	"fmt"
)

// Sandbox is what a check needs from the system once configured: the files
// and folders it reads or writes, the commands it runs, the devices it
// opens, the sockets it reaches. Paths are absolute; a folder covers
// everything below it, a file that file. A path missing when the sandbox
// is applied stays denied if it appears later. The zero Sandbox allows no
// file and no TCP port (the plugin's own protocol socket is added by the
// SDK). The JSON names are the policy's keys under plugins.<name>.sandbox.
type Sandbox struct {
	// ReadOnly lists files and folders the check may read and list.
	// Nothing under them may be executed or changed.
	ReadOnly []string `json:"read_only,omitempty"`
	// ReadWrite lists files and folders the check may read, write,
	// truncate, create files, folders, sockets and FIFOs in, and remove
	// from. Nothing under them may be executed; device ioctls stay denied.
	ReadWrite []string `json:"read_write,omitempty"`
	// Exec lists executables, or folders of executables, the check may
	// run (and read). Each one's ELF interpreter and shared libraries, or
	// its "#!" interpreter, are granted as well.
	Exec []string `json:"exec,omitempty"`
	// Devices lists device files the check may open for reading and
	// writing, without ioctl (a TPM resource manager, /dev/tpmrm0).
	Devices []string `json:"devices,omitempty"`
	// UnixSockets lists pathname Unix sockets, created by processes outside
	// the sandbox, that the check connects or sends to (systemd's
	// NOTIFY_SOCKET). An entry starting with "@" names an abstract socket.
	UnixSockets []string `json:"unix_sockets,omitempty"`
	// BindTCP lists the TCP ports the check may bind (0: any ephemeral
	// port). Empty: none.
	BindTCP []uint16 `json:"bind_tcp,omitempty"`
	// ConnectTCP lists the TCP ports the check may connect to. Empty:
	// none.
	ConnectTCP []uint16 `json:"connect_tcp,omitempty"`
}

// Sandboxer is implemented by checks that confine themselves. Right after
// the first successful Configure, the SDK asks for the check's Sandbox and
// restricts the plugin process to it with Landlock (best effort: a kernel
// without Landlock is logged once and left unrestricted) and with a seccomp
// system call allowlist (sandbox.ProfilePluginExec when Exec is not empty,
// else sandbox.ProfilePlugin). The plugin's go-plugin socket folder is
// added by the SDK. Where the kernel has Landlock, a failure to restrict
// makes Configure fail, and the daemon reports core.plugin_config.
//
// Return exactly what Measure will touch, computed from the configuration
// Configure received (every path a check reads is a config field):
//
//	func (c *check) Sandbox() sdk.Sandbox {
//		return sdk.Sandbox{
//			ReadOnly: []string{c.cfg.EFIVarsDir, c.cfg.SysfsDir},
//			Devices:  []string{c.cfg.TPMDevice},
//			Exec:     []string{c.cfg.RPMOSTree},
//		}
//	}
//
// The sandbox is applied once per process and cannot be widened: a later
// Configure with other paths needs a new plugin process.
type Sandboxer interface {
	Sandbox() Sandbox
}

// DeclaredSandbox configures c with cfg (a JSON object, as the daemon sends
// plugins.<name>.config) and returns the sandbox it declares, or ok false
// when c is not a Sandboxer: what a check's test calls to see what the
// check declares under a configuration. It is what the daemon learns in a
// declare run from the plugin executable (docs/plugins.md). c must be a
// fresh instance, not a served one.
func DeclaredSandbox(ctx context.Context, c Check, cfg []byte) (sb Sandbox, ok bool, err error) {
	if cfgr, isCfgr := c.(Configurer); isCfgr {
		if err := cfgr.Configure(ctx, NewConfig(cfg)); err != nil {
			return Sandbox{}, false, fmt.Errorf("configure %s: %w", c.Describe().Name, err)
		}
	}
	s, isSb := c.(Sandboxer)
	if !isSb {
		return Sandbox{}, false, nil
	}
	return s.Sandbox(), true, nil
}
