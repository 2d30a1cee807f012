package tpm

import (
	"path/filepath"

	"github.com/secure-ai/runtime-attestor/sdk"
)

var _ sdk.Sandboxer = (*check)(nil)

// Sandbox implements sdk.Sandboxer: the check opens its TPM device read-write
// (go-tpm only reads and writes it, no ioctl), or connects to the swtpm
// socket when swtpm_socket is configured instead; and, when state_file is
// set, reads and writes in the state file's folder (a temporary file is
// renamed over the state file, so the rule is on the folder, not the file).
// The root folder is never granted: a state file directly in "/" stays
// denied and is reported as unreadable. It reads the firmware event log,
// systemd's userspace measurement log and the boot reference, each file
// alone. It runs no command.
func (c *check) Sandbox() sdk.Sandbox {
	var sb sdk.Sandbox
	if c.cfg.socket != "" {
		sb.UnixSockets = []string{c.cfg.socket}
	} else {
		sb.Devices = []string{c.cfg.device}
	}
	if c.cfg.stateFile != "" {
		if dir := filepath.Dir(c.cfg.stateFile); dir != "/" {
			sb.ReadWrite = []string{dir}
		}
	}
	for _, f := range []string{c.cfg.eventLog, c.cfg.userspaceLog, c.cfg.bootReference} {
		if f != "" {
			sb.ReadOnly = append(sb.ReadOnly, f)
		}
	}
	return sb.Merge()
}
