package pluginhost

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// TestExternalPlugin: a plugin written outside this repository, against
// sdk/ only, and dropped into the plugin directory is discovered, run and
// reported, unpinned (as a third-party plugin, RunUnlisted) and pinned.
//
// The plugin is a brand-new Go module in a temporary folder, made of the
// commented template (examples/template-check) as a vendor would copy it
// (testbin.VendorModule: its own go.mod as `go mod tidy` writes it, this
// module through a replace to the checkout). It is built offline
// (GOPROXY=off, -mod=readonly, so an incomplete go.mod fails) from the
// module cache that building this test filled, which is all a fresh
// machine has.
func TestExternalPlugin(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is not on PATH (%v): a vendor's plugin cannot be built", err)
	}
	mod := testbin.VendorModule(t, "./examples/template-check", "main.go", "check.go")
	dir := t.TempDir()
	exe := filepath.Join(dir, FilePrefix+"template")
	build := exec.Command("go", "build", "-o", exe, ".")
	build.Dir = mod
	build.Env = append(testbin.Offline(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	build.Stderr = &stderr
	if err := build.Run(); err != nil {
		goMod, _ := os.ReadFile(filepath.Join(mod, "go.mod"))
		t.Fatalf("building the external plugin offline with the go.mod\n%s\n%v\n%s", goMod, err, stderr.String())
	}
	if err := os.Chmod(exe, 0o755); err != nil {
		t.Fatal(err)
	}
	fixture := filepath.Join(t.TempDir(), "watched")
	if err := os.WriteFile(fixture, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, r Result) {
		t.Helper()
		if r.Fault != "" || r.Version != "1.0.0" || r.SHA256 != sha256File(t, exe) || r.Path != exe {
			t.Fatalf("template result %+v", r)
		}
		if _, ok := r.Measurements["digests"]; !ok {
			t.Errorf("no digests measurement: %v", r.Measurements)
		}
	}

	t.Run("unpinned_unlisted", func(t *testing.T) {
		install(t, dir, "good", "good")
		hs := newHarness(t, Options{Dir: dir, RunUnlisted: true, Plugins: []Spec{{Name: "good", Enabled: true}}})
		hs.start()
		rs := hs.measure()
		wantGood(t, rs, "good")
		r, ok := rs["template"]
		if !ok {
			t.Fatalf("the dropped-in plugin was not discovered: %v", keys(rs))
		}
		check(t, r)
		// Run with config {}: the default path.
		if len(r.Findings) > 1 {
			t.Errorf("findings %+v", r.Findings)
		}
	})
	t.Run("pinned_configured", func(t *testing.T) {
		hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{
			Name: "template", Enabled: true, SHA256: sha256File(t, exe),
			ConfigJSON: cfg("paths", []string{fixture, filepath.Join(filepath.Dir(fixture), "absent")}),
		}}})
		hs.start()
		r := hs.measure()["template"]
		check(t, r)
		var digests map[string]string
		if err := json.Unmarshal(r.Measurements["digests"], &digests); err != nil || digests[fixture] != "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" {
			t.Errorf("digests %v (%v)", digests, err)
		}
		if len(r.Findings) != 1 || r.Findings[0].Code != "template.missing" || r.Findings[0].Severity != sdk.SeverityMedium {
			t.Errorf("findings %+v, want one template.missing", r.Findings)
		}
	})
	t.Run("pinned_wrong", func(t *testing.T) {
		hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "template", Enabled: true, SHA256: strings.Repeat("0", 64)}}})
		hs.start()
		wantFault(t, hs.measure(), "template", FaultUntrusted, CodeUntrusted, "not the pinned")
	})
}
