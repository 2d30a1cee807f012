package testbin

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// self is this module's path.
const self = "github.com/secure-ai/runtime-attestor"

// Offline is the environment of a go command that must not reach the
// network and must not change go.mod.
func Offline() []string {
	return append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=readonly"),
		"GOPROXY=off", "GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local")
}

// VendorModule lays out, in a new folder, a vendor's Go module made of the
// files of pkg (a package of this module, e.g. "./examples/template-check")
// as a vendor copies them, and returns the folder. Each file may import
// nothing of this module but the SDK's public packages (sdk and below). The
// module's go.mod is what `go mod tidy` writes: this module, replaced by
// the checkout, as its direct requirement, and every other module that
// provides a package pkg or its tests build, at the version this module
// selects, as indirect ones; its go.sum is this module's. With the graph
// complete, the go command builds it offline (Offline) from the module
// cache this module's own build filled, which is all a fresh machine has.
func VendorModule(t testing.TB, pkg string, files ...string) string {
	t.Helper()
	root := Root(t)
	mod := t.TempDir()
	for _, f := range files {
		src, err := os.ReadFile(filepath.Join(root, pkg, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".go") {
			onlySDK(t, f, src)
		}
		if err := os.WriteFile(filepath.Join(mod, f), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(vendorGoMod(t, root, pkg)), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	return mod
}

// vendorGoMod returns the go.mod of VendorModule. A partial list of
// requirements made the go command look for go.mod files of modules no
// package comes from, which a fresh module cache lacks.
func vendorGoMod(t testing.TB, root, pkg string) string {
	t.Helper()
	// The main module's lines read "<path>|true|<go version>", the others'
	// "<path>|<version>"; packages of the standard library have none.
	list := exec.Command("go", "list", "-deps", "-test", "-f", "{{with .Module}}{{.Path}}|{{if .Main}}true|{{.GoVersion}}{{else}}{{.Version}}{{end}}{{end}}", pkg)
	list.Dir = root
	list.Env = Offline()
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
	return "module example.com/acme/attestor-check-" + filepath.Base(pkg) + "\n\ngo " + goVersion + "\n\n" +
		"require " + self + " v0.0.0-00010101000000-000000000000\n\n" +
		"require (\n" + strings.Join(reqs, "") + ")\n\n" +
		"replace " + self + " => " + root + "\n"
}

// onlySDK fails unless the file imports nothing of this module but the
// SDK's public packages.
func onlySDK(t testing.TB, name string, src []byte) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if strings.HasPrefix(path, self) && path != self+"/sdk" && !strings.HasPrefix(path, self+"/sdk/") {
			t.Errorf("%s imports %s: a vendor plugin may use only the SDK", name, path)
		}
	}
}
