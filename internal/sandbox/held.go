package sandbox

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// heldFile is a file the closure of an executable needs (an interpreter,
// a shared library, the loader's cache), open from the moment it was
// examined until the Landlock rule for it is added. The rule is made from
// the descriptor, never from the name again: whatever the name leads to
// afterwards (a folder, a link to a secret), the grant is this one
// regular file.
type heldFile struct {
	f    *os.File
	path string // the name it was found by, for messages and tests
	exec bool   // execute and read; else read only
}

// rulePath is the name under which the rule reaches the held file itself:
// its /proc/self/fd magic link resolves to the open file, not to a path
// anyone can change.
func (h heldFile) rulePath() string {
	return "/proc/self/fd/" + strconv.Itoa(int(h.f.Fd()))
}

// Reasons a candidate library or interpreter is not granted. They name the
// kind of problem only: the file's bytes (which debug/elf quotes in its
// errors) never reach a message.
var (
	errNotRegular = errors.New("not a regular file")
	errNotELF     = errors.New("not a usable ELF object")
)

// openRegular opens path read-only without following a link in its last
// component, without blocking (a FIFO is refused, not waited on) and
// close-on-exec, and checks through the descriptor that it is a regular
// file. The caller resolves the links it accepts before.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w (%s)", path, errNotRegular, fi.Mode().Type())
	}
	return f, fi, nil
}

// openLibrary opens the library candidate path (links resolved first, as
// the loader follows them) and checks through the descriptor that it is a
// regular ELF file of class and machine, and returns what it needs (read
// through the descriptor, once per file in a walk).
func (w *walker) openLibrary(path string, class elf.Class, machine elf.Machine) (*os.File, dynamic, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, dynamic{}, err
	}
	f, fi, err := openRegular(real)
	if err != nil {
		return nil, dynamic{}, err
	}
	var id fileID
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = fileID{dev: st.Dev, ino: st.Ino}
	}
	d, ok := w.objects[id]
	if !ok || id == (fileID{}) {
		ef, err := elf.NewFile(f)
		if err != nil {
			f.Close()
			return nil, dynamic{}, fmt.Errorf("%s: %w", path, errNotELF)
		}
		d = readDynamic(ef)
		if id != (fileID{}) {
			w.objects[id] = d
		}
	}
	if d.class != class || d.machine != machine {
		f.Close()
		return nil, dynamic{}, fmt.Errorf("%s: %w (another class or machine)", path, errNotELF)
	}
	return f, d, nil
}

// openRooted opens the interpreter p when the kernel could run it and
// nobody but root could have changed what p leads to: every component of
// p, and of every link it goes through, is root's and writable by root
// only (rootedPath), and the file itself is a regular file, root's, not
// writable by others, checked on the descriptor.
func openRooted(p string) (*os.File, string, error) {
	real, ok := rootedPath(p)
	if !ok {
		return nil, "", fmt.Errorf("%s: not root's along its path and its links", p)
	}
	f, fi, err := openRegular(real)
	if err != nil {
		return nil, "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		f.Close()
		return nil, "", fmt.Errorf("%s: not root's, or writable by others", p)
	}
	return f, real, nil
}

// realExecPath is the path the kernel gives a process executing f as
// /proc/self/exe, the one the loader expands $ORIGIN from for the main
// program; "" when it cannot be read.
func realExecPath(f *os.File) string {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil || !filepath.IsAbs(p) {
		return ""
	}
	return p
}

// maxLinks bounds the links rootedPath follows, as the kernel does (40).
const maxLinks = 40

// rootedPath resolves p one component at a time, as the kernel does, and
// returns the path it leads to when every component it passes, the links
// and every component their targets lead through included, belongs to
// root and (but for a link itself) is writable by root only: nobody else
// can make p lead elsewhere.
func rootedPath(p string) (string, bool) {
	if fi, err := os.Lstat("/"); err != nil || !rootOnly(fi) {
		return "", false
	}
	done, rest, links := "/", splitPath(p), 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, c)
		fi, err := os.Lstat(next)
		if err != nil || !rootOnly(fi) {
			return "", false
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		target, err := os.Readlink(next)
		if links++; err != nil || links > maxLinks {
			return "", false
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		rest = append(splitPath(target), rest...)
	}
	return done, true
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// rootOnly reports whether fi is root's and, unless it is a link (whose
// own mode means nothing), writable by root only.
func rootOnly(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == 0 && (fi.Mode()&fs.ModeSymlink != 0 || fi.Mode().Perm()&0o022 == 0)
}
