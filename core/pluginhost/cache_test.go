package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// settle is the racy margin the cache tests use, and how long they wait
// after writing a file before its digest may be remembered.
const settle = 50 * time.Millisecond

// asRoot skips a test of remembered digests when the tests do not run as
// root: only the digest of a root-owned plugin file is remembered
// (rememberable), and a file the tests write is owned by their user.
func asRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("digests are remembered only for root-owned plugin files: run the tests as root to cover it")
	}
}

// cacheHost is a host that can verify the files in dir (no plugin runs).
func cacheHost(t *testing.T, dir string, margin time.Duration) *Host {
	t.Helper()
	h := New(Options{Dir: dir})
	h.realDir = dir
	h.racyMargin = margin
	t.Cleanup(h.Close)
	return h
}

func writeExec(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// verifyOnce verifies p and returns the digest and whether it was
// computed (not remembered).
func verifyOnce(t *testing.T, h *Host, p *plugin) (string, bool, *fault) {
	t.Helper()
	before := h.hashes.Load()
	bf, f := h.verify(p)
	hashed := h.hashes.Load() != before
	if f != nil {
		return "", hashed, f
	}
	defer bf.close()
	return bf.sha, hashed, nil
}

// TestDigestCache: an unchanged file is hashed once; every change an
// unprivileged or owning process can make to it forces a new hash, and the
// new digest is the file's.
func TestDigestCache(t *testing.T) {
	t.Parallel()
	asRoot(t)
	const first = "#!/bin/true first content"
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		want   string // content after the change
	}{
		{"nothing", func(*testing.T, string) {}, first},
		{"touch", func(t *testing.T, path string) {
			now := time.Now()
			if err := os.Chtimes(path, now, now); err != nil {
				t.Fatal(err)
			}
		}, first},
		{"rewrite in place, same size, mtime restored", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("#!/bin/true SECOND content"[:len(first)]), 0); err != nil {
				t.Fatal(err)
			}
			f.Close()
			// The owner can put mtime back; it cannot put ctime back.
			if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, "#!/bin/true SECOND content"[:len(first)]},
		{"rewrite, other size", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(first+" and more"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, first + " and more"},
		{"renamed over, same bytes", func(t *testing.T, path string) { writeExec(t, path, first) }, first},
		{"renamed over, same size", func(t *testing.T, path string) {
			writeExec(t, path, strings.ToUpper(first))
		}, strings.ToUpper(first)},
		{"chmod", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, first},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, FilePrefix+"c")
			writeExec(t, path, first)
			time.Sleep(2 * settle)
			h := cacheHost(t, dir, settle)
			p := &plugin{name: "c", path: path, spec: Spec{Name: "c", Enabled: true}}
			if sha, hashed, f := verifyOnce(t, h, p); f != nil || !hashed || sha != hexSum(first) {
				t.Fatalf("first verify: sha %s hashed %v fault %v, want %s hashed", sha, hashed, f, hexSum(first))
			}
			if _, hashed, f := verifyOnce(t, h, p); f != nil || hashed {
				t.Fatalf("second verify of the unchanged file: hashed %v fault %v, want the remembered digest", hashed, f)
			}
			time.Sleep(2 * settle) // the change lands in a later timestamp tick
			tt.change(t, path)
			sha, hashed, f := verifyOnce(t, h, p)
			if f != nil {
				t.Fatalf("verify after the change: %v", f)
			}
			if tt.name == "nothing" {
				if hashed {
					t.Errorf("an unchanged file was hashed again")
				}
			} else if !hashed {
				t.Errorf("the change left the remembered digest in use")
			}
			if sha != hexSum(tt.want) {
				t.Errorf("sha %s after the change, want %s", sha, hexSum(tt.want))
			}
		})
	}
}

// TestDigestCacheRacy: a file changed within the racy margin before its
// hash is not remembered, since a second write in the same timestamp tick
// could leave its identity unchanged.
func TestDigestCacheRacy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, FilePrefix+"r")
	writeExec(t, path, "fresh")
	h := cacheHost(t, dir, time.Hour)
	p := &plugin{name: "r", path: path, spec: Spec{Name: "r", Enabled: true}}
	for i := range 2 {
		if _, hashed, f := verifyOnce(t, h, p); f != nil || !hashed {
			t.Fatalf("verify %d of a fresh file: hashed %v fault %v, want hashed each time", i, hashed, f)
		}
	}
}

