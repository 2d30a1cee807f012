package pluginhost

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/declare"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

var testCacheSecret = bytes.Repeat([]byte{7}, 32)

func cachedDeclarer(t testing.TB, dir string, secret []byte) *Declarer {
	t.Helper()
	return NewDeclarer(DeclarerOptions{Launcher: launcher(t), Timeout: 30 * time.Second, CacheDir: dir, CacheSecret: secret})
}

// declareSaved declares vendor in plugins with a new Declarer on cache and
// saves; it returns the declaration and how many declare runs it took.
func declareSaved(t *testing.T, cache, plugins string, cfg map[string]any) (*Declared, int64) {
	t.Helper()
	d := cachedDeclarer(t, cache, testCacheSecret)
	got, err := declareIn(t, d, plugins, "vendor", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Save(); err != nil {
		t.Fatal(err)
	}
	return got, d.Runs()
}

// TestDeclareCacheAcrossRestarts: a Declarer started again with the same
// executable and configuration runs no declare run and gets the same
// declaration; another configuration, or a changed executable, declares
// again. The folder is 0700 and the file 0600, with no temporary left.
func TestDeclareCacheAcrossRestarts(t *testing.T) {
	t.Parallel()
	plugins, cache := t.TempDir(), filepath.Join(t.TempDir(), "declare")
	install(t, plugins, "declarer", "vendor")
	cfg := map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/etc/hostname"}}}
	first, runs := declareSaved(t, cache, plugins, cfg)
	if runs != 1 {
		t.Fatalf("%d declare runs at the first start, want 1", runs)
	}
	again, runs := declareSaved(t, cache, plugins, cfg)
	if runs != 0 || !reflect.DeepEqual(first, again) {
		t.Errorf("second start: %d runs, declared %+v, want 0 runs and %+v", runs, again, first)
	}
	if _, runs := declareSaved(t, cache, plugins, map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/etc/os-release"}}}); runs != 1 {
		t.Errorf("another configuration: %d runs, want 1", runs)
	}
	install(t, plugins, "good", "vendor") // another executable under the same name
	if d, err := declareIn(t, cachedDeclarer(t, cache, testCacheSecret), plugins, "vendor", cfg); err == nil && d.SHA256 == first.SHA256 {
		t.Errorf("a replaced executable got the old declaration %+v", d)
	}
	for path, want := range map[string]os.FileMode{cache: 0o700, filepath.Join(cache, DeclareCacheFile): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v, want %#o", path, err, st.Mode().Perm(), want)
		}
	}
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		if e.Name() != DeclareCacheFile && e.Name() != DigestCacheFile {
			t.Errorf("cache folder holds %s, want the caches alone", e.Name())
		}
	}
}

