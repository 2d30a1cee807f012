package ostree_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file builds ostree sysroots with Debian's ostree tool, the way
// libostree's own tests do: `ostree admin init-fs`, `os-init`, `ostree
// commit` of a small tree (kernel and initramfs under
// usr/lib/modules/<version>/, as `ostree admin deploy` requires) and
// `ostree admin deploy`. Everything on disk (deployment directories, boot
// symlinks, loader entries, .origin files, commit objects) is the tool's
// output. What needs a booted system is built as the closest real state
// and each such place says so.

// needTool returns a command of a Debian package, or skips the test:
// `make test` installs the package (scripts/install-deps.sh).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s; scripts/install-deps.sh installs it): %v", name, name, err)
	}
	return p
}

// sysroot is an ostree physical root written by the real tool, and the
// run-time files of a machine booted from it.
type sysroot struct {
	t       *testing.T
	tool    string
	root    string // the machine's folder
	path    string // the sysroot
	tree    string // the tree committed
	osname  string
	marker  string // /run/ostree-booted
	runDir  string // /run/ostree
	cmdline string // /proc/cmdline
	scratch string // a repository for records
	n       int    // commits so far
}

func newSysroot(t *testing.T, osname string) *sysroot {
	t.Helper()
	tool := needTool(t, "ostree")
	root := t.TempDir()
	s := &sysroot{t: t, tool: tool, root: root, path: filepath.Join(root, "sysroot"), tree: filepath.Join(root, "tree"), osname: osname,
		marker: filepath.Join(root, "run", "ostree-booted"), runDir: filepath.Join(root, "run", "ostree"), cmdline: filepath.Join(root, "cmdline"),
		scratch: filepath.Join(root, "scratch")}
	for _, d := range []string{s.path, filepath.Join(s.tree, "usr", "lib", "modules", "6.1.0"), filepath.Join(s.tree, "usr", "etc"), filepath.Join(s.tree, "usr", "bin"), filepath.Join(root, "run")} {
		must(t, os.MkdirAll(d, 0o755))
	}
	s.write("usr/lib/modules/6.1.0/vmlinuz", "kernel 6.1.0\n")
	s.write("usr/lib/modules/6.1.0/initramfs.img", "initramfs 6.1.0\n")
	s.write("usr/etc/os-release", "ID="+osname+"\n")
	s.ostree("admin", "init-fs", s.path)
	s.ostree("admin", "--sysroot="+s.path, "os-init", osname)
	s.ostree("--repo="+s.scratch, "init", "--mode=bare-user")
	return s
}

func (s *sysroot) write(rel, content string) {
	must(s.t, os.WriteFile(filepath.Join(s.tree, rel), []byte(content), 0o644))
}

