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
	"slices"
	"strings"
	"sync"
	"syscall"
)

// closure is what running a set of executables needs from the file system.
type closure struct {
	exec []string // the executables, and folders of executables, asked for
	// held is what they need, each open since it was examined: their
	// ELF and "#!" interpreters (executed), shared libraries and the
	// loader's cache (read). Only ever files, never folders.
	held    []heldFile
	missing []string // listed paths that do not exist
}

// close closes the held files, once the rules made from them are applied.
func (c closure) close() {
	for _, h := range c.held {
		h.f.Close()
	}
}

// execPaths are the executables asked for and the interpreters found.
func (c closure) execPaths() []string {
	out := slices.Clone(c.exec)
	for _, h := range c.held {
		if h.exec {
			out = append(out, h.path)
		}
	}
	return out
}

// readPaths are the libraries and loader files found.
func (c closure) readPaths() []string {
	var out []string
	for _, h := range c.held {
		if !h.exec {
			out = append(out, h.path)
		}
	}
	return out
}

// ldConfig says where the dynamic loader looks for libraries.
type ldConfig struct {
	// load returns ld.so.conf's folders, then the built-in defaults; nil
	// stands for none. It is called only when a dynamically linked
	// executable is granted: a static plugin (every Go plugin) never pays
	// for reading ld.so.conf.
	load func() []string
}

// dirs is where the loader looks, read at the first call.
func (c ldConfig) dirs() []string {
	if c.load == nil {
		return nil
	}
	return c.load()
}

// Bounds on what an executable's own bytes can make the walker do: an
// ELF's author chooses its DT_NEEDED, RPATH and RUNPATH, and a hostile
// one would make the plugin host examine files without end. Entries past a
// bound are ignored (the loader then fails on what was not granted).
const (
	maxScriptChain = 8       // "#!" chains (the kernel allows 4 levels)
	maxNeeded      = 256     // DT_NEEDED entries of one object
	maxSearchDirs  = 64      // RPATH or RUNPATH folders of one object, each
	maxHWCaps      = 16      // glibc-hwcaps subfolders of one folder
	maxObjectCands = 4096    // library candidates examined for one object
	maxCandidates  = 1 << 15 // library candidates examined in all
)

// execClosure finds, for each executable (or folder of executables) in
// paths, the interpreters that must be executable too and the shared
// libraries that must be readable, following "#!" lines, PT_INTERP and
// DT_NEEDED as the kernel and the dynamic loader do. The caller closes
// the closure's held files once its rules are applied.
//
// The executables' bytes are a plugin author's, and debug/elf is not
// hardened against hostile input: a panic while reading them is an error
// of this walk (the plugin does not start), never a crash of the daemon
// that walks it.
func execClosure(paths []string, ld ldConfig) (c closure, err error) {
	w := newWalker(ld)
	defer func() {
		if r := recover(); r != nil {
			w.c.close()
			c, err = closure{}, fmt.Errorf("reading the executables to grant (%s): %v", strings.Join(paths, ", "), r)
		}
	}()
	for _, p := range paths {
		if err := w.addExec(p, 0); err != nil {
			w.c.close()
			return closure{}, err
		}
	}
	if w.dynamic {
		for _, f := range []string{"/etc/ld.so.cache", "/etc/ld.so.preload"} {
			real, err := filepath.EvalSymlinks(f)
			if err != nil {
				continue
			}
			if h, _, err := openRegular(real); err == nil {
				w.c.held = append(w.c.held, heldFile{f: h, path: f})
			}
		}
	}
	return w.c, nil
}

type walker struct {
	ld       ldConfig
	c        closure
	seenExec map[string]bool     // executables and interpreters examined
	seenLib  map[string]bool     // library candidates examined
	hwcaps   map[string][]string // glibc-hwcaps subfolders of each folder
	objects  map[fileID]dynamic  // libraries read, by file: one parse each
	budget   int                 // library candidates left to examine
	dynamic  bool
}

func newWalker(ld ldConfig) *walker {
	return &walker{ld: ld, seenExec: map[string]bool{}, seenLib: map[string]bool{}, hwcaps: map[string][]string{}, objects: map[fileID]dynamic{}, budget: maxCandidates}
}

// fileID names a file by device and inode: the same library found under
// two names (/lib and /usr/lib where one links to the other, a hwcaps
// subfolder linking back) is one file, read once.
type fileID struct{ dev, ino uint64 }

// dynamic is what the walk reads of an ELF object: its class and machine,
// and its DT_NEEDED, DT_RPATH and DT_RUNPATH strings (none when it has
// no DT_NEEDED: it needs no library, and its search path does not
// matter).
type dynamic struct {
	class                  elf.Class
	machine                elf.Machine
	needed, rpath, runpath []string
}

