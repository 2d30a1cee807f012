package pluginhost

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// restart is a new Declarer on cache, as the daemon makes at each start,
// that declares plugins/attestor-check-vendor under pin and saves; it
// returns the digest, how many files it hashed and the error.
func restart(t *testing.T, cache, plugins, pin string, secret []byte) (string, int64, error) {
	t.Helper()
	d := cachedDeclarer(t, cache, secret)
	d.margin = settle
	got, err := d.Declare(t.Context(), plugins, "vendor", pin, declareConfig(t, map[string]any{}))
	if err := d.Save(); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		return "", d.hashes.Load(), err
	}
	return got.SHA256, d.hashes.Load(), nil
}

// TestDigestCacheAcrossRestarts: a restart does not hash an unchanged
// plugin file again; every change the file's owner or anyone else can
// make to it (new content renamed over it, a write in place with its size
// and mtime put back, a chmod), a pinned digest it no longer has, and a
// cache file forged or spoilt make the next start hash it in full.
func TestDigestCacheAcrossRestarts(t *testing.T) {
	t.Parallel()
	asRoot(t)
	plugins, cache := t.TempDir(), filepath.Join(t.TempDir(), "declare")
	exe := install(t, plugins, "declarer", "vendor")
	want := sha256File(t, exe)
	time.Sleep(2 * settle)
	if sha, n, err := restart(t, cache, plugins, "", testCacheSecret); err != nil || n != 1 || sha != want {
		t.Fatalf("first start: sha %s, %d hashes, %v; want %s, 1 hash", sha, n, err, want)
	}
	if st, err := os.Stat(filepath.Join(cache, DigestCacheFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("digest cache: %v, want a 0600 file", err)
	}
	if sha, n, err := restart(t, cache, plugins, want, testCacheSecret); err != nil || n != 0 || sha != want {
		t.Fatalf("restart, unchanged: sha %s, %d hashes, %v; want the remembered %s, no hash", sha, n, err, want)
	}
	for _, c := range []struct {
		name   string
		change func(t *testing.T)
	}{
		{"same bytes renamed over it", func(t *testing.T) { copyOver(t, exe) }},
		{"written in place, size and mtime put back", func(t *testing.T) { writeInPlace(t, exe) }},
		{"chmod", func(t *testing.T) { setMode(t, exe, 0o700); setMode(t, exe, 0o755) }},
	} {
		c.change(t)
		time.Sleep(2 * settle)
		if sha, n, err := restart(t, cache, plugins, "", testCacheSecret); err != nil || n != 1 || sha != sha256File(t, exe) {
			t.Errorf("%s: sha %s, %d hashes, %v; want a new hash of the file", c.name, sha, n, err)
		}
	}
	// A pin the remembered digest does not meet is refused, as a hash's.
	if _, _, err := restart(t, cache, plugins, strings.Repeat("0", 64), testCacheSecret); err == nil || !strings.Contains(err.Error(), "not the pinned") {
		t.Errorf("wrong pin with a remembered digest: %v, want refused", err)
	}
	file := filepath.Join(cache, DigestCacheFile)
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want = sha256File(t, exe)
	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"digest swapped, MAC kept", bytes.Replace(good, []byte(want), []byte(strings.Repeat("a", 64)), 1)},
		{"not JSON", []byte("{")},
		{"empty", nil},
	} {
		if err := os.WriteFile(file, c.raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if sha, n, err := restart(t, cache, plugins, "", testCacheSecret); err != nil || n != 1 || sha != want {
			t.Errorf("%s: sha %s, %d hashes, %v; want the file hashed again", c.name, sha, n, err)
		}
		if sha, n, err := restart(t, cache, plugins, "", testCacheSecret); err != nil || n != 0 || sha != want {
			t.Errorf("%s, rewritten: sha %s, %d hashes, %v; want the rewritten digest", c.name, sha, n, err)
		}
	}
	// A file MACed under another key (anyone without the daemon's).
	other := bytes.Repeat([]byte{9}, 32)
	if _, n, _ := restart(t, cache, plugins, "", other); n != 1 {
		t.Errorf("a file MACed under another key: %d hashes, want 1", n)
	}
}

// copyOver renames a copy of path over it: the same bytes, a new inode.
func copyOver(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", raw, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// writeInPlace changes one byte of path's trailing padding in place and
// puts its mtime back: only the ctime tells.
func writeInPlace(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Appending and truncating back changes nothing a size or an mtime
	// shows, after Chtimes; a flip of the last byte would too, but the
	// executable must stay runnable for the declare run.
	if _, err := f.WriteAt([]byte{0}, st.Size()); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(st.Size()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func setMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
