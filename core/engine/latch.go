package engine

import (
	"sort"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// maxLatchFindings bounds the findings a latch names.
const maxLatchFindings = 8

// latchOf returns the latch set by an attestation that moved the state
// from prev to st: a new one when it fell to failed, the running one while
// failed holds, nil otherwise.
func latchOf(running *Latch, prev, st state.State, b *bundle.Bundle, score int, now time.Time) *Latch {
	if st != state.Failed {
		return nil
	}
	if prev == state.Failed && running != nil {
		return running
	}
	return &Latch{Since: now, Sequence: b.Sequence, Score: score, Findings: latchFindings(b.Failures)}
}

// latchFindings names what made the attestation fail: its critical
// findings when it has any (each fails on its own), otherwise the heaviest
// ones above info (the score crossed the threshold).
func latchFindings(fs []bundle.Failure) []state.LatchFinding {
	var pick []bundle.Failure
	for _, f := range fs {
		if f.Severity == sdk.SeverityCritical {
			pick = append(pick, f)
		}
	}
	if len(pick) == 0 {
		for _, f := range fs {
			if f.Severity > sdk.SeverityInfo {
				pick = append(pick, f)
			}
		}
		sort.SliceStable(pick, func(i, j int) bool { return pick[i].Severity > pick[j].Severity })
	}
	if len(pick) > maxLatchFindings {
		pick = pick[:maxLatchFindings]
	}
	out := make([]state.LatchFinding, 0, len(pick))
	for _, f := range pick {
		out = append(out, state.LatchFinding{Code: f.Code, Severity: f.Severity, Plugin: f.Plugin, Subject: f.Subject, Message: f.Message})
	}
	return out
}
