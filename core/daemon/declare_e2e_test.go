package daemon_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// TestBuiltinSandboxFromExecutable: the daemon grants a built-in what the
// executable in plugin_dir declares, not what its own compiled copy of
// the plugin would: an attestor-check-kernel that declares a folder the
// kernel check never names reads a file there, and is still refused a file
// it did not declare.
func TestBuiltinSandboxFromExecutable(t *testing.T) {
	t.Parallel()
	e := daemontest.New(t, daemontest.Options{})
	e.InstallTestPlugin("declarer", "kernel")
	declared := filepath.Join(e.Dir, "declared")
	other := filepath.Join(e.Dir, "other")
	for _, d := range []string{declared, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.EditPolicy(func(doc map[string]any) {
		daemontest.SetPolicyKey(doc, map[string]any{
			"sandbox": map[string]any{"read_only": []string{declared}},
			"read":    []string{filepath.Join(declared, "f"), filepath.Join(other, "f")},
		}, "plugins", "kernel", "config")
	})
	p := e.Start()
	defer p.Stop()
	_, b := fetchBundle(t, e)
	kernel, _ := b["checks"].(map[string]any)["kernel"].(map[string]any)
	got := map[string]string{}
	for _, f := range kernel["findings"].([]any) {
		m := f.(map[string]any)
		subject, _ := m["subject"].(string)
		got[subject] = m["code"].(string)
	}
	if got[filepath.Join(declared, "f")] != "kernel.read_ok" || got[filepath.Join(other, "f")] != "kernel.read_denied" {
		t.Fatalf("kernel findings %v: want the declared file read and the other denied\n%s", got, p.Stderr())
	}
}
