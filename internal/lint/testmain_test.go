package lint

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTestbinUsersCallMain: a package whose tests build executables
// through internal/testbin (directly or through internal/daemontest) has a
// TestMain calling testbin.Main, which removes them; without it each run
// of its tests leaves its executables (megabytes) in the temporary folder.
func TestTestbinUsersCallMain(t *testing.T) {
	t.Parallel()
	users := testImporters(t, module+"/internal/testbin", module+"/internal/daemontest")
	if len(users) < 5 {
		t.Fatalf("found %d test packages that use testbin: is the go list query broken?", len(users))
	}
	for pkg, files := range users {
		if pkg == "internal/testbin" {
			continue // its own tests build no executable
		}
		if !anyContains(t, files, "testbin.Main(") {
			t.Errorf("%s: its tests use testbin but no TestMain calls testbin.Main: add func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }", pkg)
		}
	}
}

// testImporters maps each package of the module whose tests (internal or
// external) import one of imps to its test files.
func testImporters(t *testing.T, imps ...string) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const format = `{{.ImportPath}}|{{.Dir}}|{{join .TestImports " "}} {{join .XTestImports " "}}|{{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}`
	cmd := execGo(ctx, "list", "-f", format, "./...")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	res := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 || !importsAny(strings.Fields(f[2]), imps) {
			continue
		}
		pkg := strings.TrimPrefix(f[0], module+"/")
		for _, name := range strings.Fields(f[3]) {
			res[pkg] = append(res[pkg], filepath.Join(f[1], name))
		}
	}
	return res
}

func importsAny(have, want []string) bool {
	return slices.ContainsFunc(have, func(h string) bool { return slices.Contains(want, h) })
}

func anyContains(t *testing.T, files []string, s string) bool {
	t.Helper()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), s) {
			return true
		}
	}
	return false
}
