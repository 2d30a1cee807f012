// Package state is the attestation state machine: a pure function from the
// findings of one attestation, the severity weights and the thresholds of the
// policy to a state, and the rule that moves the daemon from one state to the
// next. It does no I/O.
//
//	pending ──attestation──▶ attested | degraded | failed
//	attested ◀──refresh──▶ degraded
//	attested | degraded ──refresh──▶ failed
//	failed ──(anything)──▶ failed   (until the daemon restarts)
package state

import (
	"math"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// State is the daemon's attestation state.
type State string

// The four states. Pending holds from start until the first attestation ends.
const (
	Pending  State = "pending"
	Attested State = "attested"
	Degraded State = "degraded"
	Failed   State = "failed"
)

// Valid reports whether s is one of the four states.
func (s State) Valid() bool {
	switch s {
	case Pending, Attested, Degraded, Failed:
		return true
	}
	return false
}

// Verified reports whether s lets /api/v1/verify answer 200: only Attested.
func (s State) Verified() bool { return s == Attested }

// Weights maps a severity to the weight one finding of that severity adds to
// the score. A severity missing from the map weighs 0.
type Weights map[sdk.Severity]int

// Thresholds are the scores at which the state becomes degraded and failed.
type Thresholds struct{ Degraded, Failed int }

// DefaultWeights returns the default severity weights: info 0, low 1,
// medium 5, high 20, critical 100.
func DefaultWeights() Weights {
	return Weights{
		sdk.SeverityInfo:     0,
		sdk.SeverityLow:      1,
		sdk.SeverityMedium:   5,
		sdk.SeverityHigh:     20,
		sdk.SeverityCritical: 100,
	}
}

// DefaultThresholds returns the default thresholds: degraded 5, failed 100.
func DefaultThresholds() Thresholds { return Thresholds{Degraded: 5, Failed: 100} }

// Evaluate weighs the findings of one attestation and returns the state they
// deserve and the score. score is the sum of the weights of the findings'
// severities (saturating at math.MaxInt, negative weights count as 0). The
// state is Failed if any finding is critical or score >= t.Failed, Degraded
// if score >= t.Degraded, Attested otherwise.
//
// A finding whose severity is not one of the five is weighed as critical:
// the wire layer refuses such findings before they get here, and an
// attestor fails closed. Evaluate never returns Pending.
func Evaluate(findings []sdk.Finding, w Weights, t Thresholds) (State, int) {
	score := 0
	critical := false
	for _, f := range findings {
		sev := f.Severity
		if !sev.Valid() {
			sev = sdk.SeverityCritical
		}
		if sev == sdk.SeverityCritical {
			critical = true
		}
		if wt := w[sev]; wt > 0 {
			if score > math.MaxInt-wt {
				score = math.MaxInt
			} else {
				score += wt
			}
		}
	}
	switch {
	case critical || score >= t.Failed:
		return Failed, score
	case score >= t.Degraded:
		return Degraded, score
	default:
		return Attested, score
	}
}

// Next returns the daemon's state after an attestation that evaluated to
// evaluated, given the state before it. Failed latches: once failed, the
// daemon stays failed until it restarts. Otherwise the new state is the
// evaluated one, so a refresh moves freely between Attested and Degraded and
// can fall to Failed. Next never returns Pending: an evaluated state that is
// Pending or not a valid state yields Failed (fail closed).
func Next(prev, evaluated State) State {
	if prev == Failed {
		return Failed
	}
	switch evaluated {
	case Attested, Degraded, Failed:
		return evaluated
	default:
		return Failed
	}
}

// LatchFinding is one finding that latched the failed state (the latch,
// as the engine keeps it and the API reports it).
type LatchFinding struct {
	Code     string       `json:"code"`
	Severity sdk.Severity `json:"severity"`
	Plugin   string       `json:"plugin"`
	Subject  string       `json:"subject"`
	Message  string       `json:"message"`
}