// TestDeclareCacheRefused: a cache file that is corrupt, forged (a MAC
// under another key, or a valid MAC over a declaration the host refuses),
// foreign (another owner, group-readable, a symbolic link), oversized, or
// of another protocol is not used: the plugin declares again, and the
// file is rewritten so that the next start runs nothing.
func TestDeclareCacheRefused(t *testing.T) {
	t.Parallel()
	cfg := map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/etc/hostname"}}}
	wide := []byte(`{"name":"vendor","version":"1","sandbox":{"read_write":["/etc"]}}`)
	cases := []struct {
		name  string
		spoil func(t *testing.T, file string, key declKey)
	}{
		{"garbage", func(t *testing.T, file string, _ declKey) { writeRaw(t, file, []byte("{not json")) }},
		{"unknown member", func(t *testing.T, file string, key declKey) {
			raw := forge(t, key, wide, declare.Protocol, testCacheSecret)
			writeRaw(t, file, append(raw[:len(raw)-2], []byte(`,"extra":1}`)...))
		}},
		{"trailing data", func(t *testing.T, file string, key declKey) {
			writeRaw(t, file, append(forge(t, key, wide, declare.Protocol, testCacheSecret), "{}"...))
		}},
		{"forged without the key", func(t *testing.T, file string, key declKey) {
			writeRaw(t, file, forge(t, key, wide, declare.Protocol, []byte("the attacker's own key, 32 bytes")))
		}},
		{"valid MAC, refused declaration", func(t *testing.T, file string, key declKey) {
			writeRaw(t, file, forge(t, key, []byte(`{"name":"vendor","version":"1","sandbox":{"read_only":["/"]}}`), declare.Protocol, testCacheSecret))
		}},
		{"valid MAC, another plugin's name", func(t *testing.T, file string, key declKey) {
			writeRaw(t, file, forge(t, key, []byte(`{"name":"tpm","version":"1"}`), declare.Protocol, testCacheSecret))
		}},
		{"another protocol", func(t *testing.T, file string, key declKey) {
			writeRaw(t, file, forge(t, key, wide, declare.Protocol+1, testCacheSecret))
		}},
		{"oversized", func(t *testing.T, file string, _ declKey) {
			writeRaw(t, file, bytes.Repeat([]byte(" "), MaxDeclareCache+1))
		}},
		{"group-readable", func(t *testing.T, file string, key declKey) {
			writeRaw(t, file, forge(t, key, wide, declare.Protocol, testCacheSecret))
			chmodFile(t, file, 0o640)
		}},
		{"another owner", func(t *testing.T, file string, key declKey) {
			writeRaw(t, file, forge(t, key, wide, declare.Protocol, testCacheSecret))
			if err := os.Chown(file, 4242, 4242); err != nil {
				t.Skip("cannot change owner:", err)
			}
		}},
		{"symbolic link", func(t *testing.T, file string, key declKey) {
			other := filepath.Join(t.TempDir(), "elsewhere")
			writeRaw(t, other, forge(t, key, wide, declare.Protocol, testCacheSecret))
			os.Remove(file)
			if err := os.Symlink(other, file); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			plugins, cache := t.TempDir(), filepath.Join(t.TempDir(), "declare")
			install(t, plugins, "declarer", "vendor")
			first, _ := declareSaved(t, cache, plugins, cfg)
			c.spoil(t, filepath.Join(cache, DeclareCacheFile), declKey{sha: first.SHA256, config: configSum(t, cfg)})
			got, runs := declareSaved(t, cache, plugins, cfg)
			if runs != 1 || !reflect.DeepEqual(got.Sandbox, first.Sandbox) {
				t.Errorf("%d runs, declared %+v; want the file ignored, 1 run and %+v", runs, got.Sandbox, first.Sandbox)
			}
			if _, runs := declareSaved(t, cache, plugins, cfg); runs != 0 {
				t.Errorf("after the rewrite: %d runs, want 0", runs)
			}
		})
	}
}

// forge is a cache file holding decl under key, MACed with secret.
func forge(t *testing.T, key declKey, decl []byte, protocol int, secret []byte) []byte {
	t.Helper()
	raw, err := encodeCache([]cacheEntry{{SHA256: key.sha, ConfigSHA256: key.config, Protocol: protocol, Declaration: json.RawMessage(decl)}}, secret)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func configSum(t *testing.T, cfg map[string]any) string {
	t.Helper()
	return hexSum(string(declareConfig(t, cfg)))
}

func writeRaw(t *testing.T, path string, raw []byte) {
	t.Helper()
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func chmodFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestDeclareCacheFolderRefused: a cache folder another user may enter,
// or a symbolic link, is neither read nor written.
func TestDeclareCacheFolderRefused(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"open folder", "link"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			plugins, cache := t.TempDir(), filepath.Join(t.TempDir(), "declare")
			install(t, plugins, "declarer", "vendor")
			if name == "link" {
				if err := os.Symlink(t.TempDir(), cache); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Mkdir(cache, 0o755); err != nil {
				t.Fatal(err)
			}
			d := cachedDeclarer(t, cache, testCacheSecret)
			if _, err := declareIn(t, d, plugins, "vendor", map[string]any{}); err != nil {
				t.Fatal(err)
			}
			if err := d.Save(); err == nil || !strings.Contains(err.Error(), cache) {
				t.Errorf("Save = %v, want the folder refused", err)
			}
		})
	}
}
