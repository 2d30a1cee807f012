package inproc

import (
	"context"
	"errors"
	"github.com/secure-ai/runtime-attestor/builtin"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestBuiltin(t *testing.T) {
	t.Parallel()
	for _, name := range builtin.Names() {
		c := Builtin(name)
		if c == nil || c.Describe().Name != name {
			t.Errorf("Builtin(%s) = %v", name, c)
		}
	}
	if Builtin("nope") != nil {
		t.Error("Builtin(nope) is not nil")
	}
}

// TestMeasureBuiltins configures the real checks from a policy and measures
// them on this machine: kernel reads /proc, binaries hashes a file.
func TestMeasureBuiltins(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	svc := filepath.Join(dir, "svc")
	if err := os.WriteFile(svc, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.ServiceBinaries = map[string]policy.ServiceBinary{"svc": {Path: svc, SHA256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}
	for _, name := range []string{"tpm", "secureboot", "ostree", "policies"} {
		pol.Plugins[name] = policy.PluginPolicy{Enabled: false}
	}
	h, err := New(context.Background(), pol, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := h.Names(); len(got) != 2 || got[0] != "binaries" || got[1] != "kernel" {
		t.Fatalf("Names = %v", got)
	}
	res := h.Measure(context.Background(), make([]byte, 32))
	if len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if r.Fault != "" || r.Version == "" || r.Duration <= 0 || r.Measurements == nil {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	if got := string(res[0].Measurements["service_digests"]); got != `{"svc":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}` {
		t.Errorf("service_digests = %s", got)
	}
	for _, f := range res[0].Findings {
		if f.Severity > sdk.SeverityInfo {
			t.Errorf("binaries finding %+v", f)
		}
	}
}

func TestNewRefusedConfig(t *testing.T) {
	t.Parallel()
	pol := policy.Default()
	pol.Plugins["kernel"] = policy.PluginPolicy{Enabled: true, Config: map[string]any{"no_such_key": true}}
	if _, err := New(context.Background(), pol, nil); err == nil {
		t.Fatal("a configuration the check refuses was accepted")
	}
}

type fake struct {
	measure func(ctx context.Context) (*sdk.Result, error)
}

func (f fake) Describe() sdk.Description { return sdk.Description{Name: "fake", Version: "9"} }
func (f fake) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	return f.measure(ctx)
}

func TestMeasureFaults(t *testing.T) {
	t.Parallel()
	mk := func(name string, fn func(ctx context.Context) (*sdk.Result, error)) check {
		c := fake{measure: fn}
		return check{name: name, check: c, desc: c.Describe(), timeout: time.Second}
	}
	h := &Host{parallel: 2, logger: hclog.NewNullLogger(), checks: []check{
		mk("a_err", func(context.Context) (*sdk.Result, error) { return nil, errors.New("boom") }),
		mk("b_panic", func(context.Context) (*sdk.Result, error) { panic("oops") }),
		mk("c_nil", func(context.Context) (*sdk.Result, error) { return nil, nil }),
		mk("d_badjson", func(context.Context) (*sdk.Result, error) {
			r := sdk.NewResult()
			r.Set("x", func() {})
			return r, nil
		}),
		mk("e_deadline", func(ctx context.Context) (*sdk.Result, error) {
			if _, ok := ctx.Deadline(); !ok {
				return nil, errors.New("no deadline")
			}
			r := sdk.NewResult()
			r.Set("ok", true)
			return r, nil
		}),
	}}
	res := h.Measure(context.Background(), nil)
	for i, r := range res[:4] {
		if r.Fault != pluginhost.FaultFailed || len(r.Findings) != 1 || r.Findings[0].Code != "core.plugin_failed" || r.Measurements != nil {
			t.Errorf("Test %d: %s = %+v", i, r.Name, r)
		}
	}
	if r := res[4]; r.Fault != "" || string(r.Measurements["ok"]) != "true" {
		t.Errorf("e_deadline = %+v", r)
	}
}