// readDynamic reads ef's dynamic strings, at most maxNeeded DT_NEEDED.
func readDynamic(ef *elf.File) dynamic {
	d := dynamic{class: ef.Class, machine: ef.Machine}
	strs, err := dynStrings(ef)
	needed := strs[elf.DT_NEEDED]
	if err != nil || len(needed) == 0 {
		return d // static, or no dynamic section
	}
	d.needed = needed[:min(len(needed), maxNeeded)]
	d.runpath = strs[elf.DT_RUNPATH]
	if len(d.runpath) == 0 {
		d.rpath = strs[elf.DT_RPATH]
	}
	return d
}

// dynStrings is debug/elf's DynString for DT_NEEDED, DT_RPATH and
// DT_RUNPATH at once, the same entries in the same order
// (FuzzDynStrings): one read of the dynamic section and of its string
// table, where DynString reads both again for each tag (a large
// library's string table is tens of kilobytes).
func dynStrings(f *elf.File) (map[elf.DynTag][]string, error) {
	ds := f.SectionByType(elf.SHT_DYNAMIC)
	if ds == nil {
		return nil, nil // not dynamic, so no libraries
	}
	d, err := ds.Data()
	if err != nil {
		return nil, err
	}
	size := 8
	if f.Class == elf.ELFCLASS64 {
		size = 16
	}
	if len(d)%size != 0 {
		return nil, errors.New("length of dynamic section is not a multiple of dynamic entry size")
	}
	if ds.Link == 0 || int(ds.Link) >= len(f.Sections) {
		return nil, errors.New("section has invalid string table link")
	}
	str, err := f.Sections[ds.Link].Data()
	if err != nil {
		return nil, err
	}
	out := map[elf.DynTag][]string{}
	for ; len(d) >= size; d = d[size:] {
		var t elf.DynTag
		var v uint64
		if size == 16 {
			t, v = elf.DynTag(f.ByteOrder.Uint64(d[0:8])), f.ByteOrder.Uint64(d[8:16])
		} else {
			t, v = elf.DynTag(f.ByteOrder.Uint32(d[0:4])), uint64(f.ByteOrder.Uint32(d[4:8]))
		}
		if t != elf.DT_NEEDED && t != elf.DT_RPATH && t != elf.DT_RUNPATH {
			continue
		}
		if v >= uint64(len(str)) {
			continue
		}
		if end := bytes.IndexByte(str[v:], 0); end >= 0 {
			out[t] = append(out[t], string(str[v:v+uint64(end)]))
		}
	}
	return out, nil
}

// addExec adds an executable, or a folder of executables, asked for: a
// path from the rules, not from any executable's bytes.
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

// inspect adds what running the executable at p needs besides p itself.
// Anything but a regular file (a FIFO, a device) has nothing to add.
func (w *walker) inspect(p string, depth int) error {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open executable %s: %w", p, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	return w.inspectFile(f, p, realExecPath(f), depth)
}

// inspectFile adds what running the executable open as f (found as name)
// needs besides itself. real is the path the kernel shows as the running
// program's /proc/self/exe ("" when unknown): the loader's $ORIGIN.
func (w *walker) inspectFile(f *os.File, name, real string, depth int) error {
	head := make([]byte, 256)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read executable %s: %w", name, err)
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
			// debug/elf's errors quote the file's bytes: name the
			// kind of problem only.
			return fmt.Errorf("parse ELF %s: %w", name, errNotELF)
		}
		origin := ""
		if real != "" {
			origin = filepath.Dir(real)
		}
		return w.elfDeps(name, origin, ef, depth)
	}
	return nil
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
func (w *walker) elfDeps(name, origin string, ef *elf.File, depth int) error {
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(prog.Open(), 4096))
		if err != nil {
			return fmt.Errorf("read PT_INTERP of %s: %w", name, errNotELF)
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
	w.libs(readDynamic(ef), origin)
	return nil
}

// addInterpreter adds the interpreter an executable names (its PT_INTERP
// or "#!" line), only when it is a regular file that can be one: an ELF
// object or a script. The name comes from the executable's own bytes,
// which a plugin's author controls, so a folder or any other file (a key,
// a log) is never granted: executing the plugin then fails, and nothing is
// readable that its grant does not list.
//
// The interpreter must be root's along its whole path and every link's
// (openRooted), and it is held open from this check on: its rule is made
// from the descriptor, and grants that one file, whatever p names later.
func (w *walker) addInterpreter(p string, depth int) error {
	f, real, err := openRooted(p)
	if err != nil {
		return nil
	}
	head := make([]byte, 4)
	n, _ := f.ReadAt(head, 0)
	if w.seenExec[real] || (!bytes.HasPrefix(head[:n], []byte(elf.ELFMAG)) && !bytes.HasPrefix(head[:n], []byte("#!"))) {
		f.Close()
		return nil
	}
	w.seenExec[real] = true
	w.c.held = append(w.c.held, heldFile{f: f, path: p, exec: true})
	return w.inspectFile(f, p, real, depth)
}

