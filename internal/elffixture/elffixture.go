// Package elffixture writes minimal ELF objects for tests: the program
// headers and dynamic entries (PT_INTERP, DT_NEEDED, DT_RPATH, DT_RUNPATH)
// that the author of a hostile plugin or library chooses, parseable by
// debug/elf, never meant to run.
package elffixture

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// Dynamic describes a minimal 64-bit x86-64 ELF object with a dynamic
// section: what the author of a hostile plugin or library can write.
type Dynamic struct {
	Interp                 string // PT_INTERP, "" for none
	Needed, RPath, RunPath []string
}

// Bytes lays the object out: header, one PT_INTERP, the interpreter's
// name, .dynstr, .dynamic, .shstrtab, then the section headers.
func (d Dynamic) Bytes() []byte {
	const ehsize, phsize, shsize = 64, 56, 64
	le := binary.LittleEndian
	nph := 0
	if d.Interp != "" {
		nph = 1
	}
	var data, dynstr, dyn bytes.Buffer
	dynstr.WriteByte(0)
	entry := func(tag elf.DynTag, s string) {
		_ = binary.Write(&dyn, le, []uint64{uint64(tag), uint64(dynstr.Len())})
		dynstr.WriteString(s + "\x00")
	}
	for _, n := range d.Needed {
		entry(elf.DT_NEEDED, n)
	}
	for _, r := range d.RPath {
		entry(elf.DT_RPATH, r)
	}
	for _, r := range d.RunPath {
		entry(elf.DT_RUNPATH, r)
	}
	_ = binary.Write(&dyn, le, []uint64{uint64(elf.DT_NULL), 0})
	shstr := []byte("\x00.dynstr\x00.dynamic\x00.shstrtab\x00")
	base := uint64(ehsize + phsize*nph)
	interpOff := base
	data.WriteString(d.Interp + "\x00")
	strOff := base + uint64(data.Len())
	data.Write(dynstr.Bytes())
	dynOff := base + uint64(data.Len())
	data.Write(dyn.Bytes())
	shstrOff := base + uint64(data.Len())
	data.Write(shstr)
	shoff := base + uint64(data.Len())

	var out bytes.Buffer
	put := func(vs ...any) {
		for _, v := range vs {
			_ = binary.Write(&out, le, v)
		}
	}
	out.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	out.Write(make([]byte, 9))
	put(uint16(elf.ET_DYN), uint16(elf.EM_X86_64), uint32(elf.EV_CURRENT), uint64(0),
		uint64(ehsize), shoff, uint32(0), uint16(ehsize), uint16(phsize), uint16(nph), uint16(shsize), uint16(4), uint16(3))
	if nph == 1 {
		size := uint64(len(d.Interp) + 1)
		put(uint32(elf.PT_INTERP), uint32(elf.PF_R), interpOff, interpOff, interpOff, size, size, uint64(1))
	}
	out.Write(data.Bytes())
	sh := func(name uint32, typ elf.SectionType, off, size uint64, link uint32, entsize uint64) {
		put(name, uint32(typ), uint64(0), uint64(0), off, size, link, uint32(0), uint64(1), entsize)
	}
	sh(0, elf.SHT_NULL, 0, 0, 0, 0)
	sh(1, elf.SHT_STRTAB, strOff, uint64(dynstr.Len()), 0, 0)
	sh(9, elf.SHT_DYNAMIC, dynOff, uint64(dyn.Len()), 1, 16)
	sh(18, elf.SHT_STRTAB, shstrOff, uint64(len(shstr)), 0, 0)
	return out.Bytes()
}
