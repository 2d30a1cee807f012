package api

import (
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// LatchClears says what ends a latched failed state, for operators reading
// /api/security/status or `attestctl status`.
const LatchClears = "failed holds until the daemon restarts (systemctl restart secure-ai-runtime-attestor); fix the cause first, or the first attestation after the restart fails again"

// Latch is why the daemon is failed: the attestation that first evaluated
// to failed, when it ran and the findings that made it fail. It stays set
// while the state is failed, i.e. until the daemon restarts.
type Latch struct {
	Since    time.Time
	Sequence uint64
	Score    int
	Findings []LatchFinding
}

// LatchFinding is one finding that latched the failed state.
type LatchFinding struct {
	Code     string       `json:"code"`
	Severity sdk.Severity `json:"severity"`
	Plugin   string       `json:"plugin"`
	Subject  string       `json:"subject"`
	Message  string       `json:"message"`
}

// LatchReport is StatusResponse.Latched: null unless the state is failed.
type LatchReport struct {
	Since    string         `json:"since"`
	Sequence uint64         `json:"sequence"`
	Score    int            `json:"score"`
	Findings []LatchFinding `json:"findings"`
	Clears   string         `json:"clears"`
}

// latchReport renders l; nil stays nil.
func latchReport(l *Latch) *LatchReport {
	if l == nil {
		return nil
	}
	return &LatchReport{
		Since:    l.Since.UTC().Format(time.RFC3339),
		Sequence: l.Sequence,
		Score:    l.Score,
		Findings: append([]LatchFinding{}, l.Findings...),
		Clears:   LatchClears,
	}
}
