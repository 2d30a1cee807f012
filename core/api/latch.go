package api

import (
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// latchReport renders l; nil stays nil.
func latchReport(l *engine.Latch) *apitypes.LatchReport {
	if l == nil {
		return nil
	}
	return &apitypes.LatchReport{
		Since:    l.Since.UTC().Format(time.RFC3339),
		Sequence: l.Sequence,
		Score:    l.Score,
		Findings: append([]state.LatchFinding{}, l.Findings...),
		Clears:   apitypes.LatchClears,
	}
}
