package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/policy"
)

// TestDeclareCacheNeverGranted: no policy grant may write the declare
// cache folder or file (a plugin able to would widen a built-in's sandbox
// at the next start), nor anything in or above the plugin folder (it could
// change another plugin's executable); a grant beside either is accepted.
func TestDeclareCacheNeverGranted(t *testing.T) {
	t.Parallel()
	pol := policy.Default()
	dir := declareCacheDir(pol)
	for _, c := range []struct {
		name string
		g    sandbox.Rules
		want string
	}{
		{"the folder read-write", sandbox.Rules{ReadWrite: []string{dir}}, "the declare cache folder"},
		{"the file read-write", sandbox.Rules{ReadWrite: []string{filepath.Join(dir, pluginhost.DeclareCacheFile)}}, "the declare cache beside"},
		{"the digest file read-write", sandbox.Rules{ReadWrite: []string{filepath.Join(dir, pluginhost.DigestCacheFile)}}, "the digest cache beside"},
		{"the folder read-only", sandbox.Rules{ReadOnly: []string{dir}}, ""},
		{"a sibling folder", sandbox.Rules{ReadWrite: []string{dir + "x"}}, ""},
		{"the plugin folder read-write", sandbox.Rules{ReadWrite: []string{pol.PluginDir}}, "in or above plugin_dir"},
		{"a plugin file read-write", sandbox.Rules{ReadWrite: []string{filepath.Join(pol.PluginDir, "attestor-check-tpm")}}, "in or above plugin_dir"},
		{"a folder above the plugins read-write", sandbox.Rules{ReadWrite: []string{filepath.Dir(pol.PluginDir)}}, "in or above plugin_dir"},
		{"the plugin folder as a device", sandbox.Rules{Devices: []string{pol.PluginDir}}, "in or above plugin_dir"},
		{"the plugin folder read-only", sandbox.Rules{ReadOnly: []string{pol.PluginDir}}, ""},
		{"a sibling of the plugin folder", sandbox.Rules{ReadWrite: []string{pol.PluginDir + "-data"}}, ""},
	} {
		err := exposes(pol, c.g)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: exposes = %v, want %q", c.name, err, c.want)
		}
	}
}

