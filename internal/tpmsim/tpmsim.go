// Package tpmsim gives tests connections to the go-tpm-tools TPM simulator
// (cgo; swtpmtest runs Debian's swtpm instead).
package tpmsim

import (
	"context"
	"testing"

	"github.com/google/go-tpm-tools/simulator"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
)

// Open starts a fresh go-tpm-tools simulator, closed when the test
// ends, and returns an Open for it (for evidence.Options.Open) whose
// connections share the one simulator and never close it. The simulator is
// one per process: tests that use it must not run in parallel.
func Open(t testing.TB) func(context.Context) (tpmio.Conn, error) {
	t.Helper()
	sim, err := simulator.Get()
	if err != nil {
		t.Fatalf("start TPM simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	conn := tpmio.FromReadWriter(sim)
	return func(context.Context) (tpmio.Conn, error) { return keepOpen{conn}, nil }
}

type keepOpen struct{ tpmio.Conn }

func (keepOpen) Close() error { return nil }
