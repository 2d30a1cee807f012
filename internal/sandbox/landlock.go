package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Landlock access rights granted by each kind of rule, for a file and for a
// folder (rights on what is below it).
const (
	rightsReadFile = ll.AccessFSReadFile
	rightsReadDir  = rightsReadFile | ll.AccessFSReadDir

	rightsWriteFile = rightsReadFile | ll.AccessFSWriteFile | ll.AccessFSTruncate
	rightsWriteDir  = rightsWriteFile | ll.AccessFSReadDir | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile |
		ll.AccessFSMakeDir | ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSMakeFifo | ll.AccessFSMakeSym

	rightsExecFile = ll.AccessFSExecute | ll.AccessFSReadFile
	rightsExecDir  = rightsExecFile | ll.AccessFSReadDir

	rightsDevice     = ll.AccessFSReadFile | ll.AccessFSWriteFile
	rightsUnixSocket = ll.AccessFSResolveUnix
)

// ABI returns the Landlock ABI version the running kernel offers, 0 when it
// has none (not built in, or not enabled at boot in the "lsm=" list).
func ABI() int {
	v, err := ll.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}

// landlockRules turns r into go-landlock rules. Paths that do not exist are
// returned in skipped; a path that exists but cannot be examined is an
// error. The rules for the interpreters and libraries r.Exec needs name
// files held open: call release once the rules are applied (or dropped).
//
// Each listed path is opened once (O_PATH, links followed) and its rule
// made from that descriptor, so the rule grants the file or folder that
// was examined, whatever the path leads to a moment later. guard, when not
// nil, is shown the rules as those descriptors' real paths before any rule
// is made; its error refuses them.
func landlockRules(r Rules, ld ldConfig, guard func(real Rules) error) (rules []landlock.Rule, skipped []string, release func(), err error) {
	if err := r.Validate(); err != nil {
		return nil, nil, nil, err
	}
	cl, err := execClosure(r.Exec, ld)
	if err != nil {
		return nil, nil, nil, err
	}
	rules, skipped, pinned, err := closureRules(r, cl, guard)
	release = func() {
		cl.close()
		for _, f := range pinned {
			f.Close()
		}
	}
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	return rules, skipped, release, nil
}

// pinPath opens p as O_PATH (links followed, as Landlock follows them) and
// returns the descriptor, whether it is a folder, and its real path (the
// descriptor's /proc/self/fd link). Only a path that cannot be opened is
// missing (fs.ErrNotExist, fs.ErrPermission); a real path that cannot be
// read, or that does not name the very file held (a file deleted since,
// a link into another process's mount namespace through /proc), is an
// error: the guard would judge another file than the rule grants. A
// descriptor of this process's own (/proc/self/fd/N: the verified plugin
// file, executed by descriptor even if its name was since replaced) is
// the file its holder chose, whatever its name now.
func pinPath(p string) (*os.File, bool, string, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, "", &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	var held, named unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		f.Close()
		return nil, false, "", fmt.Errorf("stat %s: %v", p, err)
	}
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err == nil && !strings.HasPrefix(p, "/proc/self/fd/") {
		err = unix.Stat(real, &named)
	} else {
		named = held
	}
	if err == nil && (named.Dev != held.Dev || named.Ino != held.Ino) {
		err = errors.New("it names another file than the one opened")
	}
	if err != nil {
		f.Close()
		return nil, false, "", fmt.Errorf("the real path of %s (%q): %v", p, real, err)
	}
	return f, held.Mode&unix.S_IFMT == unix.S_IFDIR, real, nil
}

