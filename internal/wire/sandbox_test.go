package wire

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// TestImposedAsDeclared: a plugin skips narrowing itself only when the
// grant its launcher imposed is exactly its declaration plus its socket
// folder; a host that granted more, or no grant at all, makes it narrow.
// Not parallel: it sets the process's environment.
func TestImposedAsDeclared(t *testing.T) {
	sock := t.TempDir()
	t.Setenv(sandbox.PluginSocketEnv, sock)
	declared := sandbox.Rules{ReadOnly: []string{"/proc/cmdline", "/etc/os-release"}, Exec: []string{"/usr/bin/true"}}
	for _, c := range []struct {
		name  string
		grant *sandbox.Rules // nil: no grant descriptor
		want  bool
	}{
		{"exactly the declaration", &sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}}, true},
		{"the declaration, repeated entries", &sandbox.Rules{ReadOnly: []string{"/proc/cmdline", "/proc/cmdline", "/etc/os-release"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}}, true},
		{"one more path", &sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline", "/etc/shadow"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}}, false},
		{"a TCP port more", &sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline"}, ReadWrite: []string{sock}, Exec: []string{"/usr/bin/true"}, ConnectTCP: []uint16{443}}, false},
		{"without the socket folder", &sandbox.Rules{ReadOnly: []string{"/etc/os-release", "/proc/cmdline"}, Exec: []string{"/usr/bin/true"}}, false},
		{"no grant", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(sandbox.GrantFDEnv, "")
			if c.grant != nil {
				raw, err := json.Marshal(map[string]sandbox.Rules{"rules": *c.grant})
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "grant")
				if err := os.WriteFile(path, raw, 0o600); err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				t.Setenv(sandbox.GrantFDEnv, strconv.Itoa(int(f.Fd())))
			}
			got, _, ok := imposedAsDeclared(declared)
			if ok != c.want {
				t.Fatalf("imposedAsDeclared = %v, want %v", ok, c.want)
			}
			if ok && !got.Covers("/proc/cmdline", sandbox.Read) {
				t.Errorf("the rules it returns (%+v) do not hold the declaration", got)
			}
		})
	}
}
