package policies

import (
	"os"
	"path/filepath"

	"github.com/secure-ai/runtime-attestor/sdk"
)

var _ sdk.Sandboxer = (*Check)(nil)

// Sandbox implements sdk.Sandboxer: the check reads the folder of each
// policy file and, for one reached through symlinks, the folder of the
// file they resolve to (looked up when Sandbox is called, right after
// Configure), and the registry manifest's folder. Folders, not files: a
// Landlock rule on a file holds its inode, so a policy file replaced by a
// rename (sed -i, an editor's or configuration tool's atomic save) would
// be refused as unreadable, here and, through the daemon's sandbox, in
// every later plugin process until the daemon restarts; the registry, for
// its part, writes the manifest after the attestor starts and may replace
// it. A policy file's folder that is "/" or directly under it (/etc,
// /usr…) is never declared whole: the file alone is, and it keeps that
// limit. A manifest directly under "/" is declared as a policy file is. A
// policy file that is a folder is left out (the check refuses folders; a
// rule would open the whole tree). A folder missing when the sandbox is
// applied stays denied: the manifest's folder must exist by then for a
// later manifest to be read.
func (c *Check) Sandbox() sdk.Sandbox {
	var read []string
	for _, p := range c.cfg.PolicyFiles {
		read = append(read, fileRule(p)...)
	}
	manifest := c.cfg.RegistryManifestPath
	if dir := filepath.Dir(manifest); dir != "/" {
		read = append(read, dir)
	} else {
		read = append(read, fileRule(manifest)...)
	}
	return sdk.Sandbox{ReadOnly: read}.Merge()
}

// fileRule returns what reading the file at the clean absolute path p, now
// or after it is replaced by a rename, needs: p's folder and, when p goes
// through symlinks, the folder of where it resolves to; nothing when p is
// a folder.
func fileRule(p string) []string {
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		// Missing, or a dangling symlink: its folder is declared, so that
		// a file appearing there later can be read.
		return []string{folderOrFile(p)}
	}
	if fi, err := os.Stat(resolved); err == nil && fi.IsDir() {
		return nil
	}
	return []string{folderOrFile(p), folderOrFile(resolved)}
}

// folderOrFile returns the folder of the clean absolute path p, or p itself
// when that folder is "/" or directly under it: a rule there would open a
// whole top-level tree.
func folderOrFile(p string) string {
	dir := filepath.Dir(p)
	if dir == "/" || filepath.Dir(dir) == "/" {
		return p
	}
	return dir
}