// ostree runs the tool and returns its standard output.
func (s *sysroot) ostree(args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.tool, args...)
	// Deployments stay mutable (no FS_IMMUTABLE_FL on their directories),
	// as in libostree's own test suite, so that t.TempDir can remove them.
	cmd.Env = append(os.Environ(), "OSTREE_SYSROOT_DEBUG=mutable-deployments")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("ostree %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// commit commits the tree (changed, so every commit differs) on the
// stateroot's branch with a version and more `ostree commit` options, and
// returns its checksum.
func (s *sysroot) commit(version string, opts ...string) string {
	s.t.Helper()
	s.n++
	s.write("usr/bin/release", fmt.Sprintf("release %d %s\n", s.n, version))
	args := append([]string{"--repo=" + filepath.Join(s.path, "ostree", "repo"), "commit", "-b", s.osname + "/stable", "--tree=dir=" + s.tree,
		"--no-xattrs", "--add-metadata-string=version=" + version}, opts...)
	return strings.TrimSpace(s.ostree(args...))
}

// deploy deploys a refspec or commit (`ostree admin deploy`), with an
// origin file when origin is not "". --retain keeps every deployment: on a
// booted system ostree keeps the booted one, but this sysroot is not
// booted for the tool, which would otherwise prune it.
func (s *sysroot) deploy(ref, origin string) {
	s.t.Helper()
	args := []string{"admin", "--sysroot=" + s.path, "deploy", "--retain", "--os=" + s.osname}
	if origin != "" {
		p := filepath.Join(s.root, fmt.Sprintf("origin-%d", time.Now().UnixNano()))
		must(s.t, os.WriteFile(p, []byte(origin), 0o600))
		args = append(args, "--origin-file="+p)
	}
	s.ostree(append(args, ref)...)
}

// rel is a deployment directory relative to the sysroot.
func (s *sysroot) rel(checksum string, serial int) string {
	return fmt.Sprintf("ostree/deploy/%s/deploy/%s.%d", s.osname, checksum, serial)
}

func (s *sysroot) dir(checksum string, serial int) string {
	return filepath.Join(s.path, s.rel(checksum, serial))
}

// options returns the options line of the loader entry that boots the
// deployment now, as the bootloader passes it to the kernel.
func (s *sysroot) options(checksum string, serial int) string {
	s.t.Helper()
	entries, err := filepath.Glob(filepath.Join(s.path, "boot", "loader", "entries", "*.conf"))
	must(s.t, err)
	for _, e := range entries {
		raw, err := os.ReadFile(e)
		must(s.t, err)
		for _, line := range strings.Split(string(raw), "\n") {
			opts, ok := strings.CutPrefix(line, "options ")
			if !ok {
				continue
			}
			target, err := filepath.EvalSymlinks(filepath.Join(s.path, strings.TrimPrefix(strings.Fields(opts)[0], "ostree=")))
			if err == nil && target == s.dir(checksum, serial) {
				return opts
			}
		}
	}
	s.t.Fatalf("no loader entry boots %s.%d", checksum, serial)
	return ""
}

// boot makes the machine booted into a deployment, as the bootloader and
// ostree-prepare-root leave it: the kernel command line is the entry's
// options (root= etc. around it), and /run/ostree-booted is the a{sv}
// record with the deployment directory's device and inode.
func (s *sysroot) boot(checksum string, serial int) {
	s.t.Helper()
	must(s.t, os.WriteFile(s.cmdline, []byte("BOOT_IMAGE=(hd0,gpt3)/vmlinuz-6.1.0 rhgb quiet root=UUID=5d5d3e02-4ad1-4b1c-9a3e-2b1f0c9a7e11 rw "+s.options(checksum, serial)+"\n"), 0o644))
	dev, ino := devIno(s.t, s.dir(checksum, serial))
	must(s.t, os.WriteFile(s.marker, s.record(dev, ino), 0o644))
}

// devIno is what ostree-prepare-root records: lstat's device and inode.
func devIno(t *testing.T, path string) (uint64, uint64) {
	t.Helper()
	var st syscall.Stat_t
	must(t, syscall.Lstat(path, &st))
	return uint64(st.Dev), st.Ino
}

// record returns /run/ostree-booted as ostree-prepare-root writes it: the
// a{sv} that otcore_mount_rootfs fills (backing-root-device-inode as
// (tt), root.transient and root.transient-ro as b), serialized by GLib.
// ostree-prepare-root runs only in an initramfs, so the bytes come from
// the same serializer through the ostree tool: `ostree commit
// --add-metadata` stores the given a{sv} as the commit's metadata, the
// first member of the commit object, whose end its framing offset gives.
func (s *sysroot) record(dev, ino uint64) []byte {
	s.t.Helper()
	return s.vardict(fmt.Sprintf("--add-metadata=backing-root-device-inode=(uint64 %d, uint64 %d)", dev, ino),
		"--add-metadata=root.transient=false", "--add-metadata=root.transient-ro=false")
}

// vardict returns an a{sv} serialized by GLib, given as `ostree commit
// --add-metadata=KEY=VALUE` options (VALUE in GVariant text format).
func (s *sysroot) vardict(metadata ...string) []byte {
	s.t.Helper()
	empty := filepath.Join(s.root, "empty")
	must(s.t, os.MkdirAll(empty, 0o755))
	csum := strings.TrimSpace(s.ostree(append([]string{"--repo=" + s.scratch, "commit", "--orphan", "--no-xattrs", "--tree=dir=" + empty}, metadata...)...))
	obj, err := os.ReadFile(filepath.Join(s.scratch, "objects", csum[:2], csum[2:]+".commit"))
	must(s.t, err)
	return obj[:frameEnd(obj)]
}

// frameEnd is the end of a GVariant tuple's first variable-size member:
// its framing offset, the tuple's last offset.
func frameEnd(obj []byte) int {
	n := len(obj)
	switch {
	case n <= 0xff:
		return int(obj[n-1])
	case n <= 0xffff:
		return int(binary.LittleEndian.Uint16(obj[n-2:]))
	default:
		return int(binary.LittleEndian.Uint32(obj[n-4:]))
	}
}

// oldRecord makes /run/ostree-booted what ostree-prepare-root wrote before
// it recorded the device and inode: an empty file.
func (s *sysroot) oldRecord() {
	must(s.t, os.WriteFile(s.marker, nil, 0o644))
}

func (s *sysroot) config(rpmOstree string, extra ...any) map[string]any {
	c := map[string]any{"rpm_ostree": rpmOstree, "run_ostree_booted": s.marker, "sysroot": s.path, "cmdline_path": s.cmdline, "timeout": "20s",
		"run_ostree_dir": s.runDir, "boot_path": filepath.Join(s.path, "boot"), "root_path": s.root}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

// noRPMOStree is an rpm_ostree that does not exist.
func noRPMOStree(t *testing.T) string { return filepath.Join(t.TempDir(), "no-rpm-ostree") }
