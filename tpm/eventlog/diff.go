package eventlog

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxCells bounds the alignment table of one PCR (events in the log times
// events in a variant); past it events are compared position by position.
const maxCells = 1 << 20

// Difference is one event where a boot differs from its reference.
type Difference struct {
	PCR int
	// Event is the log's event; nil when the reference expects an event
	// the log does not have.
	Event *Event
	// Allowed is the reference's event at that place; nil when the log
	// has an event the reference does not list.
	Allowed *EventRef
	// After is, for a missing event, the index of the log event it was
	// expected after (-1: before the PCR's first event).
	After  int
	after  *Event
	bank   Bank
	values bool // the event's text is allowed, its digest does not hash it
}

// Subject names the event for a finding: pcr:N/event:I (firmware),
// pcr:N/userspace:I, or pcr:N for a missing event.
func (d Difference) Subject() string {
	switch {
	case d.Event == nil:
		return fmt.Sprintf("pcr:%d", d.PCR)
	case d.Event.Source == Userspace:
		return fmt.Sprintf("pcr:%d/userspace:%d", d.PCR, d.Event.Index)
	}
	return fmt.Sprintf("pcr:%d/event:%d", d.PCR, d.Event.Index)
}

// String says what differs, naming the PCR, the event's index, type,
// measured digest and description, and what the reference allows there.
func (d Difference) String() string {
	if d.Event == nil {
		where := "before its first event"
		if d.after != nil {
			where = "after " + eventName(*d.after)
		}
		return fmt.Sprintf("PCR %d: the reference expects %s %s, the log has none", d.PCR, describeRef(d.Allowed), where)
	}
	e := *d.Event
	head := fmt.Sprintf("PCR %d %s %s", d.PCR, eventName(e), e.TypeName)
	if desc := e.Description(); desc != "" {
		head += " " + desc
	}
	head += ": digest " + hexOr(e.Digest(d.bank), "(none in "+string(d.bank)+")")
	switch {
	case d.Allowed == nil:
		return head + ", which the reference does not list"
	case d.Allowed.Type != e.TypeName:
		return head + ", the reference expects " + describeRef(d.Allowed) + " there"
	case d.values:
		return head + ", its text is an allowed value but the digest is not the hash of that text"
	}
	return head + ", the reference allows " + allowed(d.Allowed)
}

func eventName(e Event) string {
	if e.Source == Userspace {
		return fmt.Sprintf("userspace event %d", e.Index)
	}
	return fmt.Sprintf("event %d", e.Index)
}

func describeRef(r *EventRef) string {
	s := r.Type
	if r.Description != "" {
		s += " (" + clip(r.Description) + ")"
	}
	return s + " with " + allowed(r)
}

func allowed(r *EventRef) string {
	parts := append([]string(nil), r.Digests...)
	for _, v := range r.Values {
		parts = append(parts, fmt.Sprintf("%q", clip(v)))
	}
	if len(r.Digests) > 0 && len(r.Values) == 0 {
		return "digest " + strings.Join(parts, " or ")
	}
	return strings.Join(parts, " or ")
}

// Compare compares the events of the PCRs in pcrs (those whose replay
// against the quote succeeded) with the reference and returns every event
// that differs, PCR by PCR in increasing order. A PCR the reference does
// not list is not compared. Of a PCR's variants, the one closest to the
// log is the one reported against.
func Compare(fw *Log, user []Event, ref *Reference, pcrs []int) []Difference {
	per := byPCR(fw, user)
	check := map[int]bool{}
	for _, p := range pcrs {
		check[p] = true
	}
	var out []Difference
	for _, p := range ref.PCRList() {
		if !check[p] {
			continue
		}
		var best []Difference
		bestCost := -1
		for _, v := range ref.PCRs {
			if v.PCR != p {
				continue
			}
			diffs, cost := align(per[p], v.Events, ref.Bank, p)
			if bestCost < 0 || cost < bestCost {
				best, bestCost = diffs, cost
			}
			if cost == 0 {
				break
			}
		}
		out = append(out, best...)
	}
	return out
}

// matches reports whether event e is allowed by r in bank b, and whether
// it failed only because its text is allowed but its digest does not
// hash that text.
func matches(e Event, r *EventRef, b Bank) (ok, textOnly bool) {
	if e.TypeName != r.Type {
		return false, false
	}
	d := hex.EncodeToString(e.Digest(b))
	for _, a := range r.Digests {
		if a == d {
			return true, false
		}
	}
	if len(r.Values) == 0 {
		return false, false
	}
	text := e.Description()
	for _, v := range r.Values {
		if v == text {
			if measures(e, b) {
				return true, false
			}
			return false, true
		}
	}
	return false, false
}

// measures reports whether e's digest in bank b is the hash of what its
// text says was measured: the data, or GRUB's convention for
// "kernel_cmdline: X", "grub_cmd: X" and the older "grub_cmd X" and
// "grub_kernel_cmdline X" (the hash of X), each with or without its
// trailing NUL.
func measures(e Event, b Bank) bool {
	h := b.Hash()
	if !h.Available() {
		return false
	}
	d := e.Digest(b)
	data := e.Data
	cands := [][]byte{data}
	if i := bytes.Index(data, []byte(": ")); i > 0 {
		cands = append(cands, data[i+2:])
	} else if i := bytes.IndexByte(data, ' '); i > 0 && bytes.HasPrefix(data, []byte("grub_")) {
		cands = append(cands, data[i+1:])
	}
	for _, c := range cands {
		if bytes.Equal(sum(h, c), d) || bytes.Equal(sum(h, bytes.TrimRight(c, "\x00")), d) {
			return true
		}
	}
	return false
}

func sum(h crypto.Hash, b []byte) []byte {
	x := h.New()
	x.Write(b)
	return x.Sum(nil)
}

// align aligns the log's events of one PCR with a variant's (an edit
// distance: a changed event costs 1, a changed type 2, an extra or a
// missing event 1) and returns the differences and their cost.
func align(log []Event, ref []EventRef, b Bank, pcr int) ([]Difference, int) {
	n, m := len(log), len(ref)
	if n*m > maxCells {
		return positional(log, ref, b, pcr)
	}
	sub := func(i, j int) int {
		if ok, _ := matches(log[i], &ref[j], b); ok {
			return 0
		}
		if log[i].TypeName == ref[j].Type {
			return 1
		}
		return 2
	}
	// cost[i][j]: aligning log[i:] with ref[j:].
	cost := make([][]int32, n+1)
	for i := range cost {
		cost[i] = make([]int32, m+1)
	}
	for i := n; i >= 0; i-- {
		for j := m; j >= 0; j-- {
			switch {
			case i == n:
				cost[i][j] = int32(m - j)
			case j == m:
				cost[i][j] = int32(n - i)
			default:
				c := cost[i+1][j+1] + int32(sub(i, j))
				c = min(c, cost[i+1][j]+1, cost[i][j+1]+1)
				cost[i][j] = c
			}
		}
	}
	var out []Difference
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && cost[i][j] == cost[i+1][j+1]+int32(sub(i, j)):
			if ok, textOnly := matches(log[i], &ref[j], b); !ok {
				out = append(out, Difference{PCR: pcr, Event: &log[i], Allowed: &ref[j], bank: b, values: textOnly})
			}
			i, j = i+1, j+1
		case i < n && cost[i][j] == cost[i+1][j]+1:
			out = append(out, Difference{PCR: pcr, Event: &log[i], bank: b})
			i++
		default:
			out = append(out, missing(log, i, &ref[j], b, pcr))
			j++
		}
	}
	return out, int(cost[0][0])
}

func missing(log []Event, i int, r *EventRef, b Bank, pcr int) Difference {
	d := Difference{PCR: pcr, Allowed: r, After: -1, bank: b}
	if i > 0 {
		d.after = &log[i-1]
		d.After = log[i-1].Index
	}
	return d
}

// positional compares event i with reference event i, for PCRs too long to
// align.
func positional(log []Event, ref []EventRef, b Bank, pcr int) ([]Difference, int) {
	var out []Difference
	for i := 0; i < max(len(log), len(ref)); i++ {
		switch {
		case i >= len(ref):
			out = append(out, Difference{PCR: pcr, Event: &log[i], bank: b})
		case i >= len(log):
			out = append(out, missing(log, i, &ref[i], b, pcr))
		default:
			if ok, textOnly := matches(log[i], &ref[i], b); !ok {
				out = append(out, Difference{PCR: pcr, Event: &log[i], Allowed: &ref[i], bank: b, values: textOnly})
			}
		}
	}
	return out, len(out)
}