// TestDigestCachePinned: a pinned plugin whose file is rewritten (same
// size, mtime restored) after its digest was remembered is hashed again and
// refused.
func TestDigestCachePinned(t *testing.T) {
	t.Parallel()
	asRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, FilePrefix+"pinned")
	writeExec(t, path, "good bytes")
	time.Sleep(2 * settle)
	h := cacheHost(t, dir, settle)
	p := &plugin{name: "pinned", path: path, spec: Spec{Name: "pinned", Enabled: true, SHA256: hexSum("good bytes")}}
	for range 2 {
		if _, _, f := verifyOnce(t, h, p); f != nil {
			t.Fatalf("verify of the pinned file: %v", f)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * settle)
	if err := os.WriteFile(path, []byte("evil bytes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	_, hashed, f := verifyOnce(t, h, p)
	if !hashed || f == nil || f.kind != FaultUntrusted || !strings.Contains(f.msg, "not the pinned") {
		t.Fatalf("rewritten pinned file: hashed %v fault %+v, want hashed and refused", hashed, f)
	}
}

// TestDigestsShared: a host sharing its Digests with another (the daemon's
// Declarer and Host) does not hash a file the other hashed while the file
// is unchanged, and hashes it again once it changes.
func TestDigestsShared(t *testing.T) {
	t.Parallel()
	asRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, FilePrefix+"shared")
	writeExec(t, path, "#!/bin/sh\necho one\n")
	time.Sleep(2 * settle)
	shared := NewDigests()
	if d := NewDeclarer(DeclarerOptions{Digests: shared}); d.Digests() != shared {
		t.Fatal("the Declarer does not use the Digests it was given")
	}
	first, second := cacheHost(t, dir, settle), cacheHost(t, dir, settle)
	first.digests, second.digests = shared, shared
	p := &plugin{name: "shared", path: path}
	if _, hashed, f := verifyOnce(t, first, p); f != nil || !hashed {
		t.Fatalf("first verify: hashed %v, fault %v; want a hash", hashed, f)
	}
	if sha, hashed, f := verifyOnce(t, second, p); f != nil || hashed || sha != hexSum("#!/bin/sh\necho one\n") {
		t.Fatalf("second host: sha %s, hashed %v, fault %v; want the shared digest, no hash", sha, hashed, f)
	}
	writeExec(t, path, "#!/bin/sh\necho two\n")
	if sha, hashed, f := verifyOnce(t, second, p); f != nil || !hashed || sha != hexSum("#!/bin/sh\necho two\n") {
		t.Fatalf("after a change: sha %s, hashed %v, fault %v; want a new hash", sha, hashed, f)
	}
}

// TestDigestNotRememberedUnlessRootOwned: the digest of a plugin file
// owned by the daemon's own user is not reused, because its owner can
// change it through a shared writable mapping without changing its mtime
// or ctime: the attack is tried, and the changed bytes are hashed.
func TestDigestNotRememberedUnlessRootOwned(t *testing.T) {
	t.Parallel()
	asRoot(t) // to give the file to another user
	const owner = 4321
	dir := t.TempDir()
	path := filepath.Join(dir, FilePrefix+"owned")
	writeExec(t, path, "#!/bin/true original bytes")
	if err := os.Chown(path, owner, owner); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := syscall.Mmap(int(f.Fd()), 0, len("#!/bin/true original bytes"), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	mem[12] = 'O' // the page is now writable: later writes leave the times alone
	time.Sleep(2 * settle)
	h := cacheHost(t, dir, settle)
	h.euid = owner // the daemon's user owns the file
	p := &plugin{name: "owned", path: path, spec: Spec{Name: "owned", Enabled: true}}
	first, hashed, fault := verifyOnce(t, h, p)
	if fault != nil || !hashed || first != hexSum("#!/bin/true Original bytes") {
		t.Fatalf("first verify: %s hashed %v fault %v", first, hashed, fault)
	}
	mem[12] = 'X'
	second, hashed, fault := verifyOnce(t, h, p)
	if fault != nil || !hashed || second != hexSum("#!/bin/true Xriginal bytes") {
		t.Fatalf("after a write through the mapping: %s hashed %v fault %v, want the new bytes hashed", second, hashed, fault)
	}
}
