package api

import (
	"time"

	"github.com/secure-ai/runtime-attestor/core/engine"
)

// LatchClears says what ends a latched failed state, for operators reading
// /api/security/status or `attestctl status`.
const LatchClears = "failed holds until the daemon restarts (systemctl restart secure-ai-runtime-attestor); fix the cause first, or the first attestation after the restart fails again"

// LatchReport is StatusResponse.Latched: null unless the state is failed.
type LatchReport struct {
	Since    string                `json:"since"`
	Sequence uint64                `json:"sequence"`
	Score    int                   `json:"score"`
	Findings []engine.LatchFinding `json:"findings"`
	Clears   string                `json:"clears"`
}

// latchReport renders l; nil stays nil.
func latchReport(l *engine.Latch) *LatchReport {
	if l == nil {
		return nil
	}
	return &LatchReport{
		Since:    l.Since.UTC().Format(time.RFC3339),
		Sequence: l.Sequence,
		Score:    l.Score,
		Findings: append([]engine.LatchFinding{}, l.Findings...),
		Clears:   LatchClears,
	}
}
