package binaries

import (
	"os"
	"path/filepath"

	"github.com/secure-ai/runtime-attestor/sdk"
)

var _ sdk.Sandboxer = (*Check)(nil)

// Sandbox implements sdk.Sandboxer: the check reads the folder of each
// service binary and, for one reached through symlinks, the folder of the
// file they resolve to, looked up when Sandbox is called (right after
// Configure). Folders, not files: a Landlock rule on a file holds its
// inode, so a binary replaced by a rename (rpm -U, an attacker's mv) would
// be refused as unreadable instead of measured and reported as a digest
// mismatch, here and, through the daemon's sandbox, in every later plugin
// process until the daemon restarts. A folder that is "/" or directly
// under it (/usr, /etc, /tmp…) is never declared whole: the file alone is,
// and it keeps that limit. Resolving a path (lstat, readlink) needs no
// right, so the allowed symlink roots are not opened up. Left out are what
// Measure never opens: a path whose symlinks lead outside the allowed
// roots (a rule would follow them), a path that is a folder (a rule would
// open its whole tree), and a binary's folder that is itself reached
// through symlinks leading outside the allowed roots. A path missing now
// is declared by its folder; a folder missing now stays denied if it
// appears later.
func (c *Check) Sandbox() sdk.Sandbox {
	var read []string
	for _, s := range c.settings.Services {
		read = append(read, readRule(s.Path, c.settings.Options.AllowedRoots)...)
	}
	return sdk.Sandbox{ReadOnly: read}.Merge()
}

// readRule returns what hashing the binary at the clean absolute path p,
// now or after it is replaced by a rename, needs to read: p's folder and
// the folder of where it resolves to, or nothing when Measure would refuse
// p without opening it.
func readRule(p string, roots []string) []string {
	resolved, err := filepath.EvalSymlinks(p)
	switch {
	case err != nil:
		// Missing, or a dangling symlink: its folder is declared, so
		// that a binary appearing there later can be measured.
		return folderRule(p, roots)
	case resolved != p && !symlinkAllowed(p, resolved, roots):
		return nil
	}
	if fi, err := os.Stat(resolved); err == nil && fi.IsDir() {
		return nil
	}
	return append(folderRule(p, roots), folderOrFile(resolved))
}

// folderRule returns the rule for p's folder as written, unless the folder
// itself resolves through symlinks outside the allowed roots: a rule on it
// would grant where they lead, which Measure refuses to open.
func folderRule(p string, roots []string) []string {
	dir := filepath.Dir(p)
	if rdir, err := filepath.EvalSymlinks(dir); err == nil && rdir != dir && !symlinkAllowed(p, rdir, roots) {
		return nil
	}
	return []string{folderOrFile(p)}
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
