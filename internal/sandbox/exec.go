package sandbox

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// closure is what running a set of executables needs from the file system.
type closure struct {
	exec    []string // executables, folders of executables, ELF and "#!" interpreters
	read    []string // shared libraries, ld.so.cache
	missing []string // listed paths that do not exist
}

// ldConfig says where the dynamic loader looks for libraries.
type ldConfig struct {
	dirs []string // ld.so.conf's folders, then the built-in defaults
}

// maxScriptChain bounds "#!" chains (the kernel allows 4 levels).
const maxScriptChain = 8

// execClosure finds, for each executable (or folder of executables) in
// paths, the interpreters that must be executable too and the shared
// libraries that must be readable, following "#!" lines, PT_INTERP and
// DT_NEEDED as the kernel and the dynamic loader do.
func execClosure(paths []string, ld ldConfig) (closure, error) {
	w := &walker{ld: ld, seenExec: map[string]bool{}, seenLib: map[string]bool{}}
	for _, p := range paths {
		if err := w.addExec(p, 0); err != nil {
			return closure{}, err
		}
	}
	if w.dynamic {
		for _, f := range []string{"/etc/ld.so.cache", "/etc/ld.so.preload"} {
			if _, err := os.Stat(f); err == nil {
				w.c.read = append(w.c.read, f)
			}
		}
	}
	return w.c, nil
}

type walker struct {
	ld       ldConfig
	c        closure
	seenExec map[string]bool
	seenLib  map[string]bool
	dynamic  bool
}

func (w *walker) addExec(p string, depth int) error {
	if w.seenExec[p] {
		return nil
	}
	w.seenExec[p] = true
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		w.c.missing = append(w.c.missing, p)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat executable %s: %w", p, err)
	}
	w.c.exec = append(w.c.exec, p)
	if !fi.IsDir() {
		return w.inspect(p, depth)
	}
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrPermission) {
		return nil // hidden by a sandbox in force: nothing below it runs
	}
	if err != nil {
		return fmt.Errorf("list executables in %s: %w", p, err)
	}
	for _, e := range entries {
		child := filepath.Join(p, e.Name())
		cfi, err := os.Stat(child)
		if err != nil || !cfi.Mode().IsRegular() || cfi.Mode().Perm()&0o111 == 0 {
			continue
		}
		w.seenExec[child] = true
		if err := w.inspect(child, depth); err != nil {
			return err
		}
	}
	return nil
}

// inspect adds what running the file p needs besides p itself.
func (w *walker) inspect(p string, depth int) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("open executable %s: %w", p, err)
	}
	defer f.Close()
	head := make([]byte, 256)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read executable %s: %w", p, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("#!")):
		interp := scriptInterpreter(head)
		if interp == "" || !filepath.IsAbs(interp) || depth >= maxScriptChain {
			return nil
		}
		return w.addInterpreter(filepath.Clean(interp), depth+1)
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		ef, err := elf.NewFile(f)
		if err != nil {
			return fmt.Errorf("parse ELF %s: %w", p, err)
		}
		defer ef.Close()
		return w.elfDeps(p, ef, depth)
	}
	return nil
}

// rootsAlong reports whether p and every folder above it belong to root
// and are writable by root only (a symbolic link itself by its owner only).
func rootsAlong(p string) bool {
	for q := p; ; q = filepath.Dir(q) {
		fi, err := os.Lstat(q)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid != 0 || (fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o022 != 0) {
			return false
		}
		if q == "/" {
			return true
		}
	}
}

// scriptInterpreter returns the interpreter named on a "#!" line.
func scriptInterpreter(head []byte) string {
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// elfDeps adds the ELF interpreter of ef and its libraries. Only the first
// PT_INTERP counts, as for the kernel: a second one names nothing the
// program can run with, only what a hostile executable would like to read.
func (w *walker) elfDeps(p string, ef *elf.File, depth int) error {
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(prog.Open(), 4096))
		if err != nil {
			return fmt.Errorf("read PT_INTERP of %s: %w", p, err)
		}
		interp := string(bytes.TrimRight(raw, "\x00"))
		if filepath.IsAbs(interp) {
			w.dynamic = true
			if err := w.addInterpreter(filepath.Clean(interp), depth+1); err != nil {
				return err
			}
		}
		break
	}
	return w.libs(p, ef)
}

