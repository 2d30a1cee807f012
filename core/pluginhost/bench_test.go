package pluginhost

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkMeasure measures one attestation over n light plugins (the
// cheapest possible check), i.e. the host's own overhead per attestation.
func BenchmarkMeasure(b *testing.B) {
	for _, n := range []int{1, 6, 16} {
		b.Run(fmt.Sprintf("plugins=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			var specs []Spec
			for i := range n {
				name := fmt.Sprintf("light_%d", i)
				install(b, dir, "light", name)
				specs = append(specs, Spec{Name: name, Enabled: true})
			}
			h := New(Options{Dir: dir, Plugins: specs, Resident: true})
			defer h.Close()
			if err := h.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, 32)
			b.ResetTimer()
			for b.Loop() {
				for _, r := range h.Measure(context.Background(), nonce) {
					if r.Fault != "" {
						b.Fatalf("%s: %+v", r.Name, r.Findings)
					}
				}
			}
		})
	}
}

// BenchmarkStartClose measures starting and stopping one plugin (verify,
// hash, exec in a PID namespace, handshake, describe, configure, stop).
func BenchmarkStartClose(b *testing.B) {
	dir := b.TempDir()
	install(b, dir, "light", "light")
	for b.Loop() {
		h := New(Options{Dir: dir, Plugins: []Spec{{Name: "light", Enabled: true}}, Resident: true})
		if err := h.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if len(h.PIDs()) != 1 {
			b.Fatal("plugin not running")
		}
		h.Close()
	}
}
