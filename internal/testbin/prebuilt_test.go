package testbin

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestStamp: the prebuilt executables are taken only while the tree is the
// one they were built from; editing a test does not count, editing anything
// else (code, go.mod, an embedded file) does.
func TestStamp(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.26.0\n")
	write("cmd/x/main.go", "package main\n\nfunc main() {}\n")
	write("cmd/x/main_test.go", "package main\n")
	write("cmd/x/report.lua", "-- embedded\n")
	stamp := func() {
		t.Helper()
		sum, err := SourceHash(root, "0")
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(PrebuiltDir, stampName), sum+"\ncmd/x\n")
	}
	want := []string{"cmd/x"}
	for i, tc := range []struct {
		name, file, text string
		fresh            bool
	}{
		{"as built", "", "", true},
		{"a test edited", "cmd/x/main_test.go", "package main\n\n// more\n", true},
		{"an output beside", "bin/runtime-attestor", "new", true},
		{"code edited", "cmd/x/main.go", "package main\n\nfunc main() { println() }\n", false},
		{"a file added", "cmd/x/extra.go", "package main\n", false},
		{"an embedded file edited", "cmd/x/report.lua", "-- changed\n", false},
		{"go.mod edited", "go.mod", "module example.com/m\n\ngo 1.26.1\n", false},
	} {
		stamp()
		if tc.file != "" {
			write(tc.file, tc.text)
		}
		got := readStamp(root)
		if fresh := slices.Equal(got, want); fresh != tc.fresh {
			t.Errorf("Test %d: %s: readStamp = %v, want fresh %v", i, tc.name, got, tc.fresh)
		}
	}
	if err := os.Remove(filepath.Join(root, PrebuiltDir, stampName)); err != nil {
		t.Fatal(err)
	}
	if got := readStamp(root); got != nil {
		t.Errorf("no stamp: readStamp = %v", got)
	}
}
