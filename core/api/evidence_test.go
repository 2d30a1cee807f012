package api_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-tpm-tools/simulator"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitest"
	"github.com/secure-ai/runtime-attestor/core/ear"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/tpmio"
)

type keepOpen struct{ tpmio.Conn }

func (keepOpen) Close() error { return nil }

func newSigner(t *testing.T) *identity.Signer {
	t.Helper()
	s, err := identity.New(identity.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// simTPM is an evidence TPM on the go-tpm-tools simulator (one per
// process: tests using it are not parallel).
func simTPM(t *testing.T, s *identity.Signer) *evidence.TPM {
	t.Helper()
	sim, err := simulator.Get()
	if err != nil {
		t.Fatalf("start TPM simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	conn := tpmio.FromReadWriter(sim)
	return evidence.New(evidence.Options{
		Open:   func(context.Context) (tpmio.Conn, error) { return keepOpen{conn}, nil },
		Secret: s.DeriveSecret(evidence.SecretLabel),
		PCRs:   []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14},
	})
}

func TestEvidenceEndpoint(t *testing.T) {
	s := newSigner(t)
	srv := start(t, nil, api.Options{Identity: api.Identity{TPM: simTPM(t, s), Signer: s, Version: "9.9"}})

	r := get(t, srv.url+"/api/v1/ak")
	if r.code != http.StatusOK {
		t.Fatalf("GET /api/v1/ak: %d %s", r.code, r.body)
	}
	var ak evidence.AKPublic
	if err := json.Unmarshal(r.body, &ak); err != nil {
		t.Fatal(err)
	}
	akKey, err := identity.ParsePublicPEM([]byte(ak.PEM))
	if err != nil {
		t.Fatalf("ak.pem: %v", err)
	}
	if _, err := evidence.ParseTPM2BPublic(ak.TPM2BPublic); err != nil {
		t.Fatalf("ak.tpm2b_public: %v", err)
	}

	nonce := strings.Repeat("5a", 32)
	r = get(t, srv.url+"/api/v1/evidence?nonce="+nonce)
	if r.code != http.StatusOK {
		t.Fatalf("GET /api/v1/evidence: %d %s", r.code, r.body)
	}
	n, _ := hex.DecodeString(nonce)
	v, err := evidence.Verify(r.body, akKey, n)
	if err != nil {
		t.Fatalf("evidence from the API refused: %v", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, srv.att.Snapshot().Bundle); err != nil {
		t.Fatal(err)
	}
	if string(v.Evidence.Bundle) != compact.String() {
		t.Error("the evidence's bundle is not the latest bundle (compact JSON, as the daemon signs it)")
	}

	for i, bad := range []string{"", "nonce=", "nonce=zz", "nonce=" + strings.Repeat("ab", 15), "nonce=" + strings.Repeat("ab", 65), "nonce=abc"} {
		r := get(t, srv.url+"/api/v1/evidence?"+bad)
		if r.code != http.StatusBadRequest || !strings.Contains(r.json(t)["error"].(string), "nonce") {
			t.Errorf("Test %d: ?%s: %d %s, want 400 naming the nonce", i, bad, r.code, r.body)
		}
	}
	m := get(t, srv.url+"/metrics")
	for _, series := range []string{`runtime_attestor_evidence_requests_total{result="ok"} 1`, `runtime_attestor_evidence_requests_total{result="bad_request"} 6`} {
		if !strings.Contains(string(m.body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}

	// EAR, verified by go-jose with the signing key.
	r = get(t, srv.url+"/api/v1/ear?nonce=0011223344556677")
	if r.code != http.StatusOK || r.header.Get("Content-Type") != ear.MediaType {
		t.Fatalf("GET /api/v1/ear: %d %q %s", r.code, r.header.Get("Content-Type"), r.body)
	}
	jws, err := jose.ParseSignedCompact(string(r.body), []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify(s.Public())
	if err != nil {
		t.Fatalf("go-jose refuses the EAR: %v", err)
	}
	var claims ear.Claims
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Submods[ear.CoreSubmod].Status != ear.Affirming || claims.Nonce != "0011223344556677" || claims.VerifierID.Build != "runtime-attestor 9.9" {
		t.Errorf("EAR claims %+v", claims)
	}
	if r := get(t, srv.url+"/api/v1/ear?nonce=00"); r.code != http.StatusBadRequest {
		t.Errorf("EAR with a 1-byte nonce: %d", r.code)
	}
}

// TestEvidenceWithoutTPM: 409 with a JSON error, never a quote.
func TestEvidenceWithoutTPM(t *testing.T) {
	t.Parallel()
	absentOpen := func(context.Context) (tpmio.Conn, error) { return nil, tpmio.ErrAbsent }
	absent := evidence.New(evidence.Options{Open: absentOpen, Secret: []byte("secret")})
	nonce := "?nonce=" + strings.Repeat("01", 16)
	for i, tc := range []struct {
		id   api.Identity
		path string
		want string
	}{
		{api.Identity{}, "/api/v1/evidence" + nonce, "no TPM"},
		{api.Identity{}, "/api/v1/ak", "no TPM"},
		{api.Identity{TPM: absent}, "/api/v1/evidence" + nonce, "no TPM"},
		{api.Identity{TPM: evidence.New(evidence.Options{Open: absentOpen})}, "/api/v1/evidence" + nonce, "no signing key"},
		{api.Identity{}, "/api/v1/ear", "no signing key"},
	} {
		srv := start(t, nil, api.Options{Identity: tc.id})
		r := get(t, srv.url+tc.path)
		if r.code != http.StatusConflict || !strings.Contains(r.json(t)["error"].(string), tc.want) {
			t.Errorf("Test %d: %s: %d %s, want 409 with %q", i, tc.path, r.code, r.body, tc.want)
		}
	}
	srv := start(t, apitest.New(engine.Snapshot{State: state.Pending}), api.Options{Identity: api.Identity{TPM: absent}})
	if r := get(t, srv.url+"/api/v1/evidence"+nonce); r.code != http.StatusServiceUnavailable {
		t.Errorf("evidence while pending: %d %s, want 503", r.code, r.body)
	}
}

// TestEvidenceFlood: while a TPM operation hangs, a flood of requests gets
// 429 at once, the daemon keeps serving, and when the TPM answers again so
// does the endpoint.
func TestEvidenceFlood(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	hung := evidence.New(evidence.Options{
		Open: func(ctx context.Context) (tpmio.Conn, error) {
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return nil, tpmio.ErrAbsent
		},
		Secret: []byte("secret"), Queue: 2,
	})
	srv := start(t, nil, api.Options{Identity: api.Identity{TPM: hung}})
	url := srv.url + "/api/v1/evidence?nonce=" + strings.Repeat("02", 16)
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- get(t, url).code
		}()
	}
	// The flood is answered while the TPM hangs: all but the three holding
	// a slot get 429.
	limited := 0
	for limited < 37 {
		code := <-codes
		if code != http.StatusTooManyRequests {
			t.Fatalf("a flooding request got %d before the TPM answered, want 429", code)
		}
		limited++
	}
	if r := get(t, srv.url+"/health"); r.code != http.StatusOK {
		t.Errorf("/health during the flood: %d", r.code)
	}
	close(hold)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusConflict && code != http.StatusTooManyRequests {
			t.Errorf("a queued request got %d, want its turn (409: no TPM) or 429 after its wait", code)
		}
	}
	m := get(t, srv.url+"/metrics")
	if !strings.Contains(string(m.body), `runtime_attestor_evidence_requests_total{result="rate_limited"} `) {
		t.Error("/metrics does not count rate-limited evidence requests")
	}
}