// cacheEnv is declareEnv with the declare cache on, keyed from an HMAC key
// in the policy's own folder; restart gives a fresh daemon (a new start)
// on the same files.
func cacheEnv(t *testing.T, as string) (d *daemon, pol *policy.Policy, restart func() *daemon) {
	t.Helper()
	d, pol = declareEnv(t, as)
	pol.HMACKeyPath = filepath.Join(t.TempDir(), "hmac.key")
	if err := os.WriteFile(pol.HMACKeyPath, bytes.Repeat([]byte{1}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	launcher := testbin.Build(t, "./cmd/runtime-attestor", "runtime-attestor")
	restart = func() *daemon {
		o := declarerOptions(pol, hclog.NewNullLogger())
		if o.CacheDir == "" {
			t.Fatal("no declare cache")
		}
		o.Launcher, o.Timeout = launcher, 5*time.Second
		return &daemon{logger: hclog.NewNullLogger(), declarer: pluginhost.NewDeclarer(o)}
	}
	return restart(), pol, restart
}

// TestDeclareCachedAtRestart: a start with unchanged plugins and policy
// runs no declare run and grants what the first start granted.
func TestDeclareCachedAtRestart(t *testing.T) {
	t.Parallel()
	d, pol, restart := cacheEnv(t, "kernel")
	pol.Plugins["kernel"] = policy.PluginPolicy{Enabled: true, Config: map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/proc/cmdline"}}}}
	first, err := d.pluginGrants(context.Background(), pol)
	if err != nil {
		t.Fatal(err)
	}
	d = restart()
	again, err := d.pluginGrants(context.Background(), pol)
	if err != nil {
		t.Fatal(err)
	}
	if d.declarer.Runs() != 0 || !slices.Equal(again.rules["kernel"].ReadOnly, first.rules["kernel"].ReadOnly) {
		t.Errorf("restart: %d runs, kernel granted %+v; want 0 runs and %+v", d.declarer.Runs(), again.rules["kernel"], first.rules["kernel"])
	}
}

// TestForgedBuiltinDeclaration: a cache file rewritten to declare wider
// access (read-write /etc) for the built-in's own digest, by someone
// without the daemon's HMAC key, is ignored: the built-in declares again
// and is granted what its executable declares, and the file is rewritten.
func TestForgedBuiltinDeclaration(t *testing.T) {
	t.Parallel()
	d, pol, restart := cacheEnv(t, "kernel")
	pol.Plugins["kernel"] = policy.PluginPolicy{Enabled: true, Config: map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/proc/cmdline"}}}}
	if _, err := d.pluginGrants(context.Background(), pol); err != nil {
		t.Fatal(err)
	}
	file := declareCacheFile(pol)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(raw, []byte(`"sandbox":{"read_only":["/proc/cmdline"]}`), []byte(`"sandbox":{"read_only":["/proc/cmdline"],"read_write":["/etc"]}`), 1)
	if bytes.Equal(forged, raw) {
		t.Fatalf("cache file %s does not hold the declaration as expected", raw)
	}
	if err := os.WriteFile(file, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	d = restart()
	g, err := d.pluginGrants(context.Background(), pol)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.rules["kernel"]; len(got.ReadWrite) != 0 || d.declarer.Runs() != 1 {
		t.Errorf("after the forgery: kernel granted %+v with %d declare runs, want the executable's own declaration (1 run)", got, d.declarer.Runs())
	}
	if now, _ := os.ReadFile(file); bytes.Contains(now, []byte("/etc")) {
		t.Errorf("the forged file was kept: %s", now)
	}
}

// reMAC rewrites the cache file with old replaced by new in its entries
// and a valid MAC: the forgery of someone holding the daemon's HMAC key.
func reMAC(t *testing.T, pol *policy.Policy, old, new string) {
	t.Helper()
	file := declareCacheFile(pol)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Format  string          `json:"format"`
		MAC     string          `json:"mac"`
		Entries json.RawMessage `json:"entries"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(f.Entries), old, new, 1)
	if forged == string(f.Entries) {
		t.Fatalf("cache entries %s lack %s", f.Entries, old)
	}
	secret, err := os.ReadFile(pol.HMACKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	k := hmac.New(sha256.New, secret)
	k.Write([]byte("runtime-attestor declare cache v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(forged))
	f.Entries, f.MAC = json.RawMessage(forged), hex.EncodeToString(m.Sum(nil))
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestForgedEntryWithTheKey: even a cache entry forged with the daemon's
// HMAC key is capped. A third-party plugin's forged declaration of wide
// access changes nothing of its grant (the policy's alone, with a
// finding); a built-in's forged declaration of the signing key's folder
// makes the policy refused.
func TestForgedEntryWithTheKey(t *testing.T) {
	t.Parallel()
	t.Run("third-party", func(t *testing.T) {
		t.Parallel()
		d, pol, restart := cacheEnv(t, "vendor")
		pol.Plugins["vendor"] = policy.PluginPolicy{Enabled: true, Config: map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/usr/share"}}},
			Sandbox: policy.Grant{ReadOnly: []string{"/usr/share"}}}
		if _, err := d.pluginGrants(context.Background(), pol); err != nil {
			t.Fatal(err)
		}
		reMAC(t, pol, `"read_only":["/usr/share"]`, `"read_only":["/usr/share"],"read_write":["/etc"]`)
		d = restart()
		g, err := d.pluginGrants(context.Background(), pol)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.rules["vendor"]; len(got.ReadWrite) != 0 || !slices.Equal(got.ReadOnly, []string{"/usr/share"}) || d.declarer.Runs() != 0 {
			t.Errorf("vendor granted %+v (%d runs), want its policy grant only from the recalled entry", got, d.declarer.Runs())
		}
		if n := g.notices["vendor"]; len(n) != 1 || !strings.Contains(n[0].Message, `read_write: ["/etc"]`) {
			t.Errorf("notices %+v, want the forged declaration named as not granted", n)
		}
	})
	t.Run("built-in", func(t *testing.T) {
		t.Parallel()
		d, pol, restart := cacheEnv(t, "kernel")
		pol.Plugins["kernel"] = policy.PluginPolicy{Enabled: true, Config: map[string]any{"sandbox": sandbox.Rules{ReadOnly: []string{"/proc/cmdline"}}}}
		if _, err := d.pluginGrants(context.Background(), pol); err != nil {
			t.Fatal(err)
		}
		reMAC(t, pol, `"read_only":["/proc/cmdline"]`, `"read_only":["/proc/cmdline",`+strconv.Quote(filepath.Dir(pol.SigningKeyPath))+`]`)
		if _, err := restart().pluginGrants(context.Background(), pol); err == nil || !strings.Contains(err.Error(), "(signing_key_path)") {
			t.Errorf("pluginGrants = %v, want the forged declaration of the signing key's folder refused", err)
		}
	})
}
