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
	maxRecordBytes  = 64 << 10
	maxCommitBytes  = 16 << 20
	maxDeployments  = 1024
	maxBootEntries  = 256
	// maxComposefsBytes bounds a composefs image (a few tens of MiB for a
	// full operating system), and so the time spent hashing it.
	maxComposefsBytes = 256 << 20
)

// deployDir is one deployment directory under the sysroot.
type deployDir struct {
	Rel      string // ostree/deploy/<osname>/deploy/<checksum>.<serial>
	OSName   string
	Checksum string
	Serial   int64
	Dev, Ino uint64
}

// ID is the deployment's name as rpm-ostree prints it.
func (d deployDir) ID() string { return fmt.Sprintf("%s-%s.%d", d.OSName, d.Checksum, d.Serial) }

// How the fallback identified the booted deployment.
const (
	// BootedByRecord: the device and inode ostree-prepare-root recorded in
	// /run/ostree-booted (backing-root-device-inode), as libostree does.
	BootedByRecord = "backing-root-device-inode"
	// BootedByRoot: the device and inode of the running root, as libostree
	// does when the record has no such key (ostree before 2024.2).
	BootedByRoot = "root-device-inode"
	// BootedByKarg: the ostree= kernel argument's boot.N path, which
	// libostree swaps on every deploy: after a deploy without a reboot it
	// may lead to another deployment than the one running, or nowhere.
	BootedByKarg = "ostree-karg"
)

// filesDeployment is a deployment as found in ostree's files.
type filesDeployment struct {
	deployDir
	Dir      string // absolute
	Origin   KeyFile
	Unlocked string // "" or the mode
	Commit   *Commit
}

// listDeployments lists every deployment directory of every stateroot,
// with its device and inode.
func listDeployments(sysroot string) ([]deployDir, error) {
	base := filepath.Join(sysroot, "ostree", "deploy")
	roots, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("list stateroots: %w", err)
	}
	var out []deployDir
	for _, r := range roots {
		if !r.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(base, r.Name(), "deploy"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list deployments: %w", err)
		}
		for _, e := range entries {
			rel := strings.Join([]string{"ostree", "deploy", r.Name(), "deploy", e.Name()}, "/")
			osname, csum, serial, perr := ParseDeployPath(rel)
			if perr != nil || !e.IsDir() {
				continue // .origin files and anything else
			}
			fi, err := os.Lstat(filepath.Join(sysroot, rel))
			if err != nil {
				return nil, fmt.Errorf("deployment %s: %w", rel, err)
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return nil, fmt.Errorf("deployment %s: no device and inode", rel)
			}
			if len(out) >= maxDeployments {
				return nil, fmt.Errorf("more than %d deployments under %s", maxDeployments, base)
			}
			out = append(out, deployDir{Rel: rel, OSName: osname, Checksum: csum, Serial: serial, Dev: uint64(st.Dev), Ino: st.Ino})
		}
	}
	return out, nil
}

// bootedRecord is what the fallback reads from /run/ostree-booted.
type bootedRecord struct {
	HasDevIno bool
	Dev, Ino  uint64
}

// readBootedRecord reads the a{sv} ostree-prepare-root writes to
// /run/ostree-booted. A missing or empty file has no device and inode.
func readBootedRecord(path string) (bootedRecord, error) {
	raw, err := readSmall(path, maxRecordBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return bootedRecord{}, nil
	}
	if err != nil {
		return bootedRecord{}, err
	}
	d, err := ParseVarDict(raw)
	if err != nil {
		return bootedRecord{}, fmt.Errorf("parse %s: %w", path, err)
	}
	v, ok := d[BootedByRecord]
	if !ok {
		return bootedRecord{}, nil
	}
	dev, ino, err := v.Uint64Pair()
	if err != nil {
		return bootedRecord{}, fmt.Errorf("%s: %s: %w", path, BootedByRecord, err)
	}
	return bootedRecord{HasDevIno: true, Dev: dev, Ino: ino}, nil
}

