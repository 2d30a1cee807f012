package api

import (
	"encoding/json"

	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/core/verdict"
)

// The JSON bodies of the API, for clients (attestctl) and tests.

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
