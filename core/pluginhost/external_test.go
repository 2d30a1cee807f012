package pluginhost

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
// commented template (examples/template-check) as a vendor would copy it,
// with its own go.mod as `go mod tidy` writes it (this module through a
// replace to the checkout, and every module that provides a package it
// builds). It is built offline (GOPROXY=off, -mod=readonly, so an
// incomplete go.mod fails) from the module cache that building this test
// filled, which is all a fresh machine has.
func TestExternalPlugin(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is not on PATH (%v): a vendor's plugin cannot be built", err)
	}
	root := testbin.Root(t)
	mod := t.TempDir()
	for _, f := range []string{"main.go", "check.go"} {
		src, err := os.ReadFile(filepath.Join(root, "examples", "template-check", f))
		if err != nil {
			t.Fatal(err)
		}
		onlySDK(t, f, src)
		if err := os.WriteFile(filepath.Join(mod, f), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goMod := vendorGoMod(t, root, "./examples/template-check")
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(goMod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	exe := filepath.Join(dir, FilePrefix+"template")
	build := exec.Command("go", "build", "-o", exe, ".")
	build.Dir = mod
	build.Env = append(offline(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	build.Stderr = &stderr
	if err := build.Run(); err != nil {
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

// offline is the environment of a go command that must not reach the
// network and must not change go.mod.
func offline() []string {
	return append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=readonly"),
		"GOPROXY=off", "GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local")
}

// vendorGoMod returns the go.mod that `go mod tidy` writes for a vendor's
// module whose one package is a copy of pkg (a package of this module that
// imports only sdk from it): this module, replaced by the checkout at root,
// as its direct requirement, and every other module that provides a package
// pkg builds, at the version this module selects, as indirect ones. With
// the graph complete the go command needs no go.mod beyond those this
// module's own build fetched (a partial list made it look for go.mod files
// of modules no package comes from, which a fresh module cache lacks).
func vendorGoMod(t *testing.T, root, pkg string) string {
	t.Helper()
	const self = "github.com/secure-ai/runtime-attestor"
	// The main module's lines read "<path>|true|<go version>", the others'
	// "<path>|<version>"; packages of the standard library have none.
	list := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}|{{if .Main}}true|{{.GoVersion}}{{else}}{{.Version}}{{end}}{{end}}", pkg)
	list.Dir = root
	list.Env = offline()
	var stderr bytes.Buffer
	list.Stderr = &stderr
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
	}
	goVersion := ""
	var reqs []string
	for _, line := range strings.Fields(string(out)) {
		f := strings.Split(line, "|")
		switch {
		case len(f) == 3 && f[0] == self:
			goVersion = f[2]
		case len(f) != 2 || f[1] == "":
			t.Fatalf("go list -deps %s: unexpected module %q", pkg, line)
		case !slices.Contains(reqs, "\t"+f[0]+" "+f[1]+" // indirect\n"):
			reqs = append(reqs, "\t"+f[0]+" "+f[1]+" // indirect\n")
		}
	}
	if goVersion == "" {
		t.Fatalf("go list -deps %s: %s is not among its modules", pkg, self)
	}
	slices.Sort(reqs)
	return "module example.com/acme/attestor-check-template\n\ngo " + goVersion + "\n\n" +
		"require " + self + " v0.0.0-00010101000000-000000000000\n\n" +
		"require (\n" + strings.Join(reqs, "") + ")\n\n" +
		"replace " + self + " => " + root + "\n"
}

// onlySDK fails unless the file imports nothing of this module but sdk.
func onlySDK(t *testing.T, name string, src []byte) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if strings.Contains(path, ".") && path != "github.com/secure-ai/runtime-attestor/sdk" {
			t.Errorf("%s imports %s: a vendor plugin may use only the sdk package", name, path)
		}
	}
}
