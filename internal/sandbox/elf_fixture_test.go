package sandbox

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/elffixture"
)

// dynELF is an elffixture.Dynamic: a minimal x86-64 ELF object with a
// dynamic section, what the author of a hostile plugin or library writes.
type dynELF struct {
	interp                 string
	needed, rpath, runpath []string
}

func (d dynELF) bytes() []byte {
	return elffixture.Dynamic{Interp: d.interp, Needed: d.needed, RPath: d.rpath, RunPath: d.runpath}.Bytes()
}

// write writes d to dir/name, executable, and returns the path.
func (d dynELF) write(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, d.bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDynELFFixture(t *testing.T) {
	t.Parallel()
	d := dynELF{interp: "/lib/ld.so", needed: []string{"liba.so", "/abs/libb.so"}, rpath: []string{"/r"}, runpath: []string{"$ORIGIN/x"}}
	ef, err := elf.NewFile(bytes.NewReader(d.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	needed, err := ef.DynString(elf.DT_NEEDED)
	if err != nil || len(needed) != 2 || needed[1] != "/abs/libb.so" {
		t.Fatalf("needed %v %v", needed, err)
	}
	if rp, _ := ef.DynString(elf.DT_RUNPATH); len(rp) != 1 || rp[0] != "$ORIGIN/x" {
		t.Fatalf("runpath %v", rp)
	}
	if len(ef.Progs) != 1 || ef.Progs[0].Type != elf.PT_INTERP {
		t.Fatalf("progs %v", ef.Progs)
	}
}

// rooted reports whether nobody but root can change what p leads to.
func rooted(p string) bool {
	_, ok := rootedPath(p)
	return ok
}
