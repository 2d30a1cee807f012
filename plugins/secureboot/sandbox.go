package secureboot

import (
	"path/filepath"
	"strings"

	"github.com/secure-ai/runtime-attestor/sdk"
)

var _ sdk.Sandboxer = (*Check)(nil)

// Sandbox implements sdk.Sandboxer: the check reads below efi_dir, which
// holds efivars_dir on a real system; an efivars_dir outside efi_dir is
// added. On a machine that did not boot through UEFI both are missing when
// the sandbox is applied: the check only needs to see that they do not
// exist, which the sandbox does not hide.
func (c *Check) Sandbox() sdk.Sandbox {
	efi, vars := filepath.Clean(c.cfg.EFIDir), filepath.Clean(c.cfg.EFIVarsDir)
	read := []string{efi}
	if !within(vars, efi) {
		read = append(read, vars)
	}
	return sdk.Sandbox{ReadOnly: read}.Merge()
}

// within reports whether the clean absolute path p is root or below it.
func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}
