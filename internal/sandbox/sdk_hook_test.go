package sandbox_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

type declaring struct {
	cfg struct {
		Path string `json:"path"`
	}
}

func (d *declaring) Describe() sdk.Description {
	return sdk.Description{Name: "declaring", Version: "1.0.0"}
}

func (d *declaring) Configure(_ context.Context, cfg sdk.Config) error { return cfg.Decode(&d.cfg) }

func (d *declaring) Sandbox() sdk.Sandbox { return sdk.Sandbox{ReadOnly: []string{d.cfg.Path}} }

func (d *declaring) Measure(context.Context, sdk.Request) (*sdk.Result, error) {
	return sdk.NewResult(), nil
}

// TestDeclaredSandbox: the daemon learns a built-in's rules by configuring
// a fresh instance as a library.
func TestDeclaredSandbox(t *testing.T) {
	t.Parallel()
	sb, ok, err := sdk.DeclaredSandbox(context.Background(), &declaring{}, []byte(`{"path":"/sys/firmware/efi"}`))
	if err != nil || !ok {
		t.Fatalf("got %v %v", ok, err)
	}
	if want := (sandbox.Rules{ReadOnly: []string{"/sys/firmware/efi"}}); !slices.Equal(sb.ReadOnly, want.ReadOnly) {
		t.Errorf("got %+v", sb)
	}
	if _, _, err := sdk.DeclaredSandbox(context.Background(), &declaring{}, []byte(`{"nope":1}`)); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a bad config: %v", err)
	}
	if _, ok, err := sdk.DeclaredSandbox(context.Background(), struct{ sdk.Check }{&declaring{}}, nil); ok || err != nil {
		t.Errorf("a check that is not a Sandboxer: %v %v", ok, err)
	}
}

// TestSDKTestHarnessLeavesProcessAlone: under sdktest (no handshake cookie)
// a Sandboxer's Configure does not restrict the test process.
func TestSDKTestHarnessLeavesProcessAlone(t *testing.T) {
	h := sdktest.New(t, &declaring{})
	if err := h.Configure(map[string]any{"path": t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("the test process lost access to /proc: %v", err)
	}
	if !strings.Contains(string(status), "Seccomp:\t0") {
		t.Errorf("the test process is under seccomp after an sdktest Configure:\n%s", status)
	}
}
