package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// TestInstalledLauncher: a daemon with a trusted attestor-launcher beside
// it starts its plugins through it; one whose launcher anyone else could
// replace says why it does not use it, and still attests, through its own
// executable.
func TestInstalledLauncher(t *testing.T) {
	t.Parallel()
	const fallback = "no dedicated launcher"
	for _, tc := range []struct {
		name string
		mode os.FileMode // the launcher's; 0 = as built
		want string      // in the log; "" = no fallback
	}{
		{name: "trusted"},
		{name: "group-writable", mode: 0o775, want: "is group- or world-writable (mode 0775): chmod go-w it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := daemontest.New(t, daemontest.Options{})
			if tc.mode != 0 {
				dir := t.TempDir()
				env.Daemon = testbin.Install(t, env.Daemon, dir, "runtime-attestor")
				l := testbin.Install(t, testbin.Launcher(t), dir, sandbox.LauncherName)
				if err := os.Chmod(l, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			p := env.Start() // returns with the first verdict served
			if s := env.State(); s != "attested" && s != "degraded" {
				t.Errorf("state %q after the first verdict; log:\n%s", s, p.Stderr())
			}
			log := p.Stderr()
			switch {
			case tc.want == "" && strings.Contains(log, fallback):
				t.Errorf("the daemon did not use the launcher installed beside it (%s):\n%s", filepath.Dir(env.Daemon), log)
			case tc.want != "" && (!strings.Contains(log, fallback) || !strings.Contains(log, tc.want)):
				t.Errorf("the daemon's log does not say it falls back, and why (%q):\n%s", tc.want, log)
			}
		})
	}
}
