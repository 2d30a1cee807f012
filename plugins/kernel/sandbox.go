package kernel

import (
	"path/filepath"

	"github.com/secure-ai/runtime-attestor/sdk"
)

var _ sdk.Sandboxer = (*Check)(nil)

// Sandbox implements sdk.Sandboxer: the check reads its five configured
// files and nothing else. A file missing when the SDK applies the sandbox
// (the lockdown file on a kernel without securityfs lockdown) stays
// missing to the check: opening it still fails with "does not exist", so
// kernel_lockdown is still "unavailable".
func (c *Check) Sandbox() sdk.Sandbox {
	cfg := c.rules.cfg
	return sdk.Sandbox{ReadOnly: []string{
		filepath.Clean(cfg.CmdlinePath),
		filepath.Clean(cfg.LockdownPath),
		filepath.Clean(cfg.TaintedPath),
		filepath.Clean(cfg.SigEnforcePath),
		filepath.Clean(cfg.ModulesPath),
	}}.Merge()
}
