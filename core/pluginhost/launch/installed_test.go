package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// TestInstalled: the dedicated launcher beside the daemon is used only when
// nobody but root or the daemon's user could have replaced it; a local
// user who could write it, or point it elsewhere, would otherwise run code
// unconfined in every plugin start.
func TestInstalled(t *testing.T) {
	t.Parallel()
	euid := os.Geteuid()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, launcher string)
		euid  int
		want  string // "" = trusted
	}{
		{"trusted", func(*testing.T, string, string) {}, euid, ""},
		{"group-writable", func(t *testing.T, _, l string) { chmod(t, l, 0o775) }, euid, "group- or world-writable"},
		{"world-writable folder", func(t *testing.T, d, _ string) { chmod(t, d, 0o777) }, euid, "group- or world-writable"},
		{"not executable", func(t *testing.T, _, l string) { chmod(t, l, 0o644) }, euid, "not executable"},
		{"other owner", func(*testing.T, string, string) {}, euid + 12345, "owned by uid"},
		{"symlink", func(t *testing.T, _, l string) {
			other := filepath.Join(t.TempDir(), "evil")
			if err := os.WriteFile(other, []byte("x"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(l); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, l); err != nil {
				t.Fatal(err)
			}
		}, euid, "not a regular file"},
		{"missing", func(t *testing.T, _, l string) { _ = os.Remove(l) }, euid, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if euid == 0 && tc.euid != 0 && tc.want == "owned by uid" {
				t.Skip("files made by root are root's: trusted for any daemon user")
			}
			dir := filepath.Join(t.TempDir(), "libexec")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			self := filepath.Join(dir, "runtime-attestor")
			launcher := filepath.Join(dir, sandbox.LauncherName)
			for _, p := range []string{self, launcher} {
				if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tc.setup(t, dir, launcher)
			got, err := Installed(self, tc.euid)
			switch {
			case tc.want == "" && (err != nil || got != launcher):
				t.Fatalf("Installed = %q, %v; want %s", got, err, launcher)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Installed = %q, %v; want an error with %q", got, err, tc.want)
			}
		})
	}
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
