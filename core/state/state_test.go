package state

import (
	"math"
	"testing"

	"github.com/secure-ai/runtime-attestor/sdk"
)

func f(code string, sev sdk.Severity) sdk.Finding {
	return sdk.Finding{Code: code, Severity: sev, Message: code}
}

func repeat(n int, fd sdk.Finding) []sdk.Finding {
	out := make([]sdk.Finding, n)
	for i := range out {
		out[i] = fd
	}
	return out
}

func TestEvaluateDefaults(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name      string
		findings  []sdk.Finding
		wantState State
		wantScore int
	}{
		{"no findings", nil, Attested, 0},
		{"info only", []sdk.Finding{f("tpm.absent", sdk.SeverityInfo), f("secureboot.unavailable", sdk.SeverityInfo), f("ostree.unavailable", sdk.SeverityInfo)}, Attested, 0},
		{"one low", []sdk.Finding{f("kernel.lockdown_none", sdk.SeverityLow)}, Attested, 1},
		{"four lows stay below degraded", repeat(4, f("kernel.x", sdk.SeverityLow)), Attested, 4},
		{"five lows reach degraded", repeat(5, f("kernel.x", sdk.SeverityLow)), Degraded, 5},
		// The cases the README names.
		{"spec: missing binary degrades", []sdk.Finding{f("binaries.missing", sdk.SeverityMedium)}, Degraded, 5},
		{"spec: hash drift degrades", []sdk.Finding{f("binaries.digest_mismatch", sdk.SeverityMedium)}, Degraded, 5},
		{"spec: TPM required but absent fails", []sdk.Finding{f("tpm.absent", sdk.SeverityCritical)}, Failed, 100},
		{"spec: Secure Boot required but off fails", []sdk.Finding{f("secureboot.disabled", sdk.SeverityCritical)}, Failed, 100},
		{"one high degrades", []sdk.Finding{f("core.plugin_crashed", sdk.SeverityHigh)}, Degraded, 20},
		{"four highs degrade", repeat(4, f("core.plugin_timeout", sdk.SeverityHigh)), Degraded, 80},
		{"five highs reach failed", repeat(5, f("core.plugin_timeout", sdk.SeverityHigh)), Failed, 100},
		{"mixed below failed", []sdk.Finding{f("a.b", sdk.SeverityHigh), f("a.c", sdk.SeverityMedium), f("a.d", sdk.SeverityLow), f("a.e", sdk.SeverityInfo)}, Degraded, 26},
		{"critical among infos", []sdk.Finding{f("a.b", sdk.SeverityInfo), f("core.plugin_untrusted", sdk.SeverityCritical)}, Failed, 100},
		{"invalid severity fails closed", []sdk.Finding{f("a.b", sdk.Severity(0))}, Failed, 100},
		{"out of range severity fails closed", []sdk.Finding{f("a.b", sdk.Severity(9))}, Failed, 100},
	} {
		st, score := Evaluate(tc.findings, DefaultWeights(), DefaultThresholds())
		if st != tc.wantState || score != tc.wantScore {
			t.Errorf("Test %d (%s): got (%s, %d), want (%s, %d)", i, tc.name, st, score, tc.wantState, tc.wantScore)
		}
	}
}

func TestEvaluateCustomPolicy(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name      string
		findings  []sdk.Finding
		w         Weights
		th        Thresholds
		wantState State
		wantScore int
	}{
		{"info weighed", repeat(3, f("a.b", sdk.SeverityInfo)), Weights{sdk.SeverityInfo: 1, sdk.SeverityCritical: 100}, Thresholds{3, 10}, Degraded, 3},
		{"medium weighed zero", []sdk.Finding{f("a.b", sdk.SeverityMedium)}, Weights{sdk.SeverityMedium: 0, sdk.SeverityCritical: 100}, Thresholds{5, 100}, Attested, 0},
		{"missing weight is zero", []sdk.Finding{f("a.b", sdk.SeverityHigh)}, Weights{sdk.SeverityCritical: 100}, Thresholds{5, 100}, Attested, 0},
		{"negative weight counts as zero", []sdk.Finding{f("a.b", sdk.SeverityLow)}, Weights{sdk.SeverityLow: -7}, Thresholds{1, 2}, Attested, 0},
		{"degraded equals failed threshold", []sdk.Finding{f("a.b", sdk.SeverityMedium)}, Weights{sdk.SeverityMedium: 5}, Thresholds{5, 5}, Failed, 5},
		{"critical fails even weighed low", []sdk.Finding{f("a.b", sdk.SeverityCritical)}, Weights{sdk.SeverityCritical: 1}, Thresholds{50, 100}, Failed, 1},
		{"score saturates", repeat(3, f("a.b", sdk.SeverityHigh)), Weights{sdk.SeverityHigh: math.MaxInt / 2}, Thresholds{5, math.MaxInt}, Failed, math.MaxInt},
	} {
		st, score := Evaluate(tc.findings, tc.w, tc.th)
		if st != tc.wantState || score != tc.wantScore {
			t.Errorf("Test %d (%s): got (%s, %d), want (%s, %d)", i, tc.name, st, score, tc.wantState, tc.wantScore)
		}
	}
}

// TestNext covers every edge between pending, attested, degraded and failed, and the latch.
func TestNext(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		prev, evaluated, want State
	}{
		// pending -> first attestation
		{Pending, Attested, Attested},
		{Pending, Degraded, Degraded},
		{Pending, Failed, Failed},
		// periodic refresh between attested and degraded
		{Attested, Attested, Attested},
		{Attested, Degraded, Degraded},
		{Degraded, Attested, Attested},
		{Degraded, Degraded, Degraded},
		// refresh falling to failed
		{Attested, Failed, Failed},
		{Degraded, Failed, Failed},
		// failed latches until restart
		{Failed, Attested, Failed},
		{Failed, Degraded, Failed},
		{Failed, Failed, Failed},
		// Pending is never returned; nonsense fails closed
		{Pending, Pending, Failed},
		{Attested, Pending, Failed},
		{Attested, State("bogus"), Failed},
		{Degraded, State(""), Failed},
		{Failed, Pending, Failed},
	} {
		if got := Next(tc.prev, tc.evaluated); got != tc.want {
			t.Errorf("Test %d: Next(%s, %s) = %s, want %s", i, tc.prev, tc.evaluated, got, tc.want)
		}
	}
}

// TestScenario walks the daemon through a life: start, drift, repair,
// critical failure, repair that does not un-fail.
func TestScenario(t *testing.T) {
	t.Parallel()
	w, th := DefaultWeights(), DefaultThresholds()
	cur := Pending
	steps := []struct {
		findings []sdk.Finding
		want     State
	}{
		{nil, Attested},
		{[]sdk.Finding{f("binaries.digest_mismatch", sdk.SeverityMedium)}, Degraded},
		{nil, Attested},
		{[]sdk.Finding{f("tpm.pcr_mismatch", sdk.SeverityCritical)}, Failed},
		{nil, Failed},
	}
	for i, s := range steps {
		ev, _ := Evaluate(s.findings, w, th)
		cur = Next(cur, ev)
		if cur != s.want {
			t.Fatalf("step %d: state %s, want %s", i, cur, s.want)
		}
	}
}

func TestStateHelpers(t *testing.T) {
	t.Parallel()
	for _, s := range []State{Pending, Attested, Degraded, Failed} {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
		if s.Verified() != (s == Attested) {
			t.Errorf("%s: Verified() = %v", s, s.Verified())
		}
	}
	if State("Attested").Valid() || State("").Valid() {
		t.Error("invalid states reported valid")
	}
}
