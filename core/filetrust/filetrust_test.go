package filetrust

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const other = 12345 // a uid that is neither root nor the daemon's

// TestCheck: each bad owner or mode, of the file or of any folder above
// it, is refused naming the path at fault and the fix; the sticky
// exception holds above the file's own folder only. Real files, real
// chown (the tests run as root).
func TestCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown files to another user")
	}
	t.Parallel()
	for i, tc := range []struct {
		name    string
		setup   func(t *testing.T, top, own, file string)
		uid     int
		culprit string // "top", "own", "file", or "" when trusted
		fix     string
	}{
		{"good", nil, 0, "", ""},
		{"file owned by another user", func(t *testing.T, _, _, f string) { chown(t, f, other) }, 0, "file", "chown root"},
		{"file owned by the daemon's user", func(t *testing.T, _, _, f string) { chown(t, f, other) }, other, "", ""},
		{"file group-writable", func(t *testing.T, _, _, f string) { chmod(t, f, 0o664) }, 0, "file", "chmod go-w"},
		{"file world-writable", func(t *testing.T, _, _, f string) { chmod(t, f, 0o646) }, 0, "file", "chmod go-w"},
		{"own folder world-writable", func(t *testing.T, _, o, _ string) { chmod(t, o, 0o777) }, 0, "own", "chmod go-w"},
		{"own folder sticky", func(t *testing.T, _, o, _ string) { chmod(t, o, 0o777|os.ModeSticky) }, 0, "own", "sticky, but it is the file's own folder"},
		{"own folder owned by another user", func(t *testing.T, _, o, _ string) { chown(t, o, other) }, 0, "own", "chown root"},
		{"folder above world-writable", func(t *testing.T, top, _, _ string) { chmod(t, top, 0o777) }, 0, "top", "chmod go-w"},
		{"folder above group-writable", func(t *testing.T, top, _, _ string) { chmod(t, top, 0o770) }, 0, "top", "chmod go-w"},
		{"folder above sticky, root-owned", func(t *testing.T, top, _, _ string) { chmod(t, top, 0o777|os.ModeSticky) }, 0, "", ""},
		{"folder above sticky, owned by another user", func(t *testing.T, top, _, _ string) {
			chown(t, top, other)
			chmod(t, top, 0o777|os.ModeSticky)
		}, 0, "top", "chown root"},
		{"folder above owned by another user", func(t *testing.T, top, _, _ string) { chown(t, top, other) }, 0, "top", "chown root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			top := filepath.Join(t.TempDir(), "etc")
			own := filepath.Join(top, "policy")
			file := filepath.Join(own, "attestation.yaml")
			if err := os.MkdirAll(own, 0o755); err != nil {
				t.Fatal(err)
			}
			chmod(t, top, 0o755)
			if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, top, own, file)
			}
			// Through a symbolic link too: the real path is what counts.
			link := filepath.Join(t.TempDir(), "link.yaml")
			if err := os.Symlink(file, link); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{file, link} {
				err := Check(p, tc.uid)
				if tc.culprit == "" {
					if err != nil {
						t.Errorf("Test %d: %s: %v, want trusted", i, p, err)
					}
					continue
				}
				want := map[string]string{"top": top, "own": own, "file": file}[tc.culprit]
				var fe *Error
				if !errors.As(err, &fe) || fe.Culprit != want || !strings.Contains(err.Error(), tc.fix) || !strings.Contains(err.Error(), want) {
					t.Errorf("Test %d: %s: %v, want refused naming %s and %q", i, p, err, want, tc.fix)
				}
			}
		})
	}
}

func TestMissing(t *testing.T) {
	t.Parallel()
	if err := Check(filepath.Join(t.TempDir(), "nope"), 0); !IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Lchown(p, uid, -1); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}
