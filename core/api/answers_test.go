package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitest"
	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// TestPrecomputedAnswers: /api/v1/verify and /health answer, in every
// state, the bytes and status c.JSON wrote for them (the bodies are encoded
// once, at New), and ?pretty still indents.
func TestPrecomputedAnswers(t *testing.T) {
	t.Parallel()
	for _, st := range []state.State{state.Pending, state.Attested, state.Degraded, state.Failed} {
		att := apitest.New(engine.Snapshot{State: st})
		h := api.New(api.Options{Attestor: att}).Handler()
		verifyCode := http.StatusServiceUnavailable
		if st == state.Attested {
			verifyCode = http.StatusOK
		}
		tests := []struct {
			path string
			code int
			body any
		}{
			{"/api/v1/verify", verifyCode, apitypes.VerifyResponse{Verified: st == state.Attested, State: st}},
			{"/health", http.StatusOK, apitypes.HealthResponse{Status: "ok", State: st}},
		}
		for _, tt := range tests {
			want, err := json.Marshal(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if w.Code != tt.code || w.Body.String() != string(want)+"\n" || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("%s in %s: %d %q %q, want %d %s", tt.path, st, w.Code, w.Header().Get("Content-Type"), w.Body, tt.code, want)
			}
			pw := httptest.NewRecorder()
			h.ServeHTTP(pw, httptest.NewRequest(http.MethodGet, tt.path+"?pretty", nil))
			pretty, _ := json.MarshalIndent(tt.body, "", "  ")
			if pw.Body.String() != string(pretty)+"\n" {
				t.Errorf("%s?pretty in %s: %q, want %s", tt.path, st, pw.Body, pretty)
			}
		}
	}
}
