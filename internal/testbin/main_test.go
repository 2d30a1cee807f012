package testbin

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryUserCallsMain: a test package that builds executables through
// this package (directly or through internal/daemontest) has a TestMain
// calling Main, which removes them; without it each run of its tests
// leaves its executables (megabytes) in the temporary folder.
func TestEveryUserCallsMain(t *testing.T) {
	t.Parallel()
	root := Root(t)
	users := map[string]bool{}   // package folder → imports testbin or daemontest in a test
	callers := map[string]bool{} // package folder → a test file calls testbin.Main
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		if dir == filepath.Join(root, "internal", "testbin") {
			return nil // this package's own tests build no executable
		}
		s := string(src)
		if strings.Contains(s, `"github.com/secure-ai/runtime-attestor/internal/testbin"`) ||
			strings.Contains(s, `"github.com/secure-ai/runtime-attestor/internal/daemontest"`) {
			users[dir] = true
		}
		if strings.Contains(s, "testbin.Main(") {
			callers[dir] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(users) == 0 {
		t.Fatal("found no test package that uses testbin: the walk is broken")
	}
	for dir := range users {
		if !callers[dir] {
			rel, _ := filepath.Rel(root, dir)
			t.Errorf("%s: its tests use testbin but no TestMain calls testbin.Main: add func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }", rel)
		}
	}
}
