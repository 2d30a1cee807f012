package testbin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLauncherBuiltAsShipped: the tests build the launcher with the
// Makefile's compiler, flags and source, so that they run what `make build` ships.
func TestLauncherBuiltAsShipped(t *testing.T) {
	t.Parallel()
	mk, err := os.ReadFile(filepath.Join(Root(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"LAUNCHER_CC ?= " + LauncherCC + "\n",
		"LAUNCHER_CFLAGS := " + LauncherCFLAGS + "\n",
		"$(LAUNCHER_CC) $(LAUNCHER_CFLAGS) -o $(BIN)/attestor-launcher " + LauncherSource + "\n",
	} {
		if !strings.Contains(string(mk), want) {
			t.Errorf("the Makefile has no line %q", strings.TrimSpace(want))
		}
	}
}
