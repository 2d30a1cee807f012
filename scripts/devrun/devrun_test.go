// Package devrun tests scripts/dev-run.sh, the script behind `make run`,
// in a copy of the files it reads: it renders .run/development.yaml once,
// keeps the user's edits on the next start, says when the template moved
// on and how to reset, makes the signing key the policy names once (with
// the real attestctl) and keeps it, and prints its banner.
package devrun

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// TestMain removes the executables testbin built for these tests.
func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

func TestDevRunKeepsEdits(t *testing.T) {
	root := testbin.Root(t)
	tree := t.TempDir()
	for _, f := range []string{"scripts/dev-run.sh", "policy/examples/development.yaml.in"} {
		raw, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(tree, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, raw, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(tree, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	testbin.Install(t, testbin.Build(t, "./cmd/attestctl", "attestctl"), bin, "attestctl")
	run := func() string {
		t.Helper()
		out, err := exec.Command(filepath.Join(tree, "scripts/dev-run.sh"), "--render-only").CombinedOutput()
		if err != nil {
			t.Fatalf("dev-run.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	policy := filepath.Join(tree, ".run/development.yaml")

	out := run()
	raw, err := os.ReadFile(policy)
	if err != nil {
		t.Fatalf("first run rendered no policy: %v\n%s", err, out)
	}
	if strings.Contains(string(raw), "@ROOT@") || !strings.Contains(string(raw), "log_level: info") {
		t.Errorf("rendered policy:\n%s", raw)
	}
	if !strings.Contains(out, "attestctl status") || !strings.Contains(out, "rendered "+policy) {
		t.Errorf("first run output:\n%s", out)
	}

	key := filepath.Join(tree, ".run/signing.key")
	if !strings.Contains(string(raw), `signing_key_path: "`+key+`"`) || !strings.Contains(out, "created "+key) {
		t.Errorf("the policy names no signing key made by the first run:\n%s\n%s", raw, out)
	}
	keyBytes, err := os.ReadFile(key)
	if fi, serr := os.Stat(key); err != nil || serr != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v %v %v", fi, err, serr)
	}
	if _, err := os.Stat(key + ".pub"); err != nil {
		t.Errorf("no public key beside the signing key: %v", err)
	}

	edited := string(raw) + "\n# my edit\n"
	if err := os.WriteFile(policy, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	out = run()
	if got, _ := os.ReadFile(policy); string(got) != edited {
		t.Errorf("the second run dropped the edit:\n%s", out)
	}
	if strings.Contains(out, "has changed") {
		t.Errorf("warned about a template that did not change:\n%s", out)
	}
	if got, _ := os.ReadFile(key); string(got) != string(keyBytes) || !strings.Contains(out, "kept "+key) {
		t.Errorf("the second run did not keep the signing key:\n%s", out)
	}

	tmpl := filepath.Join(tree, "policy/examples/development.yaml.in")
	f, err := os.OpenFile(tmpl, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# a newer template\n")
	f.Close()
	out = run()
	if got, _ := os.ReadFile(policy); string(got) != edited {
		t.Errorf("a newer template overwrote the edit")
	}
	if !strings.Contains(out, "has changed since it was rendered") || !strings.Contains(out, "make run-reset") {
		t.Errorf("no word of the newer template and how to reset:\n%s", out)
	}
}
