package engine

import (
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestLatchOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fail := func(code string, sev sdk.Severity) bundle.Failure {
		return bundle.Failure{Finding: bundle.Finding{Code: code, Severity: sev, Subject: "s", Message: "m"}, Plugin: "p"}
	}
	mixed := &bundle.Bundle{Sequence: 7, Failures: []bundle.Failure{fail("a.low", sdk.SeverityLow), fail("a.crit", sdk.SeverityCritical), fail("a.info", sdk.SeverityInfo)}}
	scored := &bundle.Bundle{Sequence: 8, Failures: []bundle.Failure{fail("a.med", sdk.SeverityMedium), fail("a.info", sdk.SeverityInfo), fail("a.high", sdk.SeverityHigh)}}
	running := &Latch{Since: now.Add(-time.Hour), Sequence: 3}
	tests := []struct {
		name      string
		running   *Latch
		prev, st  state.State
		b         *bundle.Bundle
		wantNil   bool
		wantSeq   uint64
		wantCodes []string
	}{
		{"attested", nil, state.Pending, state.Attested, mixed, true, 0, nil},
		{"degraded", nil, state.Attested, state.Degraded, mixed, true, 0, nil},
		{"falls: the critical finding", nil, state.Attested, state.Failed, mixed, false, 7, []string{"a.crit"}},
		{"falls by score: heaviest first, no info", nil, state.Degraded, state.Failed, scored, false, 8, []string{"a.high", "a.med"}},
		{"holds: the first latch stays", running, state.Failed, state.Failed, mixed, false, 3, nil},
	}
	for i, tc := range tests {
		l := latchOf(tc.running, tc.prev, tc.st, tc.b, 120, now)
		if (l == nil) != tc.wantNil {
			t.Errorf("Test %d (%s): latch %+v", i, tc.name, l)
			continue
		}
		if l == nil {
			continue
		}
		if l.Sequence != tc.wantSeq {
			t.Errorf("Test %d (%s): sequence %d, want %d", i, tc.name, l.Sequence, tc.wantSeq)
		}
		if tc.running != nil {
			continue
		}
		var codes []string
		for _, f := range l.Findings {
			codes = append(codes, f.Code)
		}
		if len(codes) != len(tc.wantCodes) || (len(codes) > 0 && codes[0] != tc.wantCodes[0]) || !l.Since.Equal(now) {
			t.Errorf("Test %d (%s): findings %v since %v, want %v at %v", i, tc.name, codes, l.Since, tc.wantCodes, now)
		}
	}
}
