package ostree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Bounds on what the fallback reads.
const (
	maxCmdlineBytes = 64 << 10
	maxOriginBytes  = 1 << 20
	maxSymlinks     = 40
)

// filesDeployment is the booted deployment as found in ostree's files.
type filesDeployment struct {
	BootArg  string // the ostree= kernel argument
	Dir      string // the deployment directory, under the sysroot
	OSName   string
	Checksum string
	Serial   int64
	Origin   KeyFile
}

// readDeploymentFiles finds the booted deployment from the ostree= kernel
// argument: it resolves /ostree/boot.N/<osname>/<bootcsum>/<n> inside the
// sysroot (symlinks confined to the sysroot, as if it were the root) to
// ostree/deploy/<osname>/deploy/<checksum>.<serial> and reads that
// deployment's .origin file.
func readDeploymentFiles(sysroot, cmdlinePath string) (*filesDeployment, error) {
	cmdline, err := readSmall(cmdlinePath, maxCmdlineBytes)
	if err != nil {
		return nil, fmt.Errorf("read kernel command line: %w", err)
	}
	arg, err := OstreeArg(string(cmdline))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmdlinePath, err)
	}
	rel, err := resolveInRoot(sysroot, arg)
	if err != nil {
		return nil, fmt.Errorf("resolve ostree=%s under %s: %w", arg, sysroot, err)
	}
	osname, checksum, serial, err := ParseDeployPath(rel)
	if err != nil {
		return nil, fmt.Errorf("ostree=%s resolves to %s: %w", arg, rel, err)
	}
	dir := filepath.Join(sysroot, rel)
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("deployment directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("deployment %s is not a directory", dir)
	}
	raw, err := readSmall(dir+".origin", maxOriginBytes)
	if err != nil {
		return nil, fmt.Errorf("read origin: %w", err)
	}
	origin, err := ParseKeyFile(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s.origin: %w", dir, err)
	}
	return &filesDeployment{BootArg: arg, Dir: dir, OSName: osname, Checksum: checksum, Serial: serial, Origin: origin}, nil
}

// resolveInRoot resolves the absolute path p as if root were "/": every
// symlink is followed, an absolute target restarts at root, and ".." never
// climbs above root. It returns the resolved path relative to root.
func resolveInRoot(root, p string) (string, error) {
	var done []string
	pending := strings.Split(p, "/")
	links := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := filepath.Join(root, filepath.Join(done...), c)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return strings.Join(done, "/"), nil
}

// readSmall reads a regular file of at most limit bytes (procfs files,
// whose size is reported as 0, included). Anything but a regular file is
// refused before it is opened, so a FIFO cannot block the check.
func readSmall(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// exists reports whether path exists (without following a final symlink's
// target: a dangling marker still marks). A path that cannot be looked at
// for lack of permission counts as existing: the check then goes on to
// measure rather than call the machine non-ostree.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil || errors.Is(err, fs.ErrPermission)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
