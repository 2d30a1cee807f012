package sandbox

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOriginIsTheRealFolder: $ORIGIN in a plugin's RUNPATH is the folder
// of the executable the kernel runs (its /proc/self/exe), as for the
// loader: not /proc/self/fd when the launcher walks the descriptor it
// executes, and not the folder of a link to the executable.
func TestOriginIsTheRealFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	lib := dynELF{}.write(t, filepath.Join(real, "lib"), "libo.so")
	exe := dynELF{needed: []string{"libo.so"}, runpath: []string{"$ORIGIN/lib"}}.write(t, real, "plugin")
	// A decoy beside the link: what a walker using the link's folder finds.
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	decoy := dynELF{}.write(t, filepath.Join(dir, "lib"), "libo.so")
	link := filepath.Join(dir, "plugin-link")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range []string{exe, link, fmt.Sprintf("/proc/self/fd/%d", f.Fd())} {
		cl, err := execClosure([]string{p}, ldConfig{})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if reads := cl.readPaths(); !slices.Contains(reads, lib) || slices.Contains(reads, decoy) {
			t.Errorf("%s: read %v, want %s and not %s", p, reads, lib, decoy)
		}
		cl.close()
	}
}

// TestSearchPathNotGlobbed: RPATH folders and DT_NEEDED names are taken
// as they are, never as patterns (the loader does not glob them), and a
// hostile ELF's number of RPATH entries and DT_NEEDED names is bounded.
func TestSearchPathNotGlobbed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hw := filepath.Join(dir, "a", "glibc-hwcaps", "x86-64-v2")
	if err := os.MkdirAll(hw, 0o755); err != nil {
		t.Fatal(err)
	}
	hidden := dynELF{}.write(t, hw, "libg.so")
	plain := dynELF{}.write(t, filepath.Join(dir, "a"), "libg.so")
	for _, c := range []struct {
		name string
		obj  dynELF
	}{
		{"a glob in RPATH", dynELF{needed: []string{"libg.so"}, rpath: []string{filepath.Join(dir, "*")}}},
		{"a glob in the name", dynELF{needed: []string{"lib*.so"}, rpath: []string{filepath.Join(dir, "a")}}},
	} {
		exe := c.obj.write(t, dir, "plugin-"+strings.ReplaceAll(c.name, " ", "-"))
		cl, err := execClosure([]string{exe}, ldConfig{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if reads := cl.readPaths(); slices.Contains(reads, hidden) || slices.Contains(reads, plain) {
			t.Errorf("%s: read %v: a pattern was expanded", c.name, reads)
		}
		cl.close()
	}
	// Bounds: thousands of RPATH folders and names examine at most
	// maxObjectCands candidates.
	var rpath, needed []string
	for i := range 5000 {
		rpath = append(rpath, fmt.Sprintf("%s/r%d", dir, i))
		needed = append(needed, fmt.Sprintf("lib%d.so", i))
	}
	if got := len(splitSearchPath([]string{strings.Join(rpath, ":")}, dir)); got != maxSearchDirs {
		t.Errorf("%d RPATH folders kept, want %d", got, maxSearchDirs)
	}
	ef, err := elf.Open(dynELF{needed: needed, rpath: rpath}.write(t, dir, "plugin-many"))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	w := newWalker(ldConfig{})
	w.libs(readDynamic(ef), dir)
	if len(w.seenLib) > maxObjectCands {
		t.Errorf("%d candidates examined, want at most %d", len(w.seenLib), maxObjectCands)
	}
}

// TestInterpreterLinksRootOnly: an interpreter reached through a chain of
// links is granted only when every link on the way, and what each leads
// through, is root's and root-writable only: one link owned by someone
// else in the middle of the chain is enough to refuse it. Needs root (to
// own the files) and a root-only folder to work in ($HOME's cache).
func TestInterpreterLinksRootOnly(t *testing.T) {
	t.Parallel()
	base, err := os.UserCacheDir()
	if err != nil || os.Geteuid() != 0 || !rooted(base) {
		t.Skip("needs root and a root-only cache folder")
	}
	dir, err := os.MkdirTemp(base, "rootedpath-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	interp := filepath.Join(dir, "real", "interp")
	if err := os.MkdirAll(filepath.Dir(interp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(interp, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := func(name, to string, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(to, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootChain := link("root-a", link("root-b", interp, 0), 0)
	userMiddle := link("user-a", link("user-b", interp, 65534), 0)
	userDir := filepath.Join(link("user-dir", filepath.Dir(interp), 65534), "interp")
	for _, c := range []struct {
		path string
		want bool
	}{{interp, true}, {rootChain, true}, {userMiddle, false}, {userDir, false}} {
		if got := rooted(c.path); got != c.want {
			t.Errorf("rootedPath(%s) = %v, want %v", c.path, got, c.want)
		}
		f, _, err := openRooted(c.path)
		if (err == nil) != c.want {
			t.Errorf("openRooted(%s): %v, want granted %v", c.path, err, c.want)
		}
		if f != nil {
			f.Close()
		}
	}
}
