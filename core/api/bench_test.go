package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitest"
)

// BenchmarkHandler measures the handlers in process (no socket), to compare
// with a bare net/http handler (make bench does it over a socket).
func BenchmarkHandler(b *testing.B) {
	snap := attestedSnapshot(b)
	att := apitest.New(snap)
	h := api.New(api.Options{Attestor: att}).Handler()
	for _, path := range []string{"/health", "/api/v1/verify", "/api/v1/attest", "/api/security/status", "/metrics"} {
		b.Run(path, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d", path, w.Code)
				}
			}
		})
	}
	// The attest body rebuilt on every request: a new bundle slice each time
	// defeats the cache.
	b.Run("/api/v1/attest-uncached", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/attest", nil)
		b.ReportAllocs()
		for b.Loop() {
			s := snap
			s.Bundle = append([]byte(nil), snap.Bundle...)
			att.Set(s)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
		}
	})
	b.Run("bare-net-http", func(b *testing.B) {
		body := []byte(`{"verified":true,"state":"attested"}` + "\n")
		bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})
		req := httptest.NewRequest(http.MethodGet, "/api/v1/verify", nil)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			bare.ServeHTTP(w, req)
		}
	})
}
