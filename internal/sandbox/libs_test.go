package sandbox

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLibraryCandidatesChecked: what a plugin's absolute DT_NEEDED names
// is granted only when it is a regular ELF file of the plugin's class and
// machine; anything else (a key, a FIFO, a folder, a link to one) is
// skipped without an error (so nothing of its bytes reaches a message)
// and without blocking.
func TestLibraryCandidatesChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := []byte("SECRET-KEY-BYTES")
	key := filepath.Join(dir, "key")
	fifo := filepath.Join(dir, "fifo")
	folder := filepath.Join(dir, "folder")
	folderLink := filepath.Join(dir, "folder-link")
	lib := dynELF{}.write(t, dir, "libok.so")
	if err := os.WriteFile(key, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(folder, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(folder, folderLink); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, needed string
		granted      bool
	}{
		{"a library", lib, true},
		{"a key", key, false},
		{"a FIFO", fifo, false},
		{"a folder", folder, false},
		{"a link to a folder", folderLink, false},
		{"nothing", filepath.Join(dir, "missing"), false},
	} {
		exe := dynELF{needed: []string{c.needed}}.write(t, dir, "plugin-"+strings.ReplaceAll(c.name, " ", "-"))
		done := make(chan struct{})
		var cl closure
		var err error
		go func() {
			defer close(done)
			cl, err = execClosure([]string{exe}, ldConfig{})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the walk still blocks after 10s", c.name)
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := slices.Contains(cl.readPaths(), c.needed); got != c.granted {
			t.Errorf("%s: granted %v, want %v (read %v)", c.name, got, c.granted, cl.readPaths())
		}
		for _, h := range cl.held {
			if fi, err := h.f.Stat(); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s: held %s is no regular file (%v)", c.name, h.path, err)
			}
		}
		cl.close()
	}
	// A plugin executable that is no well-formed ELF: the error names the
	// kind of problem, never the bytes.
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, append([]byte(elf.ELFMAG), secret...), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := execClosure([]string{bad}, ldConfig{})
	if err == nil || bytes.Contains([]byte(err.Error()), secret[:4]) {
		t.Errorf("malformed executable: %v, want an error without its bytes", err)
	}
}
