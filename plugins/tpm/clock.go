package tpm

import (
	"fmt"
	"time"

	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// maxClockRecords caps the TPM identities the tracker remembers (and the
// state file holds). Past it, the identity seen longest ago is dropped. A
// machine has one TPM and the plugin one AK per configuration; the cap
// only keeps a file that sees many keys from growing without end.
const maxClockRecords = 16

// clockMark is the highest TPMS_CLOCK_INFO seen from one TPM identity, and
// when that identity last quoted.
type clockMark struct {
	clock attest.ClockInfo
	seen  time.Time
}

// clockTracker remembers, for each TPM identity (the hex TPM name of the
// attestation key that signed the quote), the highest TPMS_CLOCK_INFO seen
// in a verified quote and flags one that goes back: a lower reset count, a
// lower restart count within the same reset, or a lower clock within the
// same reset and restart. A TPM never moves these back on its own (only
// TPM2_Clear resets the counts), so a decrease means its state was rolled
// back or cleared, or an old quote was replayed.
//
// The marks are keyed by AK name so that another TPM, or another key (a
// new ak.algorithm or ak.handle), starts a record of its own instead of
// being held to the first one's clock; see README.md.
type clockTracker struct {
	marks map[string]clockMark
}

// behind describes how c goes back from the mark h, or returns "" when it
// does not: the TPM's (reset count, restart count, clock) only ever grows
// in that order.
func behind(c, h attest.ClockInfo) string {
	switch {
	case c.ResetCount < h.ResetCount:
		return fmt.Sprintf("reset count went down from %d to %d", h.ResetCount, c.ResetCount)
	case c.ResetCount > h.ResetCount:
		return ""
	case c.RestartCount < h.RestartCount:
		return fmt.Sprintf("restart count went down from %d to %d within reset %d", h.RestartCount, c.RestartCount, c.ResetCount)
	case c.RestartCount > h.RestartCount:
		return ""
	case c.Clock < h.Clock:
		return fmt.Sprintf("clock went back from %d ms to %d ms within reset %d, restart %d", h.Clock, c.Clock, c.ResetCount, c.RestartCount)
	}
	return ""
}

// observe checks c, quoted by the TPM identity id at now, against that
// identity's high-water mark and, when c does not go back, makes it the
// new mark. It returns a description of the rollback, or "" when there is
// none. The mark is not lowered by a rollback, so the finding repeats for
// as long as the TPM stays behind.
func (t *clockTracker) observe(id string, c attest.ClockInfo, now time.Time) string {
	if t.marks == nil {
		t.marks = map[string]clockMark{}
	}
	h, ok := t.marks[id]
	if ok {
		if msg := behind(c, h.clock); msg != "" {
			h.seen = now
			t.marks[id] = h
			return msg
		}
	}
	t.marks[id] = clockMark{clock: c, seen: now}
	t.evict(id)
	return ""
}

// merge adds a mark read from the state file: the higher clock of it and
// the one in memory stays, with the later time seen.
func (t *clockTracker) merge(id string, m clockMark) {
	if t.marks == nil {
		t.marks = map[string]clockMark{}
	}
	h, ok := t.marks[id]
	if !ok {
		t.marks[id] = m
		return
	}
	if behind(h.clock, m.clock) != "" {
		h.clock = m.clock
	}
	if m.seen.After(h.seen) {
		h.seen = m.seen
	}
	t.marks[id] = h
}

// evict drops the identities seen longest ago, never keep, until at most
// maxClockRecords remain.
func (t *clockTracker) evict(keep string) {
	for len(t.marks) > maxClockRecords {
		oldest, first := "", true
		for id, m := range t.marks {
			if id == keep {
				continue
			}
			if first || m.seen.Before(t.marks[oldest].seen) || m.seen.Equal(t.marks[oldest].seen) && id < oldest {
				oldest, first = id, false
			}
		}
		delete(t.marks, oldest)
	}
}
