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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "./core/...")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./core/...: %v", err)
	}
	const plugins = "github.com/secure-ai/runtime-attestor/plugins/"
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, plugins) {
			t.Errorf("core/ depends on %s: move what it shares with core to tpm/ or internal/", pkg)
		}
	}
}
