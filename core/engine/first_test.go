package engine

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/policy"
)

// countingHost is the real plugin host, counting the measurements asked of
// it.
type countingHost struct {
	*pluginhost.Host
	measures atomic.Int32
}

func (c *countingHost) Measure(ctx context.Context, nonce []byte) []pluginhost.Result {
	c.measures.Add(1)
	return c.Host.Measure(ctx, nonce)
}

// TestFirstMeasurement: the first attestation uses the measurement the
// host took at start (its nonce in the bundle, no second round of plugin
// starts); the next one measures afresh with a new nonce.
func TestFirstMeasurement(t *testing.T) {
	t.Parallel()
	e, h, nonce := firstEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nonces := map[string]bool{}
	for i, wantMeasures := range []int32{0, 1} {
		s, err := e.Attest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var b bundle.Bundle
		if err := json.Unmarshal(s.Bundle, &b); err != nil {
			t.Fatal(err)
		}
		if b.KernelCmdline == nil || *b.KernelCmdline != "quiet" {
			t.Errorf("attestation %d: kernel_cmdline %v, want the plugin's", i+1, b.KernelCmdline)
		}
		if i == 0 && b.Nonce != hex.EncodeToString(nonce) {
			t.Errorf("first attestation's nonce %s, want the start's %x", b.Nonce, nonce)
		}
		nonces[b.Nonce] = true
		if got := h.measures.Load(); got != wantMeasures {
			t.Errorf("after attestation %d the host was asked %d times, want %d", i+1, got, wantMeasures)
		}
	}
	if len(nonces) != 2 {
		t.Errorf("two attestations shared a nonce")
	}
}

// firstEngine is an engine whose host took the first measurement at start
// (its nonce returned), with the echo plugin as kernel.
func firstEngine(t *testing.T) (*Engine, *countingHost, []byte) {
	t.Helper()
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.Mkdir(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	testbin.Install(t, testbin.Build(t, "./testplugins/echo", "attestor-check-echo"), pluginDir, "attestor-check-kernel")
	cfg, _ := json.Marshal(map[string]any{"measurements": map[string]any{"kernel_cmdline": "quiet"}})
	h := &countingHost{Host: pluginhost.New(pluginhost.Options{Dir: pluginDir, Logger: hclog.NewNullLogger(),
		Plugins: []pluginhost.Spec{{Name: "kernel", Enabled: true, ConfigJSON: cfg}}})}
	nonce, err := NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := h.StartMeasure(ctx, nonce)
	if err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.PluginDir = pluginDir
	pol.HMACKeyPath = filepath.Join(dir, "missing.key")
	e, err := New(Options{Policy: pol, Host: h, Version: "test", First: &First{Nonce: nonce, Results: first}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, h, nonce
}

// TestRefreshBeforeFirstConsumed: a refresh asked while the first
// attestation, which answers with the start-time measurement, has not
// begun is not answered by that measurement (made before the refresh was
// asked): it is queued, and gets a fresh measurement with a new nonce.
func TestRefreshBeforeFirstConsumed(t *testing.T) {
	t.Parallel()
	e, h, nonce := firstEngine(t)
	e.attestMu.Lock() // the first attestation cannot begin its turn yet
	first, err := e.start(false)
	if err != nil {
		e.attestMu.Unlock()
		t.Fatal(err)
	}
	refresh, err := e.start(true)
	e.attestMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	<-first.done
	<-refresh.done
	if first.err != nil || refresh.err != nil {
		t.Fatal(first.err, refresh.err)
	}
	var b bundle.Bundle
	if err := json.Unmarshal(refresh.snap.Bundle, &b); err != nil {
		t.Fatal(err)
	}
	if refresh == first || b.Nonce == hex.EncodeToString(nonce) {
		t.Errorf("the refresh was answered by the start-time measurement (nonce %s)", b.Nonce)
	}
	if got := h.measures.Load(); got != 1 {
		t.Errorf("the host measured %d times, want 1 (for the refresh)", got)
	}
}
