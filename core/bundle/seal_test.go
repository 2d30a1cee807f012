package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestSealMatchesSteps: Seal gives, byte for byte, the signatures, the
// canonical bytes and the digest that SignWith, Sign, Canonical and Digest
// give one after the other, and the result verifies both ways.
func TestSealMatchesSteps(t *testing.T) {
	t.Parallel()
	s := newSigner(t) // Ed25519: deterministic signatures
	tests := []struct {
		name   string
		signer Signer
		key    []byte
	}{
		{"hmac and signature", s, testKey},
		{"hmac only", nil, testKey},
		{"signature only", s, nil},
		{"unsigned", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := sample()
			if tt.signer != nil {
				if err := want.SignWith(tt.signer); err != nil {
					t.Fatal(err)
				}
			}
			if len(tt.key) > 0 {
				if err := want.Sign(tt.key); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			canon, err := Canonical(raw)
			if err != nil {
				t.Fatal(err)
			}
			got := sample()
			got.BundleHMAC = "stale" // Seal replaces what was there
			sealed, err := got.Seal(tt.signer, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sealed.Raw, canon) {
				t.Errorf("Seal raw:\n%s\nwant the canonical form of the signed bundle:\n%s", sealed.Raw, canon)
			}
			if sealed.Digest != Digest(raw) {
				t.Errorf("Seal digest %s, want %s", sealed.Digest, Digest(raw))
			}
			if got.BundleHMAC != want.BundleHMAC || (got.BundleSignature == nil) != (want.BundleSignature == nil) ||
				(got.BundleSignature != nil && *got.BundleSignature != *want.BundleSignature) {
				t.Errorf("Seal set hmac %q signature %+v, want %q %+v", got.BundleHMAC, got.BundleSignature, want.BundleHMAC, want.BundleSignature)
			}
			if len(tt.key) > 0 {
				if err := Verify(sealed.Raw, tt.key); err != nil {
					t.Errorf("Verify: %v", err)
				}
			}
			if tt.signer != nil {
				if err := VerifySignature(sealed.Raw, s.Public()); err != nil {
					t.Errorf("VerifySignature: %v", err)
				}
			}
		})
	}
}

// FuzzAssemble: putting an object together from its canonical members is
// its canonical form, whatever the member names (escapes, non-ASCII,
// astral characters sort by UTF-16 code units).
func FuzzAssemble(f *testing.F) {
	rfc, err := os.ReadFile("testdata/rfc8785_input.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rfc)
	f.Add([]byte(`{"b":1,"a":[1,2],"\u20ac":"x","\ud83d\ude00":null,"\ufb33":{}}`))
	f.Add([]byte(`{"<&>":"\u2028","":0,"\u0000":true}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, err := Canonical(raw)
		if err != nil || len(want) == 0 || want[0] != '{' {
			return
		}
		members, err := topLevel(raw)
		if err != nil {
			t.Fatalf("topLevel of a canonical object: %v", err)
		}
		got, err := assemble(members)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("assembled\n%s\nwant\n%s", got, want)
		}
	})
}

// bigBundle is a bundle with n service digests, in the bundle's fields and
// in the binaries check's measurements, as with many service binaries.
func bigBundle(n int) *Bundle {
	b := sample()
	b.ServiceDigests = map[string]string{}
	for i := range n {
		b.ServiceDigests[fmt.Sprintf("service-%04d", i)] = strings.Repeat("ab", 32)
	}
	m, _ := json.Marshal(map[string]any{"service_digests": b.ServiceDigests})
	c := b.Checks["binaries"]
	c.Measurements = m
	b.Checks["binaries"] = c
	return b
}

// BenchmarkSeal compares signing, digesting and encoding a bundle with
// 2,048 service digests the way the engine did step by step (SignWith,
// Sign, json.Marshal, Digest) with Seal.
func BenchmarkSeal(b *testing.B) {
	s := newSigner(b)
	b.Run("steps", func(b *testing.B) {
		for b.Loop() {
			bb := bigBundle(2048)
			if err := bb.SignWith(s); err != nil {
				b.Fatal(err)
			}
			if err := bb.Sign(testKey); err != nil {
				b.Fatal(err)
			}
			raw, err := json.Marshal(bb)
			if err != nil {
				b.Fatal(err)
			}
			if Digest(raw) == "" {
				b.Fatal("no digest")
			}
		}
	})
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			bb := bigBundle(2048)
			if _, err := bb.Seal(s, testKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzSealMatchesSteps: the bundle's own canonical encoder writes, byte
// for byte, what json.Marshal followed by the RFC 8785 canonicalizer
// writes, whatever the strings (invalid UTF-8, controls, astral
// characters in map keys), numbers and plugin measurements; and it fails
// exactly when that does.
func FuzzSealMatchesSteps(f *testing.F) {
	f.Add("quiet \x01\x7f <&> \u2028", "𝄞 \xff é", "svc-\ufb33", int64(-3), uint64(1)<<60, []byte(`{"b":[1.5,1e30,-0],"a":"\u00e9"}`))
	f.Add("", "", "😀", int64(1)<<55, uint64(42), []byte(`null`))
	f.Add("a", "b", "c", int64(0), uint64(0), []byte(`[1]`))
	f.Add("a", "b", "c", int64(0), uint64(0), []byte(`{"a":1,"a":2}`))
	f.Add("a\xff", "b", "a\xfe", int64(0), uint64(0), []byte(`{}`)) // two service names that are one once coerced to UTF-8
	f.Fuzz(func(t *testing.T, s1, s2, key string, n int64, u uint64, measurements []byte) {
		if len(measurements) == 0 {
			measurements = nil // json.Marshal refuses an empty, non-nil RawMessage; Seal writes null
		}
		b := sample()
		b.KernelCmdline, b.Nonce, b.Sequence, b.Score = &s1, s2, u, int(n)
		b.ServiceDigests = map[string]string{s1: s2, key: s1, "agent": key}
		b.BootMeasurements.PCRs = map[string]string{key: s2}
		b.Failures = append(b.Failures, Failure{Finding: Finding{Code: s1, Severity: 3, Message: s2, Subject: key}, Plugin: key})
		b.Checks[key] = Check{Name: s2, DurationMS: n, Version: &s1, Measurements: measurements,
			Findings: []Finding{{Code: key, Severity: 1, Message: s1, Subject: s2}}}
		b.AuditHead = &AuditHead{Seq: u, Hash: s2}
		b.BootMeasurements.EventLog = measurements
		var want []byte
		raw, err := json.Marshal(b)
		if err == nil {
			want, err = Canonical(raw)
		}
		got, gerr := b.Seal(nil, nil)
		if (err == nil) != (gerr == nil) {
			t.Fatalf("json.Marshal and Canonical: %v; Seal: %v", err, gerr)
		}
		if err == nil && !bytes.Equal(got.Raw, want) {
			t.Fatalf("Seal wrote\n%s\nwant\n%s", got.Raw, want)
		}
	})
}
