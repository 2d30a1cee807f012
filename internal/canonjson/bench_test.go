package canonjson

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/gowebpki/jcs"
)

// services is a service_digests measurement of n services, as the
// binaries plugin writes it.
func services(b *testing.B, n int) []byte {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("service-%04d", i)] = fmt.Sprintf("%064x", i)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkCanonical: a plugin's canonical answer is checked in one pass
// (Canonical) instead of parsed and written again (jcs.Transform).
func BenchmarkCanonical(b *testing.B) {
	raw := services(b, 2048)
	for _, c := range []struct {
		name string
		f    func([]byte) ([]byte, error)
	}{{"Canonical", Canonical}, {"jcs.Transform", jcs.Transform}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := c.f(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