// libs adds the shared libraries ef needs, recursively. origin is the
// folder $ORIGIN stands for in ef's RPATH and RUNPATH ("" when unknown:
// entries naming it are dropped).
func (w *walker) libs(d dynamic, origin string) {
	if len(d.needed) == 0 {
		return
	}
	w.dynamic = true
	search := w.searchPath(d, origin)
	budget := maxObjectCands
	for _, name := range d.needed {
		for _, lib := range w.candidates(name, search) {
			if budget <= 0 || w.budget <= 0 {
				return
			}
			budget--
			if w.seenLib[lib] {
				continue
			}
			w.seenLib[lib] = true
			w.budget--
			w.addLibrary(lib, d.class, d.machine)
		}
	}
}

// searchPath is where the loader looks for ef's libraries: its RPATH
// (unless it has a RUNPATH), $LD_LIBRARY_PATH, its RUNPATH, then the
// system's folders.
func (w *walker) searchPath(d dynamic, origin string) []string {
	var search []string
	if len(d.runpath) == 0 {
		search = append(search, splitSearchPath(d.rpath, origin)...)
	}
	search = append(search, splitSearchPath([]string{os.Getenv("LD_LIBRARY_PATH")}, origin)...)
	search = append(search, splitSearchPath(d.runpath, origin)...)
	return append(search, w.ld.dirs()...)
}

// addLibrary grants the library candidate lib when it is a regular ELF
// file of ef's class and machine, held open from this check on: its rule
// is made from the descriptor and grants reading that one file, whatever
// lib names later. Any other candidate (missing, a folder, a FIFO, a key)
// is skipped without a word of its content: the loader, if it ever opens
// it, fails on it by itself.
func (w *walker) addLibrary(lib string, class elf.Class, machine elf.Machine) {
	f, d, err := w.openLibrary(lib, class, machine)
	if err != nil {
		return
	}
	w.c.held = append(w.c.held, heldFile{f: f, path: lib})
	// A library's $ORIGIN is the folder the loader found it in, links
	// not resolved.
	w.libs(d, filepath.Dir(lib))
}

// splitSearchPath splits RPATH/RUNPATH entries on ':' and expands $ORIGIN
// to origin, keeping at most maxSearchDirs absolute folders. Nothing else
// is expanded: the loader does not glob, and neither does the walker.
func splitSearchPath(entries []string, origin string) []string {
	var out []string
	for _, e := range entries {
		for _, d := range strings.Split(e, ":") {
			if len(out) == maxSearchDirs {
				return out
			}
			if d == "" || (origin == "" && strings.Contains(d, "ORIGIN")) {
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

// candidates returns every path the loader may open for the DT_NEEDED
// entry name: name itself when it is absolute, else name in each search
// folder and in its glibc-hwcaps subfolders (the loader may pick any of
// them, through ld.so.cache; granting read access to a library is
// harmless). Names are joined as they are, never globbed.
func (w *walker) candidates(name string, search []string) []string {
	if strings.Contains(name, "/") {
		if filepath.IsAbs(name) {
			return []string{filepath.Clean(name)}
		}
		return nil
	}
	var out []string
	for _, dir := range search {
		out = append(out, filepath.Join(dir, name))
		for _, sub := range w.hwcapsOf(dir) {
			out = append(out, filepath.Join(dir, "glibc-hwcaps", sub, name))
		}
	}
	return out
}

// hwcapsOf lists (once, at most maxHWCaps) the subfolders of
// dir/glibc-hwcaps, and links there.
func (w *walker) hwcapsOf(dir string) []string {
	if subs, ok := w.hwcaps[dir]; ok {
		return subs
	}
	var subs []string
	f, err := os.OpenFile(filepath.Join(dir, "glibc-hwcaps"), os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err == nil {
		ents, _ := f.ReadDir(maxHWCaps)
		f.Close()
		for _, e := range ents {
			// A link may lead to a folder, as the loader would follow
			// it; what it finds there is checked as any candidate is.
			if e.IsDir() || e.Type()&fs.ModeSymlink != 0 {
				subs = append(subs, e.Name())
			}
		}
	}
	w.hwcaps[dir] = subs
	return subs
}

// systemLDConfig reads, at its first use, /etc/ld.so.conf (and what it
// includes) and adds the loader's built-in folders.
func systemLDConfig() ldConfig { return ldConfig{load: sync.OnceValue(readLDConfig)} }

func readLDConfig() []string {
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
	return append(dirs, defaultLibDirs(runtime.GOARCH)...)
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