// findBooted identifies the booted deployment as libostree does: the
// deployment directory whose device and inode are those recorded in
// /run/ostree-booted, or when the record has none, those of the running
// root. Only when neither leads to a deployment does it resolve the
// ostree= kernel argument (bootArg is then set).
func findBooted(s Settings, all []deployDir) (d deployDir, by, bootArg string, err error) {
	rec, err := readBootedRecord(s.RunOstreeBooted)
	if err != nil {
		return deployDir{}, "", "", err
	}
	if rec.HasDevIno {
		for _, d := range all {
			if d.Dev == rec.Dev && d.Ino == rec.Ino {
				return d, BootedByRecord, "", nil
			}
		}
		return deployDir{}, "", "", fmt.Errorf("%s records the booted deployment as device %d inode %d, and none of the %d deployments under %s is that directory",
			s.RunOstreeBooted, rec.Dev, rec.Ino, len(all), s.Sysroot)
	}
	if fi, err := os.Stat(s.RootPath); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			for _, d := range all {
				if d.Dev == uint64(st.Dev) && d.Ino == st.Ino {
					return d, BootedByRoot, "", nil
				}
			}
		}
	}
	d, arg, err := bootedFromKarg(s)
	if err != nil {
		return deployDir{}, "", "", fmt.Errorf("%s records no device and inode, %s is none of the deployments, and %w", s.RunOstreeBooted, s.RootPath, err)
	}
	return d, BootedByKarg, arg, nil
}

// bootedFromKarg resolves /ostree/boot.N/<osname>/<bootcsum>/<n> from the
// ostree= kernel argument inside the sysroot (symlinks confined to the
// sysroot, as if it were the root) to a deployment directory.
func bootedFromKarg(s Settings) (deployDir, string, error) {
	cmdline, err := readSmall(s.CmdlinePath, maxCmdlineBytes)
	if err != nil {
		return deployDir{}, "", fmt.Errorf("read kernel command line: %w", err)
	}
	arg, err := OstreeArg(string(cmdline))
	if err != nil {
		return deployDir{}, "", fmt.Errorf("%s: %w", s.CmdlinePath, err)
	}
	d, err := resolveDeployment(s.Sysroot, arg)
	if err != nil {
		return deployDir{}, arg, err
	}
	return d, arg, nil
}

// resolveDeployment resolves a boot path (an ostree= value) to the
// deployment directory it leads to.
func resolveDeployment(sysroot, arg string) (deployDir, error) {
	rel, err := resolveInRoot(sysroot, arg)
	if err != nil {
		return deployDir{}, fmt.Errorf("resolve ostree=%s under %s: %w", arg, sysroot, err)
	}
	osname, checksum, serial, err := ParseDeployPath(rel)
	if err != nil {
		return deployDir{}, fmt.Errorf("ostree=%s resolves to %s: %w", arg, rel, err)
	}
	fi, err := os.Lstat(filepath.Join(sysroot, rel))
	if err != nil {
		return deployDir{}, fmt.Errorf("deployment directory: %w", err)
	}
	if !fi.IsDir() {
		return deployDir{}, fmt.Errorf("deployment %s is not a directory", filepath.Join(sysroot, rel))
	}
	return deployDir{Rel: rel, OSName: osname, Checksum: checksum, Serial: serial}, nil
}

// readDeployment reads a deployment's origin, its unlocked state and its
// commit object.
func readDeployment(s Settings, d deployDir) (*filesDeployment, error) {
	dir := filepath.Join(s.Sysroot, d.Rel)
	raw, err := readSmall(dir+".origin", maxOriginBytes)
	if err != nil {
		return nil, fmt.Errorf("read origin: %w", err)
	}
	origin, err := ParseKeyFile(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s.origin: %w", dir, err)
	}
	fd := &filesDeployment{deployDir: d, Dir: dir, Origin: origin}
	// As libostree: a run-time flag first, then the origin's unlocked=.
	state := filepath.Join(s.RunOstreeDir, "deployment-state", fmt.Sprintf("%s.%d", d.Checksum, d.Serial))
	switch {
	case present(filepath.Join(state, "unlocked-development")):
		fd.Unlocked = "development"
	case present(filepath.Join(state, "unlocked-transient")):
		fd.Unlocked = "transient"
	default:
		fd.Unlocked = UnlockedMode(origin["origin"]["unlocked"])
	}
	obj := filepath.Join(s.Sysroot, "ostree", "repo", "objects", d.Checksum[:2], d.Checksum[2:]+".commit")
	craw, err := readSmall(obj, maxCommitBytes)
	if err != nil {
		return nil, fmt.Errorf("read the deployment's commit: %w", err)
	}
	if fd.Commit, err = ParseCommit(craw); err != nil {
		return nil, fmt.Errorf("%s: %w", obj, err)
	}
	return fd, nil
}

