package api

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/ear"
	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/core/verdict"
)

// EvidenceTPM quotes with the daemon's attestation key (an
// *evidence.TPM).
type EvidenceTPM interface {
	AK(ctx context.Context) (evidence.AKPublic, error)
	Quote(ctx context.Context, qualifyingData []byte) (*evidence.Quote, error)
}

// Identity is the daemon's signing identity for the endpoints of
// evidence.go: the TPM that quotes (nil: none) and the key that signs EAR
// results (nil: none). Version names the attestor in EAR results.
type Identity struct {
	TPM     EvidenceTPM
	Signer  *identity.Signer
	Version string
	// Verdicts reports the verdict measurement (a *verdict.Measurer) in
	// GET /api/security/status; nil: not measured.
	Verdicts VerdictReporter
}

// VerdictReporter reports the measurement of verdicts into the TPM.
type VerdictReporter interface {
	Status() verdict.Status
}

// evidenceCounters count GET /api/v1/evidence requests by outcome.
type evidenceCounters struct {
	ok, badRequest, pending, noTPM, limited, failed atomic.Uint64
}

// earNonce bounds: EAT nonces are 8 to 64 bytes.
const (
	minEARNonce = 8
	maxEARNonce = 64
)

// evidenceTimeout bounds one evidence or AK request (the TPM's queue and
// operation limits are shorter).
const evidenceTimeout = 30 * time.Second

func (s *Server) evidenceRoutes(e *echo.Echo) {
	e.GET("/api/v1/ak", s.ak)
	e.GET("/api/v1/evidence", s.evidence)
	e.GET("/api/v1/ear", s.ear)
}

// tpmError answers a TPM error: 409 without a TPM or a signing key, 429
// when busy, 503 otherwise.
func tpmError(c echo.Context, err error) error {
	code := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, evidence.ErrNoTPM), errors.Is(err, evidence.ErrNoIdentity):
		code = http.StatusConflict
	case errors.Is(err, evidence.ErrBusy):
		code = http.StatusTooManyRequests
		c.Response().Header().Set("Retry-After", "1")
	}
	return c.JSON(code, apitypes.ErrorResponse{Error: err.Error()})
}

func (s *Server) noTPM(c echo.Context) error {
	return c.JSON(http.StatusConflict, apitypes.ErrorResponse{Error: "no TPM: this attestor has no TPM configured (evidence_tpm_device, evidence_tpm_socket); it never fakes a quote"})
}

func (s *Server) ak(c echo.Context) error {
	if s.id.TPM == nil {
		return s.noTPM(c)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), evidenceTimeout)
	defer cancel()
	ak, err := s.id.TPM.AK(ctx)
	if err != nil {
		return tpmError(c, err)
	}
	return c.JSON(http.StatusOK, ak)
}

func (s *Server) evidence(c echo.Context) error {
	n := &s.evidenceCount
	nonce, err := evidence.ParseNonce(c.QueryParam("nonce"))
	if err != nil {
		n.badRequest.Add(1)
		return c.JSON(http.StatusBadRequest, apitypes.ErrorResponse{Error: err.Error()})
	}
	if s.id.TPM == nil {
		n.noTPM.Add(1)
		return s.noTPM(c)
	}
	snap := s.att.Snapshot()
	if len(snap.Bundle) == 0 {
		n.pending.Add(1)
		return c.JSON(http.StatusServiceUnavailable, apitypes.ErrorResponse{Error: "no bundle yet: the first attestation has not finished", State: state.Pending})
	}
	qd, digest, err := evidence.QualifyingData(nonce, snap.Bundle)
	if err != nil {
		n.failed.Add(1)
		return c.JSON(http.StatusInternalServerError, apitypes.ErrorResponse{Error: "bundle: " + err.Error()})
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), evidenceTimeout)
	defer cancel()
	q, err := s.id.TPM.Quote(ctx, qd)
	if err != nil {
		switch {
		case errors.Is(err, evidence.ErrNoTPM), errors.Is(err, evidence.ErrNoIdentity):
			n.noTPM.Add(1)
		case errors.Is(err, evidence.ErrBusy):
			n.limited.Add(1)
		default:
			n.failed.Add(1)
			s.log.Warn("evidence quote failed", "error", err)
		}
		return tpmError(c, err)
	}
	n.ok.Add(1)
	return c.JSON(http.StatusOK, evidence.Build(nonce, snap.Bundle, qd, digest, q))
}

func (s *Server) ear(c echo.Context) error {
	nonce := c.QueryParam("nonce")
	if nonce != "" {
		b, err := hex.DecodeString(nonce)
		if err != nil || len(b) < minEARNonce || len(b) > maxEARNonce {
			return c.JSON(http.StatusBadRequest, apitypes.ErrorResponse{Error: "nonce must be 8 to 64 bytes in hex"})
		}
	}
	if s.id.Signer == nil {
		return c.JSON(http.StatusConflict, apitypes.ErrorResponse{Error: "no signing key: set signing_key_path (made by attestctl keygen) to get signed EAR results"})
	}
	claims, err := ear.Build(s.att.Snapshot().Bundle, ear.Options{Version: s.id.Version, Now: time.Now(), Nonce: nonce})
	if err != nil {
		return c.JSON(http.StatusInternalServerError, apitypes.ErrorResponse{Error: err.Error()})
	}
	tok, err := ear.Sign(claims, s.id.Signer)
	if err != nil {
		return c.JSON(http.StatusInternalServerError, apitypes.ErrorResponse{Error: err.Error()})
	}
	return c.Blob(http.StatusOK, ear.MediaType, []byte(tok))
}

// evidenceCollector exposes the evidence counters.
type evidenceCollector struct {
	s        *Server
	requests *prometheus.Desc
}

func newEvidenceCollector(s *Server) *evidenceCollector {
	return &evidenceCollector{s: s, requests: prometheus.NewDesc("runtime_attestor_evidence_requests_total",
		"GET /api/v1/evidence requests by outcome: ok, bad_request, pending, no_tpm, rate_limited, error.", []string{"result"}, nil)}
}

func (c *evidenceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.requests }

func (c *evidenceCollector) Collect(ch chan<- prometheus.Metric) {
	n := &c.s.evidenceCount
	for _, r := range []struct {
		label string
		v     *atomic.Uint64
	}{{"ok", &n.ok}, {"bad_request", &n.badRequest}, {"pending", &n.pending}, {"no_tpm", &n.noTPM}, {"rate_limited", &n.limited}, {"error", &n.failed}} {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(r.v.Load()), r.label)
	}
}