// closureRules turns r, with cl the closure of r.Exec, into go-landlock
// rules. The paths of r (and the executables asked for) are examined here
// and get folder rights when they are folders; what cl holds open gets
// file rights on the open file itself, whatever its name leads to now.
func closureRules(r Rules, cl closure, guard func(real Rules) error) (rules []landlock.Rule, skipped []string, pinned []*os.File, err error) {
	skipped = append(skipped, cl.missing...)
	var real Rules
	add := func(paths []string, reals *[]string, fileRights, dirRights landlock.AccessFSSet) error {
		for _, p := range paths {
			f, dir, rp, err := pinPath(p)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				// Missing, or hidden by a sandbox already in force (the
				// host's, for a plugin): it stays denied.
				skipped = append(skipped, p)
				continue
			}
			if err != nil {
				return err
			}
			pinned = append(pinned, f)
			*reals = append(*reals, rp)
			rights := fileRights
			if dir {
				rights = dirRights
			}
			rules = append(rules, landlock.PathAccess(rights, "/proc/self/fd/"+strconv.Itoa(int(f.Fd()))))
		}
		return nil
	}
	steps := []struct {
		paths     []string
		real      *[]string
		file, dir landlock.AccessFSSet
	}{
		{paths: r.ReadOnly, real: &real.ReadOnly, file: rightsReadFile, dir: rightsReadDir},
		{paths: r.ReadWrite, real: &real.ReadWrite, file: rightsWriteFile, dir: rightsWriteDir},
		{paths: cl.exec, real: &real.Exec, file: rightsExecFile, dir: rightsExecDir},
		{paths: devices(r), real: &real.Devices, file: rightsDevice, dir: rightsDevice},
		{paths: pathSockets(r.UnixSockets), real: &real.UnixSockets, file: rightsUnixSocket, dir: rightsUnixSocket},
	}
	for _, s := range steps {
		if err := add(s.paths, s.real, s.file, s.dir); err != nil {
			return nil, nil, pinned, err
		}
	}
	if guard != nil {
		real.BindTCP, real.ConnectTCP = r.BindTCP, r.ConnectTCP
		if err := guard(real); err != nil {
			return nil, nil, pinned, err
		}
	}
	for _, h := range cl.held {
		var rights landlock.AccessFSSet = rightsReadFile
		if h.exec {
			rights = rightsExecFile
		}
		rules = append(rules, landlock.PathAccess(rights, h.rulePath()))
	}
	for _, p := range r.BindTCP {
		rules = append(rules, landlock.BindTCP(p))
	}
	for _, p := range r.ConnectTCP {
		rules = append(rules, landlock.ConnectTCP(p))
	}
	return rules, sortUnique(skipped), pinned, nil
}

// devices returns r.Devices, plus /dev/null when r runs commands: os/exec
// opens it for a child's standard streams that the caller does not set.
func devices(r Rules) []string {
	if len(r.Exec) == 0 || slices.Contains(r.Devices, os.DevNull) {
		return r.Devices
	}
	return append(slices.Clone(r.Devices), os.DevNull)
}

func pathSockets(socks []string) []string {
	var out []string
	for _, s := range socks {
		if !strings.HasPrefix(s, "@") {
			out = append(out, s)
		}
	}
	return out
}

func abstractSocket(socks []string) bool {
	for _, s := range socks {
		if strings.HasPrefix(s, "@") {
			return true
		}
	}
	return false
}

// restrictLandlock applies r to every thread of the process. It returns
// the kernel's ABI version, whether anything was enforced and, when the
// kernel has Landlock but nothing was enforced, why.
func restrictLandlock(r Rules, ld ldConfig) (abi int, enforced bool, skipped []string, reason string, err error) {
	rules, skipped, release, err := landlockRules(r, ld, nil)
	if err != nil {
		return 0, false, nil, "", fmt.Errorf("landlock rules: %w", err)
	}
	defer release()
	abi = ABI()
	if abi == 0 {
		return 0, false, skipped, "the kernel has no Landlock", nil
	}
	if abi < 8 && cgoBuild && !procMatchesPID() {
		// libpsx would list another process's /proc/<pid>/task and wait
		// forever for threads it cannot signal.
		return abi, false, skipped, "cgo build in a PID namespace without its own /proc: libpsx cannot reach every thread before Landlock ABI v8 (build with CGO_ENABLED=0); the parent's sandbox still applies", nil
	}
	if abi > 0 && abi < 8 {
		// Before ABI v8 a restriction reaches other threads only through
		// libpsx, which (in cgo builds) lists /proc/<pid>/task of the
		// process restricting itself. Children of this process must be
		// able to restrict themselves too, so folders under /proc may be
		// listed (not read).
		rules = append(rules, landlock.PathAccess(ll.AccessFSReadDir, "/proc"))
	}
	cfg := landlock.V11.BestEffort()
	if abi < 8 {
		// Before ABI v8 every thread restricts itself into a domain of its
		// own, and signal scoping then refuses a kill(2) from one thread to
		// a child forked by another (a process group to end on timeout).
		cfg.Scoped &^= ll.ScopeSignal
	}
	if abstractSocket(r.UnixSockets) {
		cfg.Scoped &^= ll.ScopeAbstractUnixSocket
	}
	if err := cfg.Restrict(rules...); err != nil {
		return abi, false, skipped, "", fmt.Errorf("landlock restrict (ABI v%d): %w", abi, err)
	}
	return abi, true, skipped, "", nil
}

// procMatchesPID reports whether /proc/self is this process as getpid(2)
// sees it: false in a PID namespace that uses its parent's /proc.
func procMatchesPID() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}
