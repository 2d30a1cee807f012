package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// Two harnesses, both holding every answer to the daemon's protocol rules,
// no daemon needed: sdktest.New serves the check in-process (fast, for the
// logic, against fixture files); sdktest.Start builds this plugin and runs
// it as the daemon does, in the sandbox the policy grants and the check
// declares (for what it reads on the real system).

// osRelease is the file the template reads by default; the README tells
// operators to grant it.
const osRelease = "/etc/os-release"

// TestSandboxAsShipped: the plugin as the daemon runs it, with the README's
// policy lines (plugins.template.sandbox.read_only: ["/etc/os-release"]),
// reads its default file; with nothing granted the finding says which
// policy line is missing.
func TestSandboxAsShipped(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(osRelease); err != nil {
		t.Skipf("this system has no %s: %v", osRelease, err)
	}
	// The grant is the README's own policy lines: the README cannot
	// drift from what works.
	granted := sdktest.Start(t, sdktest.Options{Grant: sdktest.DocumentedGrant(t, "README.md", name)})
	if err := granted.Configure(map[string]any{}); err != nil {
		t.Fatal(err)
	}
	res := granted.MustMeasure()
	var digests map[string]string
	if err := res.Decode("digests", &digests); err != nil || len(res.Findings) != 0 || len(digests[osRelease]) != 64 {
		t.Fatalf("granted: findings %+v, digests %v (%v)", res.Findings, digests, err)
	}

	denied := sdktest.Start(t, sdktest.Options{})
	if err := denied.Configure(map[string]any{}); err != nil {
		t.Fatal(err)
	}
	res = denied.MustMeasure()
	fs := res.Find(codeMissing)
	want := `open /etc/os-release: permission denied — the plugin's sandbox does not allow it; grant it in the policy: plugins.template.sandbox.read_only: ["/etc/os-release"]`
	if landlock(t) && (len(fs) != 1 || !strings.Contains(fs[0].Message, want)) {
		t.Fatalf("nothing granted: findings %+v, want one %s saying %q", res.Findings, codeMissing, want)
	}
}

// landlock reports whether the kernel enforces file sandboxes; without
// Landlock nothing is denied (the daemon then reports
// core.plugin_unconfined).
func landlock(t *testing.T) bool {
	t.Helper()
	raw, err := os.ReadFile("/sys/kernel/security/lsm")
	if err == nil && !strings.Contains(string(raw), "landlock") {
		t.Log("the kernel has no Landlock: nothing is denied")
		return false
	}
	return true
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	writable := filepath.Join(dir, "writable")
	missing := filepath.Join(dir, "missing")
	for path, mode := range map[string]os.FileMode{ok: 0o644, writable: 0o666} {
		if err := os.WriteFile(path, []byte("hello\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	const helloSHA256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	for i, tc := range []struct {
		paths    []string
		codes    []string // finding codes, in order
		digested []string
	}{
		{[]string{ok}, nil, []string{ok}},
		{[]string{writable}, []string{codeWritable}, []string{writable}},
		{[]string{missing}, []string{codeMissing}, nil},
		{[]string{ok, missing, writable}, []string{codeMissing, codeWritable}, []string{ok, writable}},
	} {
		h := sdktest.New(t, New())
		if err := h.Configure(map[string]any{"paths": tc.paths}); err != nil {
			t.Fatalf("Test %d: configure: %v", i, err)
		}
		res := h.MustMeasure()
		var codes []string
		for _, f := range res.Findings {
			codes = append(codes, f.Code)
		}
		if strings.Join(codes, ",") != strings.Join(tc.codes, ",") {
			t.Errorf("Test %d: findings %+v, want codes %v", i, res.Findings, tc.codes)
		}
		var digests map[string]string
		if err := res.Decode("digests", &digests); err != nil {
			t.Fatalf("Test %d: %v", i, err)
		}
		if len(digests) != len(tc.digested) {
			t.Errorf("Test %d: digests %v, want %v", i, digests, tc.digested)
		}
		for _, p := range tc.digested {
			if digests[p] != helloSHA256 {
				t.Errorf("Test %d: digest of %s = %q", i, p, digests[p])
			}
		}
	}
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		cfg  any
		want string // "" = accepted
	}{
		{map[string]any{"paths": []string{"/etc/hostname"}}, ""},
		{map[string]any{}, ""},
		{map[string]any{"paths": []string{"relative"}}, `paths[0]: "relative" is not an absolute path`},
		{map[string]any{"paths": "/etc/hostname"}, "paths: wrong type"},
		{map[string]any{"path": []string{"/etc/hostname"}}, "path: unknown key"},
	} {
		err := sdktest.New(t, New()).Configure(tc.cfg)
		var ce *sdk.ConfigError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Test %d: Configure(%v) = %v", i, tc.cfg, err)
		case tc.want != "" && (!errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Test %d: Configure(%v) = %v, want a ConfigError containing %q", i, tc.cfg, err, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	// sdktest.New already checks the description against the protocol.
	if d := sdktest.New(t, New()).Description(); d.Name != name || len(d.Findings) != 2 {
		t.Errorf("description %+v", d)
	}
}
