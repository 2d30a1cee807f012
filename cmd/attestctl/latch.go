package main

import (
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/bundle"
)

// writeLatch explains a latched failed state: since when, which
// attestation and findings latched it, and what clears it.
func writeLatch(row func(k, format string, args ...any), l *apitypes.LatchReport, now time.Time) {
	if l == nil {
		return
	}
	since := l.Since
	if t, err := time.Parse(time.RFC3339, since); err == nil {
		since += " (" + ago(now.Sub(t)) + ")"
	}
	row("Failed since:", "%s, attestation %d, score %d", since, l.Sequence, l.Score)
	label := "Latched by:"
	for _, f := range l.Findings {
		row(label, "%s %s (%s, %s): %s", f.Severity, f.Code, orDash(f.Plugin), orDash(f.Subject), f.Message)
		label = ""
	}
	if len(l.Findings) == 0 {
		row(label, "the score reached the failed threshold")
	}
	row("Clears:", "%s", l.Clears)
}

// hasCode reports whether the bundle carries a finding with code.
func hasCode(b *bundle.Bundle, code string) bool {
	for _, f := range b.Failures {
		if f.Code == code {
			return true
		}
	}
	return false
}