// reference returns the deployment's reference, composefs aside.
func (fd *filesDeployment) reference() (Reference, error) {
	version, err := fd.Commit.MetaString("version")
	if err != nil {
		return Reference{}, err
	}
	pk := fd.Origin["packages"]
	req, local := ListValue(pk["requested"]), ListValue(pk["requested-local"])
	base := fd.Checksum
	switch {
	case fd.Origin["origin"]["container-image-reference"] != "":
		digest, err := fd.Commit.MetaString("ostree.manifest-digest")
		if err != nil {
			return Reference{}, err
		}
		if digest != "" {
			if !ValidManifestDigest(digest) {
				return Reference{}, fmt.Errorf("commit %s: ostree.manifest-digest %q is not sha256:<64 hex>", fd.Checksum, clip(digest, 100))
			}
			base = digest
		}
	case len(req)+len(local) > 0 && fd.Commit.Parent != "":
		base = fd.Commit.Parent
	}
	r := NewReference(base, version, req, local)
	r.Unlocked = fd.Unlocked
	return r, nil
}

// readStaged returns the staged deployment libostree records in
// <run_ostree_dir>/staged-deployment until ostree-finalize-staged writes it
// to the bootloader at shutdown, or nil when there is none: an a{sv} whose
// "target" is an a{sv} with "name" (<checksum>.<serial>) and "osname"
// (serialize_deployment_to_variant in ostree-sysroot-deploy.c). The
// deployment directory itself is checked out when it is staged.
func readStaged(s Settings) (*deployDir, error) {
	path := filepath.Join(s.RunOstreeDir, "staged-deployment")
	raw, err := readSmall(path, maxRecordBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := ParseVarDict(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	tv, ok := d["target"]
	if !ok {
		return nil, nil
	}
	if tv.Type != "a{sv}" {
		return nil, fmt.Errorf("%s: target is a %q, not an a{sv}", path, tv.Type)
	}
	target, err := ParseVarDict(tv.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: target: %w", path, err)
	}
	name, err := target["name"].Str()
	if err != nil {
		return nil, fmt.Errorf("%s: target name: %w", path, err)
	}
	osname, err := target["osname"].Str()
	if err != nil {
		return nil, fmt.Errorf("%s: target osname: %w", path, err)
	}
	rel := "ostree/deploy/" + osname + "/deploy/" + name
	osname, csum, serial, err := ParseDeployPath(rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &deployDir{Rel: rel, OSName: osname, Checksum: csum, Serial: serial}, nil
}

// findPending returns the deployment the bootloader boots by default
// (the entry with the highest version under <boot>/loader/entries) when
// it is not the booted one, or nil.
func findPending(s Settings, booted deployDir) (*deployDir, error) {
	dir := filepath.Join(s.BootPath, "loader", "entries")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no boot entries to compare with
	}
	if err != nil {
		return nil, fmt.Errorf("list boot entries: %w", err)
	}
	var best *BootEntry
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") || !e.Type().IsRegular() {
			continue
		}
		if n++; n > maxBootEntries {
			return nil, fmt.Errorf("more than %d boot entries in %s", maxBootEntries, dir)
		}
		raw, err := readSmall(filepath.Join(dir, e.Name()), maxCmdlineBytes)
		if err != nil {
			return nil, err
		}
		be, err := ParseBootEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, e.Name()), err)
		}
		if best == nil || be.Version > best.Version {
			best = &be
		}
	}
	if best == nil {
		return nil, nil
	}
	arg, err := OstreeArg(best.Options)
	if err != nil {
		return nil, fmt.Errorf("default boot entry: %w", err)
	}
	d, err := resolveDeployment(s.Sysroot, arg)
	if err != nil {
		return nil, fmt.Errorf("default boot entry: %w", err)
	}
	if d.Rel == booted.Rel {
		return nil, nil
	}
	return &d, nil
}

// composefsDigest returns the fs-verity digest of a deployment's
// composefs image (<deployment>/.ostree.cfs), "" when it has none. The
// image is opened without following a symlink and without blocking, and
// must be a regular file.
func composefsDigest(sysroot, rel string) (string, error) {
	p := filepath.Join(sysroot, rel, ".ostree.cfs")
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", p)
	}
	d, err := FSVerityDigest(f, maxComposefsBytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return d, nil
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

// present reports whether path exists, as libostree's lstat() == 0 does for
// its run-time flags: an error of any kind means absent.
func present(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
