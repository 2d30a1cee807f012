package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
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
// at the next start); a grant beside it is accepted.
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
		{"the folder read-only", sandbox.Rules{ReadOnly: []string{dir}}, ""},
		{"a sibling folder", sandbox.Rules{ReadWrite: []string{dir + "x"}}, ""},
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
