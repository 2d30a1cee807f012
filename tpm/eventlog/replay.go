package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-attestation/attest"
)

// firmwarePCRs are the PCRs the firmware log covers completely (TCG PC
// Client PFP 2.3.4: 0-7 firmware, 8-9 boot loader): one whose log has no
// event must still hold its reset value.
const firmwarePCRs = 9

// PCRReplay is the outcome of replaying one PCR of one bank.
type PCRReplay struct {
	PCR  int
	Bank Bank
	// Events counts the PCR's events in the logs.
	Events int
	// OK: the events replay to the quoted value.
	OK bool
	// Logged is false for a PCR above 9 that no log mentions: nothing
	// was replayed, nothing failed.
	Logged bool
	// Problem says why the replay failed.
	Problem string
	// Late lists the userspace events (their indices) that systemd logged
	// after the quote was taken: the quote does not vouch for them, so
	// nothing may be concluded from them (see WithoutLate).
	Late []int
}

// WithoutLate returns the userspace events the quote vouched for: user
// without the Late events of the replays.
func WithoutLate(user []Event, replays []PCRReplay) []Event {
	late := map[int]bool{}
	for _, r := range replays {
		for _, i := range r.Late {
			late[i] = true
		}
	}
	if len(late) == 0 {
		return user
	}
	out := make([]Event, 0, len(user))
	for _, e := range user {
		if !late[e.Index] {
			out = append(out, e)
		}
	}
	return out
}

// Replay replays bank b of the firmware log fw (nil when there is none)
// followed by the userspace events user against quoted, the bank's values
// of the quoted PCRs. It returns one result per quoted PCR, in increasing
// order. PCRs with firmware events only are replayed by go-attestation
// (with its workarounds for known firmware bugs); a PCR that systemd also
// extended is replayed here, its userspace events after its firmware ones.
func Replay(fw *Log, user []Event, b Bank, quoted map[int][]byte) []PCRReplay {
	perPCR := byPCR(fw, user)
	hasUser := map[int]bool{}
	for _, e := range user {
		if e.PCR >= 0 {
			hasUser[e.PCR] = true
		}
	}
	pcrs := make([]int, 0, len(quoted))
	for p := range quoted {
		pcrs = append(pcrs, p)
	}
	sort.Ints(pcrs)

	// go-attestation judges the firmware-only PCRs.
	invalid := map[int]bool{}
	var fwPCRs []attest.PCR
	for _, p := range pcrs {
		if !hasUser[p] && len(perPCR[p]) > 0 {
			fwPCRs = append(fwPCRs, attest.PCR{Index: p, Digest: quoted[p], DigestAlg: b.Hash()})
		}
	}
	if len(fwPCRs) > 0 && fw != nil {
		_, err := fw.parsed.Verify(fwPCRs)
		var re attest.ReplayError
		switch {
		case errors.As(err, &re):
			for _, p := range re.InvalidPCRs {
				invalid[p] = true
			}
		case err != nil:
			for _, p := range fwPCRs {
				invalid[p.Index] = true
			}
		}
	}

	out := make([]PCRReplay, 0, len(pcrs))
	for _, p := range pcrs {
		events := perPCR[p]
		r := PCRReplay{PCR: p, Bank: b, Events: len(events), Logged: len(events) > 0 || p <= firmwarePCRs}
		got, problem := chain(fw, events, p, b)
		switch {
		case !r.Logged:
			// nothing to replay
		case problem != "":
			r.Problem = problem
		case !hasUser[p] && len(events) > 0:
			r.OK = !invalid[p]
		default:
			r.OK = bytes.Equal(got, quoted[p])
			if !r.OK {
				r.Late = lateEvents(fw, events, p, b, quoted[p])
				r.OK = r.Late != nil
			}
		}
		if r.Logged && !r.OK && r.Problem == "" {
			r.Problem = fmt.Sprintf("its %d logged events give %s, the quoted value is %s", len(events), hexOr(got, "(none)"), hexOr(quoted[p], "(none)"))
			if len(events) == 0 {
				r.Problem = fmt.Sprintf("the log has no event for it, yet its quoted value %s is not its reset value", hexOr(quoted[p], "(none)"))
			}
		}
		out = append(out, r)
	}
	return out
}

// byPCR groups the events that extend a PCR, per PCR, in the order they
// extended it: the firmware's (without EV_NO_ACTION, which extends
// nothing), then systemd's (without NvPCR events).
func byPCR(fw *Log, user []Event) map[int][]Event {
	per := map[int][]Event{}
	if fw != nil {
		for _, e := range fw.Events {
			if e.Type != evNoAction {
				per[e.PCR] = append(per[e.PCR], e)
			}
		}
	}
	for _, e := range user {
		if e.PCR >= 0 {
			per[e.PCR] = append(per[e.PCR], e)
		}
	}
	return per
}

// chain extends the PCR's reset value with each event's digest in bank b.
func chain(fw *Log, events []Event, pcr int, b Bank) ([]byte, string) {
	h := b.Hash()
	if !h.Available() {
		return nil, fmt.Sprintf("bank %s is not supported", b)
	}
	v := make([]byte, h.Size())
	if pcr == 0 && fw != nil {
		v[len(v)-1] = startupLocality(fw)
	}
	for _, e := range events {
		d := e.Digest(b)
		if len(d) != h.Size() {
			return nil, fmt.Sprintf("%s event %d (%s) has no %s digest", e.Source, e.Index, e.TypeName, b)
		}
		x := h.New()
		x.Write(v)
		x.Write(d)
		v = x.Sum(nil)
	}
	return v, ""
}

// lateEvents returns the userspace events after the point where the PCR's
// events give the quoted value, when there is such a point past the first
// userspace event: systemd appended them after the quote was taken. nil
// when there is none.
func lateEvents(fw *Log, events []Event, pcr int, b Bank, quoted []byte) []int {
	for n := len(events) - 1; n > 0 && events[n].Source == Userspace && events[n-1].Source == Userspace; n-- {
		if got, _ := chain(fw, events[:n], pcr, b); bytes.Equal(got, quoted) {
			late := make([]int, 0, len(events)-n)
			for _, e := range events[n:] {
				late = append(late, e.Index)
			}
			return late
		}
	}
	return nil
}

// startupLocality returns the locality of TPM2_Startup that an
// EV_NO_ACTION "StartupLocality" event of PCR 0 records (0 without one):
// PCR 0 starts at that value.
func startupLocality(fw *Log) byte {
	for _, e := range fw.Events {
		if e.PCR == 0 && e.Type == evNoAction && len(e.Data) == 17 && strings.HasPrefix(string(e.Data), "StartupLocality") {
			return e.Data[16]
		}
	}
	return 0
}
