// Package apitypes is the JSON of the daemon's HTTP API: the bodies it
// answers with and the rule for its bearer token, shared by the server
// (core/api) and its clients (attestctl, downstream services' tests).
// It links no HTTP server, engine or plugin host.
package apitypes

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/core/verdict"
)

// AttestResponse is the body of GET /api/v1/attest and of a successful POST
// /api/v1/refresh. Bundle is the signed bundle exactly as signed, or null
// while pending.
type AttestResponse struct {
	State  state.State     `json:"state"`
	Bundle json.RawMessage `json:"bundle"`
}

// HealthResponse is the body of GET /health.
type HealthResponse struct {
	Status string      `json:"status"`
	State  state.State `json:"state"`
}

// VerifyResponse is the body of GET /api/v1/verify (200 and 503).
type VerifyResponse struct {
	Verified bool        `json:"verified"`
	State    state.State `json:"state"`
}

// StatusResponse is the body of GET /api/security/status: the base fields
// in a fixed order, then refresh_count, score and plugins. LastAttested
// is RFC 3339 UTC, nil (null) while pending.
type StatusResponse struct {
	AttestationState state.State    `json:"attestation_state"`
	TPMAvailable     bool           `json:"tpm_available"`
	TPMQuoteVerified bool           `json:"tpm_quote_verified"`
	SecureBoot       bool           `json:"secure_boot"`
	PolicyDigest     string         `json:"policy_digest"`
	DeploymentDigest string         `json:"deployment_digest"`
	ServiceCount     int            `json:"service_count"`
	FailureCount     int            `json:"failure_count"`
	LastAttested     *string        `json:"last_attested"`
	AttestCount      uint64         `json:"attest_count"`
	DegradeCount     uint64         `json:"degrade_count"`
	FailCount        uint64         `json:"fail_count"`
	RefreshCount     uint64         `json:"refresh_count"`
	Score            int            `json:"score"`
	Plugins          []PluginReport `json:"plugins"`
	// AuditLastSeq and AuditLastHash: the audit log's head as of the last
	// attestation; null without an audit log (runtime-attestor --once).
	AuditLastSeq  *uint64 `json:"audit_last_seq"`
	AuditLastHash *string `json:"audit_last_hash"`
	// VerdictMeasurement says whether verdicts are extended into the TPM
	// and, when not, why (docs/tpm.md, "Verdict measurement").
	VerdictMeasurement verdict.Status `json:"verdict_measurement"`
	// Latched says, while the state is failed, since when, which
	// attestation and findings latched it and what clears it; null
	// otherwise.
	Latched *LatchReport `json:"latched"`
}

// PluginReport is one plugin in StatusResponse.
type PluginReport struct {
	Name            string  `json:"name"`
	Version         string  `json:"version"`
	DurationSeconds float64 `json:"duration_seconds"`
	Fault           string  `json:"fault"`
	FaultCount      uint64  `json:"fault_count"`
	Findings        int     `json:"findings"`
	// Confinement is what the host imposed on the plugin's process in the
	// last attestation ("landlock v7, seccomp, no_new_privs"; without
	// Landlock it says so); "" when it did not run.
	Confinement string `json:"confinement"`
}

// ErrorResponse is the body of every error; State is set when a refresh
// failed (503, 504).
type ErrorResponse struct {
	Error string      `json:"error"`
	State state.State `json:"state,omitempty"`
}

// LatchClears says what ends a latched failed state, for operators reading
// /api/security/status or `attestctl status`.
const LatchClears = "failed holds until the daemon restarts (systemctl restart secure-ai-runtime-attestor); fix the cause first, or the first attestation after the restart fails again"

// LatchReport is StatusResponse.Latched: null unless the state is failed.
type LatchReport struct {
	Since    string               `json:"since"`
	Sequence uint64               `json:"sequence"`
	Score    int                  `json:"score"`
	Findings []state.LatchFinding `json:"findings"`
	Clears   string               `json:"clears"`
}

// ValidateToken reports whether tok (white space around it ignored, as
// SetToken does) can ever be presented as a bearer token: it must be
// non-empty printable ASCII without spaces. A token that fails can never
// match, so the daemon should refuse it when it loads the policy.
func ValidateToken(tok []byte) error {
	tok = bytes.TrimSpace(tok)
	if len(tok) == 0 {
		return errors.New("api token is empty")
	}
	for _, c := range tok {
		if c < 0x21 || c > 0x7e {
			return errors.New("api token holds white space or a byte that is not printable ASCII")
		}
	}
	return nil
}
