package sandbox

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/elffixture"
)

// elfWithInterpreters is a minimal 64-bit ELF executable whose program
// headers are one PT_INTERP per name, in order: what a hostile plugin's
// author can write into its own executable.
func elfWithInterpreters(names ...string) []byte {
	const ehsize, phsize = 64, 56
	strs := ehsize + phsize*len(names)
	var hdr, ph, data bytes.Buffer
	hdr.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	hdr.Write(make([]byte, 9))
	le := binary.LittleEndian
	for _, v := range []any{uint16(elf.ET_EXEC), uint16(elf.EM_X86_64), uint32(elf.EV_CURRENT), uint64(0x400000),
		uint64(ehsize), uint64(0), uint32(0), uint16(ehsize), uint16(phsize), uint16(len(names)), uint16(64), uint16(0), uint16(0)} {
		_ = binary.Write(&hdr, le, v)
	}
	for _, n := range names {
		off := uint64(strs + data.Len())
		data.WriteString(n + "\x00")
		size := uint64(len(n) + 1)
		for _, v := range []any{uint32(elf.PT_INTERP), uint32(elf.PF_R), off, off, off, size, size, uint64(1)} {
			_ = binary.Write(&ph, le, v)
		}
	}
	return slices.Concat(hdr.Bytes(), ph.Bytes(), data.Bytes())
}

// TestInterpreterNamedByTheExecutable: the interpreter an executable names
// is granted only when the kernel would run it (the first PT_INTERP) and it
// is a root-owned ELF object or script along a root-only path: never a
// folder, a file of another kind, a second PT_INTERP or a file someone
// else could swap.
func TestInterpreterNamedByTheExecutable(t *testing.T) {
	t.Parallel()
	loader := "/lib64/ld-linux-x86-64.so.2"
	if _, err := os.Stat(loader); err != nil || !rooted(loader) {
		t.Skipf("no root-owned %s here", loader)
	}
	dir := t.TempDir()
	copied := filepath.Join(dir, "ld.so")
	raw, err := os.ReadFile(loader)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copied, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "secrets")
	if err := os.Mkdir(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		content []byte
		granted []string // interpreters that must be granted
		never   []string // paths that must not be
	}{
		{"the loader", elfWithInterpreters(loader), []string{loader}, nil},
		{"a second PT_INTERP of /", elfWithInterpreters(loader, "/"), []string{loader}, []string{"/"}},
		{"a second PT_INTERP of a secrets folder", elfWithInterpreters(loader, secrets), []string{loader}, []string{secrets}},
		{"a folder", elfWithInterpreters("/"), nil, []string{"/"}},
		{"a file that is no interpreter", elfWithInterpreters("/etc/passwd"), nil, []string{"/etc/passwd"}},
		{"a loader others could swap", elfWithInterpreters(copied), nil, []string{copied}},
		{"a script naming /", []byte("#!/\n"), nil, []string{"/"}},
		{"a script naming a secrets folder", []byte("#!" + secrets + "\n"), nil, []string{secrets}},
		{"a script naming a key", []byte("#!/etc/passwd\n"), nil, []string{"/etc/passwd"}},
	}
	for i, c := range cases {
		exe := filepath.Join(dir, "plugin"+string(rune('a'+i)))
		if err := os.WriteFile(exe, c.content, 0o755); err != nil {
			t.Fatal(err)
		}
		cl, err := execClosure([]string{exe}, systemLDConfig())
		defer cl.close()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for _, p := range c.granted {
			if !slices.Contains(cl.execPaths(), p) {
				t.Errorf("%s: exec %v lacks %s", c.name, cl.execPaths(), p)
			}
		}
		for _, p := range c.never {
			if slices.Contains(cl.execPaths(), p) || slices.Contains(cl.readPaths(), p) {
				t.Errorf("%s: %s granted (exec %v, read %v)", c.name, p, cl.execPaths(), cl.readPaths())
			}
		}
	}
}

// FuzzExecClosure: whatever bytes a plugin file holds, walking what it
// needs to run ends with a closure or an error, never a panic (the daemon
// walks plugin files at every start) nor a walk without end.
func FuzzExecClosure(f *testing.F) {
	f.Add(elffixture.Dynamic{Interp: "/lib64/ld-linux-x86-64.so.2", Needed: []string{"libc.so.6"}, RPath: []string{"$ORIGIN/lib"}}.Bytes())
	f.Add(elffixture.Dynamic{Needed: []string{"liba.so", "libb.so"}, RunPath: []string{"/usr/lib"}}.Bytes())
	f.Add([]byte("#!/bin/sh\n"))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		exe := filepath.Join(dir, "plugin")
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cl, err := execClosure([]string{exe}, ldConfig{})
		if err == nil {
			cl.close()
		}
	})
}

// FuzzDynStrings: dynStrings reads DT_NEEDED, DT_RPATH and DT_RUNPATH as
// debug/elf's DynString does, tag by tag, for any bytes that parse as ELF.
func FuzzDynStrings(f *testing.F) {
	f.Add(elffixture.Dynamic{Interp: "/lib64/ld-linux-x86-64.so.2", Needed: []string{"libc.so.6"}, RPath: []string{"$ORIGIN/lib"}}.Bytes())
	f.Add(elffixture.Dynamic{Needed: []string{"liba.so", "libb.so"}, RunPath: []string{"/usr/lib", "/opt/lib"}}.Bytes())
	f.Add(elffixture.Dynamic{}.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		var got map[elf.DynTag][]string
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			got, err = dynStrings(ef)
		}()
		for _, tag := range []elf.DynTag{elf.DT_NEEDED, elf.DT_RPATH, elf.DT_RUNPATH} {
			var want []string
			var werr error
			func() {
				defer func() {
					if r := recover(); r != nil {
						werr = fmt.Errorf("panic: %v", r)
					}
				}()
				want, werr = ef.DynString(tag)
			}()
			if (err == nil) != (werr == nil) {
				t.Fatalf("%v: error %v, DynString's %v", tag, err, werr)
			}
			if err == nil && !slices.Equal(got[tag], want) {
				t.Fatalf("%v: %q, DynString %q", tag, got[tag], want)
			}
		}
	})
}

// BenchmarkExecClosure walks what running a dynamically linked program
// (ostree, installed for the ostree plugin's tests) and a whole folder of
// programs needs: the daemon's work for a plugin granted them, at each of
// its starts.
func BenchmarkExecClosure(b *testing.B) {
	for _, p := range []string{"/usr/bin/ostree", "/usr/bin"} {
		if _, err := os.Stat(p); err != nil {
			b.Logf("skipped %s: %v", p, err)
			continue
		}
		b.Run(p, func(b *testing.B) {
			for b.Loop() {
				cl, err := execClosure([]string{p}, systemLDConfig())
				if err != nil {
					b.Fatal(err)
				}
				cl.close()
			}
		})
	}
}
