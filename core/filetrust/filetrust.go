// Package filetrust decides whether the daemon may trust a file it reads
// its instructions or secrets from (the policy, the HMAC key, the API
// token, the plugin folder), as sshd's StrictModes does: the file and every
// folder above it up to / must be owned by root or by the daemon's own
// user, and none may be writable by group or others — except that a folder
// above the file's own folder may be a root-owned sticky one (like /tmp),
// where nobody else can rename or remove what it holds. A folder that
// someone else can write lets them rename a file of their own over the one
// the daemon trusts, whatever that file's own mode says.
package filetrust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Error says which path is not to be trusted, why, and how to fix it.
type Error struct {
	// Path is the file checked; Culprit the file or folder at fault.
	Path, Culprit string
	Reason, Fix   string
}

func (e *Error) Error() string {
	if e.Culprit == e.Path {
		return fmt.Sprintf("%s is not trusted: %s; %s", e.Path, e.Reason, e.Fix)
	}
	return fmt.Sprintf("%s is not trusted: its folder %s %s; %s", e.Path, e.Culprit, e.Reason, e.Fix)
}

// Check checks path (a file or a folder, symbolic links resolved) and every
// folder above it for a daemon running as uid. A missing path is
// fs.ErrNotExist (wrapped), for the caller to decide.
func Check(path string, uid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	own := filepath.Dir(real) // the file's own folder: no sticky exception
	for p := real; ; p = filepath.Dir(p) {
		if err := checkOne(path, p, uid, p == real || p == own); err != nil {
			return err
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil
		}
	}
}

func checkOne(path, p string, uid int, strict bool) error {
	st, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("check %s: no owner for %s", path, p)
	}
	owner := int(sys.Uid)
	if owner != 0 && owner != uid {
		return &Error{Path: path, Culprit: p, Reason: fmt.Sprintf("is owned by uid %d, neither root nor the daemon's user (uid %d)", owner, uid),
			Fix: fmt.Sprintf("run chown root %s", p)}
	}
	mode := st.Mode()
	if mode.Perm()&0o022 == 0 {
		return nil
	}
	if !strict && mode.IsDir() && mode&fs.ModeSticky != 0 && owner == 0 {
		return nil // like /tmp: nobody renames or removes another's file
	}
	what := "is writable by group or others"
	if mode.IsDir() && mode&fs.ModeSticky != 0 && strict {
		what += " (sticky, but it is the file's own folder: another user may create the name if it goes missing)"
	}
	return &Error{Path: path, Culprit: p, Reason: fmt.Sprintf("%s (mode %#o)", what, mode.Perm()),
		Fix: fmt.Sprintf("run chmod go-w %s", p)}
}

// IsNotExist reports whether err says the path does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
