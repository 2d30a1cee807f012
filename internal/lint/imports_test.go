package lint

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCoreImportsNoPlugin: nothing under core/ links a plugin's code. What
// the daemon needs from a plugin it reads from the plugin's executable (its
// declaration), and the TPM parts it shares with the tpm plugin live in
// tpm/ and internal/, so that a daemon never runs a compiled-in copy of a
// plugin in place of the installed executable.
func TestCoreImportsNoPlugin(t *testing.T) {
	t.Parallel()
	const plugins = "github.com/secure-ai/runtime-attestor/plugins/"
	for _, pkg := range deps(t, "./core/...") {
		if strings.HasPrefix(pkg, plugins) {
			t.Errorf("core/ depends on %s: move what it shares with core to tpm/ or internal/", pkg)
		}
	}
}

// TestEngineBelowAPI: the engine publishes the snapshot the API reads and
// links no HTTP server or metrics library.
func TestEngineBelowAPI(t *testing.T) {
	t.Parallel()
	for _, pkg := range deps(t, "./core/engine") {
		for _, above := range []string{"github.com/secure-ai/runtime-attestor/core/api", "github.com/labstack/echo", "github.com/prometheus/"} {
			if strings.HasPrefix(pkg, above) {
				t.Errorf("core/engine depends on %s", pkg)
			}
		}
	}
}

// deps is `go list -deps` of the patterns, in the module's root.
func deps(t *testing.T, patterns ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-deps"}, patterns...)...)
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %v: %v", patterns, err)
	}
	return strings.Fields(string(out))
}
