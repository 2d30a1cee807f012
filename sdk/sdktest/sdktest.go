// Package sdktest lets a plugin author test a check in go test, without the
// daemon, in two ways that share one Harness:
//
//   - Start builds the plugin's main package and runs it as the daemon
//     does: a real process started by the daemon's own launcher code,
//     confined to what the policy grants (Options.Grant) before its first
//     instruction and to its declared Sandbox() after Configure. A file the
//     check reads that the sandbox does not allow is denied here as under
//     the daemon, with a finding that names the path and the policy line
//     that grants it. Test what the check reads on the real system this
//     way.
//   - New serves a check value in-process, unconfined, over a real gRPC
//     connection through the same server code the plugin uses: fast, for
//     the check's logic against fixture files. It imposes no sandbox.
//
// Both hold every answer to the protocol rules the daemon enforces.
//
//	func TestReadsOSRelease(t *testing.T) {
//		h := sdktest.Start(t, sdktest.Options{Grant: sdk.Sandbox{ReadOnly: []string{"/etc/os-release"}}})
//		if err := h.Configure(map[string]any{"paths": []string{"/etc/os-release"}}); err != nil {
//			t.Fatal(err)
//		}
//		if res := h.MustMeasure(); len(res.Findings) != 0 {
//			t.Fatalf("findings %+v", res.Findings)
//		}
//	}
//
//	func TestHello(t *testing.T) {
//		h := sdktest.New(t, check{})
//		if err := h.Configure(map[string]any{"path": t.TempDir()}); err != nil {
//			t.Fatal(err)
//		}
//		res := h.MustMeasure()
//		if !res.Has("hello.absent") { t.Fatal("want hello.absent") }
//	}
//
// A test binary that imports sdktest is the launcher of the plugins Start
// runs (it re-executes itself in launcher mode, see Start): nothing to add
// to TestMain.
package sdktest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/binding"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Harness talks to one check: served in-process (New) or a plugin process
// (Start).
type Harness struct {
	t       testing.TB
	client  *checkrpc.Client
	desc    sdk.Description
	Timeout time.Duration // per call; default 30s
}

// New serves c in-process, unconfined, and describes it; a description
// that breaks the protocol fails the test. c's Sandbox() is not applied:
// use Start to run the check under the sandbox the daemon imposes.
func New(t testing.TB, c sdk.Check) *Harness {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Name: "sdktest", Output: hclog.DefaultOutput, Level: hclog.Warn})
	gp, ok := binding.ServerPluginSets(c, logger)[wire.ProtocolVersion][wire.PluginName].(plugin.GRPCPlugin)
	if !ok {
		t.Fatal("sdktest: the SDK serves no gRPC plugin")
	}
	conn, _ := plugin.TestGRPCConn(t, func(s *grpc.Server) {
		if err := gp.GRPCServer(nil, s); err != nil {
			t.Fatalf("sdktest: register check: %v", err)
		}
	})
	t.Cleanup(func() { _ = conn.Close() })
	return describe(t, checkrpc.NewClient(conn))
}

// describe asks the plugin behind client to describe itself; a
// description that breaks the protocol fails the test.
func describe(t testing.TB, client *checkrpc.Client) *Harness {
	t.Helper()
	h := &Harness{t: t, client: client, Timeout: wire.DefaultTimeout}
	ctx, cancel := h.ctx()
	defer cancel()
	d, err := h.client.Describe(ctx)
	if err != nil {
		t.Fatalf("sdktest: describe: %v", err)
	}
	h.desc = d
	return h
}

func (h *Harness) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.Timeout)
}

// Description returns what the check described.
func (h *Harness) Description() sdk.Description { return h.desc }

// Configure sends cfg, marshalled to JSON (a map, a struct, or json.RawMessage),
// as the daemon would send plugins.<name>.config. A refused configuration is
// returned as *sdk.ConfigError.
func (h *Harness) Configure(cfg any) error {
	h.t.Helper()
	raw, ok := cfg.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(cfg); err != nil {
			h.t.Fatalf("sdktest: marshal config: %v", err)
		}
	}
	ctx, cancel := h.ctx()
	defer cancel()
	return h.client.Configure(ctx, raw)
}

// Measure takes a measurement with a fresh random nonce.
func (h *Harness) Measure() (*Result, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		h.t.Fatalf("sdktest: nonce: %v", err)
	}
	return h.MeasureWithNonce(nonce)
}

// MeasureWithNonce takes a measurement with the given nonce. A *checkrpc.CheckError
// is the check's own error (or a recovered panic); a *wire.ProtocolError an
// answer the daemon would refuse.
func (h *Harness) MeasureWithNonce(nonce []byte) (*Result, error) {
	ctx, cancel := h.ctx()
	defer cancel()
	m, err := h.client.Measure(ctx, h.desc, nonce)
	if err != nil {
		return nil, err
	}
	return &Result{Measurements: m.Measurements, Findings: m.Findings}, nil
}

// MustMeasure is Measure that fails the test on any error.
func (h *Harness) MustMeasure() *Result {
	h.t.Helper()
	r, err := h.Measure()
	if err != nil {
		h.t.Fatalf("sdktest: measure: %v", err)
	}
	return r
}

// Result is a measurement as the daemon would receive it.
type Result struct {
	Measurements map[string]json.RawMessage
	Findings     []sdk.Finding
}

// Has reports whether a finding with code is present.
func (r *Result) Has(code string) bool { return len(r.Find(code)) > 0 }

// Find returns the findings with code.
func (r *Result) Find(code string) []sdk.Finding {
	var out []sdk.Finding
	for _, f := range r.Findings {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

// Decode decodes measurement key into v.
func (r *Result) Decode(key string, v any) error {
	raw, ok := r.Measurements[key]
	if !ok {
		return fmt.Errorf("no measurement %q", key)
	}
	return json.Unmarshal(raw, v)
}