// addInterpreter adds the interpreter an executable names (its PT_INTERP
// or "#!" line), only when it is a regular file that can be one: an ELF
// object or a script. The name comes from the executable's own bytes,
// which a plugin's author controls, so a folder or any other file (a key,
// a log) is never granted: executing the plugin then fails, and nothing is
// readable that its grant does not list.
//
// The interpreter must also be root's, along its whole path and its link's
// target's: nobody else can swap it for a link to something else between
// this check and the ruleset's own open of the path.
func (w *walker) addInterpreter(p string, depth int) error {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil || !rootsAlong(p) || !rootsAlong(real) {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	f.Close()
	if !bytes.HasPrefix(head[:n], []byte(elf.ELFMAG)) && !bytes.HasPrefix(head[:n], []byte("#!")) {
		return nil
	}
	return w.addExec(p, depth)
}

// libs adds the shared libraries ef needs, recursively.
func (w *walker) libs(p string, ef *elf.File) error {
	needed, err := ef.DynString(elf.DT_NEEDED)
	if err != nil || len(needed) == 0 {
		return nil // static, or no dynamic section
	}
	w.dynamic = true
	var search []string
	runpath, _ := ef.DynString(elf.DT_RUNPATH)
	if len(runpath) == 0 {
		rpath, _ := ef.DynString(elf.DT_RPATH)
		search = append(search, splitSearchPath(rpath, p)...)
	}
	search = append(search, splitSearchPath([]string{os.Getenv("LD_LIBRARY_PATH")}, p)...)
	search = append(search, splitSearchPath(runpath, p)...)
	search = append(search, w.ld.dirs...)
	for _, name := range needed {
		for _, lib := range findLibrary(name, search, ef.Class, ef.Machine) {
			if w.seenLib[lib] {
				continue
			}
			w.seenLib[lib] = true
			w.c.read = append(w.c.read, lib)
			lf, err := elf.Open(lib)
			if err != nil {
				return fmt.Errorf("parse ELF %s: %w", lib, err)
			}
			err = w.libs(lib, lf)
			lf.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// splitSearchPath splits RPATH/RUNPATH entries on ':' and expands $ORIGIN
// against the folder of the object that carries them.
func splitSearchPath(entries []string, object string) []string {
	var out []string
	origin := filepath.Dir(object)
	for _, e := range entries {
		for _, d := range strings.Split(e, ":") {
			if d == "" {
				continue
			}
			d = strings.ReplaceAll(d, "${ORIGIN}", origin)
			d = strings.ReplaceAll(d, "$ORIGIN", origin)
			if filepath.IsAbs(d) {
				out = append(out, filepath.Clean(d))
			}
		}
	}
	return out
}

// findLibrary returns every file named name in the search folders (and
// their glibc-hwcaps subfolders) that is an ELF object of the same class
// and machine: the loader may pick any of them (through ld.so.cache), and
// granting read access to a library is harmless.
func findLibrary(name string, search []string, class elf.Class, machine elf.Machine) []string {
	if strings.Contains(name, "/") {
		if filepath.IsAbs(name) {
			return []string{filepath.Clean(name)}
		}
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, dir := range search {
		cands := []string{filepath.Join(dir, name)}
		if hw, _ := filepath.Glob(filepath.Join(dir, "glibc-hwcaps", "*", name)); len(hw) > 0 {
			cands = append(cands, hw...)
		}
		for _, c := range cands {
			if seen[c] {
				continue
			}
			seen[c] = true
			if matchesELF(c, class, machine) {
				out = append(out, c)
			}
		}
	}
	return out
}

func matchesELF(path string, class elf.Class, machine elf.Machine) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Class == class && f.Machine == machine
}

// systemLDConfig reads /etc/ld.so.conf (and what it includes) and adds the
// loader's built-in folders.
func systemLDConfig() ldConfig {
	var dirs []string
	seen := map[string]bool{}
	var visit func(file string, depth int)
	visit = func(file string, depth int) {
		if depth > 8 || seen[file] {
			return
		}
		seen[file] = true
		data, err := os.ReadFile(file)
		if err != nil {
			return
		}
		ds, includes := parseLDConf(data, filepath.Dir(file))
		dirs = append(dirs, ds...)
		for _, pattern := range includes {
			matches, _ := filepath.Glob(pattern)
			for _, m := range matches {
				visit(m, depth+1)
			}
		}
	}
	visit("/etc/ld.so.conf", 0)
	dirs = append(dirs, defaultLibDirs(runtime.GOARCH)...)
	return ldConfig{dirs: dirs}
}

// defaultLibDirs are the folders the loader searches without ld.so.conf,
// with the Debian multiarch ones first.
func defaultLibDirs(goarch string) []string {
	triplet := map[string]string{
		"amd64":   "x86_64-linux-gnu",
		"arm64":   "aarch64-linux-gnu",
		"386":     "i386-linux-gnu",
		"arm":     "arm-linux-gnueabihf",
		"riscv64": "riscv64-linux-gnu",
		"ppc64le": "powerpc64le-linux-gnu",
		"s390x":   "s390x-linux-gnu",
	}[goarch]
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// parseLDConf parses one ld.so.conf file: one folder per line (an old
// "=TYPE" suffix ignored), "include PATTERN" lines (relative patterns are
// relative to base), "hwcap" lines ignored, "#" comments. Folders and
// patterns that are not absolute after that are dropped.
func parseLDConf(data []byte, base string) (dirs, includes []string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		fields := strings.Fields(line)
		switch fields[0] {
		case "include":
			for _, pat := range fields[1:] {
				if !filepath.IsAbs(pat) {
					pat = filepath.Join(base, pat)
				}
				includes = append(includes, filepath.Clean(pat))
			}
			continue
		case "hwcap":
			continue
		}
		for _, d := range strings.FieldsFunc(line, func(r rune) bool { return r == ':' || r == ',' || r == ' ' || r == '\t' }) {
			d, _, _ = strings.Cut(d, "=")
			if filepath.IsAbs(d) {
				dirs = append(dirs, filepath.Clean(d))
			}
		}
	}
	return dirs, includes
}
