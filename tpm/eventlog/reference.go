package eventlog

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ReferenceVersion is the version of the boot reference format.
const ReferenceVersion = 1

// Bounds of a boot reference file.
const (
	MaxReferenceSize = 4 << 20
	maxAlternatives  = 64
)

// Reference is a boot reference: per PCR, the events a good boot measures,
// in order. Several entries for one PCR are alternatives (variants); each
// event may allow several digests (old and new kernel during an update).
type Reference struct {
	Version int          `yaml:"version"`
	Bank    Bank         `yaml:"bank"`
	PCRs    []PCRVariant `yaml:"pcrs"`
}

// PCRVariant is one allowed sequence of events for a PCR.
type PCRVariant struct {
	PCR int `yaml:"pcr"`
	// Variant is a name for humans ("kernel 6.12"); not compared.
	Variant string     `yaml:"variant,omitempty"`
	Events  []EventRef `yaml:"events"`
}

// EventRef is one allowed event: its type, and the digests allowed, or for
// a text event (a kernel command line, a GRUB command) the texts allowed.
type EventRef struct {
	Type string `yaml:"type"`
	// Description names the event for humans (from the recorded log);
	// not compared.
	Description string `yaml:"description,omitempty"`
	// Digests are the allowed digests in the reference's bank, lowercase
	// hex: for EV_EFI_BOOT_SERVICES_APPLICATION, the Authenticode digests
	// of the allowed images.
	Digests []string `yaml:"digests,omitempty"`
	// Values are allowed texts of the event data. A value allows an event
	// whose text is that value and whose digest is the hash of what was
	// measured (the data, or for GRUB's "kernel_cmdline: " and
	// "grub_cmd: " events the text after the prefix).
	Values []string `yaml:"values,omitempty"`
}

// PCRList returns the PCRs the reference covers, in increasing order.
func (r *Reference) PCRList() []int {
	seen := map[int]bool{}
	var out []int
	for _, v := range r.PCRs {
		if !seen[v.PCR] {
			seen[v.PCR] = true
			out = append(out, v.PCR)
		}
	}
	sort.Ints(out)
	return out
}

// ParseReference parses and validates a boot reference. Its errors name
// the entry that is wrong ("pcrs[2].events[5].digests[0]: ...").
func ParseReference(raw []byte) (*Reference, error) {
	if len(raw) > MaxReferenceSize {
		return nil, fmt.Errorf("%w: the boot reference is %d bytes, at most %d are read", ErrTooLarge, len(raw), MaxReferenceSize)
	}
	var r Reference
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the boot reference is empty")
		}
		return nil, fmt.Errorf("the boot reference is not valid YAML of the expected shape: %w", err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *Reference) validate() error {
	if r.Version != ReferenceVersion {
		return fmt.Errorf("version: %d is not %d (write the file with attestctl boot-reference record)", r.Version, ReferenceVersion)
	}
	b, err := ParseBank(string(r.Bank))
	if err != nil {
		return fmt.Errorf("bank: %w", err)
	}
	if len(r.PCRs) == 0 {
		return errors.New("pcrs: lists no PCR: a boot reference that allows nothing checks nothing")
	}
	alt := map[int]int{}
	for i, v := range r.PCRs {
		key := fmt.Sprintf("pcrs[%d]", i)
		if v.PCR < 0 || v.PCR > MaxPCR {
			return fmt.Errorf("%s.pcr: %d is outside 0..%d", key, v.PCR, MaxPCR)
		}
		if alt[v.PCR]++; alt[v.PCR] > maxAlternatives {
			return fmt.Errorf("%s: more than %d variants of PCR %d", key, maxAlternatives, v.PCR)
		}
		if len(v.Events) > MaxEvents {
			return fmt.Errorf("%s.events: %d events, at most %d", key, len(v.Events), MaxEvents)
		}
		for j, e := range v.Events {
			if err := e.validate(b); err != nil {
				return fmt.Errorf("%s.events[%d].%w", key, j, err)
			}
		}
	}
	return nil
}

func (e *EventRef) validate(b Bank) error {
	if e.Type == "" {
		return errors.New("type: missing (an event type like EV_SEPARATOR)")
	}
	if _, ok := TypeByName(e.Type); !ok && !strings.Contains(e.Type, ":") && e.Type != "cel" {
		return fmt.Errorf("type: %q is not a TCG event type (EV_...), EV_0x%%08x, or a userspace content type like systemd:phase", e.Type)
	}
	if len(e.Digests) == 0 && len(e.Values) == 0 {
		return errors.New("digests: an event must allow at least one digest or value")
	}
	for k, d := range e.Digests {
		v, err := hex.DecodeString(d)
		if err != nil || len(v) != b.Hash().Size() || strings.ToLower(d) != d {
			return fmt.Errorf("digests[%d]: %q is not a %s digest (%d lowercase hex digits)", k, clip(d), b, 2*b.Hash().Size())
		}
	}
	return nil
}

// Marshal writes the reference as YAML with a header comment.
func (r *Reference) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# runtime-attestor boot reference: per PCR, the events a good boot measures, in order.\n" +
		"# Several entries for one PCR are alternatives; an event allows any of its digests or values.\n" +
		"# Descriptions are for humans and are not compared. See docs/tpm.md.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encoding the boot reference: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding the boot reference: %w", err)
	}
	return buf.Bytes(), nil
}

// Record makes a reference from what a machine measured: every event of
// the given PCRs (every PCR with events when pcrs is empty) in bank b,
// each allowing exactly its digest.
func Record(fw *Log, user []Event, b Bank, pcrs []int) (*Reference, error) {
	want := map[int]bool{}
	for _, p := range pcrs {
		want[p] = true
	}
	per := map[int][]EventRef{}
	for p, events := range byPCR(fw, user) {
		if len(pcrs) > 0 && !want[p] {
			continue
		}
		for _, e := range events {
			d := e.Digest(b)
			if d == nil {
				return nil, fmt.Errorf("%s event %d (PCR %d, %s) has no %s digest: record another bank", e.Source, e.Index, e.PCR, e.TypeName, b)
			}
			per[p] = append(per[p], EventRef{Type: e.TypeName, Description: e.Description(), Digests: []string{hex.EncodeToString(d)}})
		}
	}
	r := &Reference{Version: ReferenceVersion, Bank: b}
	for _, p := range sortedKeys(per) {
		r.PCRs = append(r.PCRs, PCRVariant{PCR: p, Events: per[p]})
	}
	if len(r.PCRs) == 0 {
		return nil, errors.New("the logs hold no event of the PCRs asked for")
	}
	return r, nil
}

// Merge adds what other allows to r: a PCR variant of other with the same
// event types as one of r's has its digests and values added event by
// event (a new kernel in place of the old); any other becomes a new
// variant. The banks must agree.
func (r *Reference) Merge(other *Reference) error {
	if r.Bank != other.Bank {
		return fmt.Errorf("the references are of banks %s and %s", r.Bank, other.Bank)
	}
next:
	for _, ov := range other.PCRs {
		for i := range r.PCRs {
			v := &r.PCRs[i]
			if v.PCR != ov.PCR || !sameTypes(v.Events, ov.Events) {
				continue
			}
			for j := range v.Events {
				v.Events[j].Digests = union(v.Events[j].Digests, ov.Events[j].Digests)
				v.Events[j].Values = union(v.Events[j].Values, ov.Events[j].Values)
			}
			continue next
		}
		r.PCRs = append(r.PCRs, ov)
	}
	sort.SliceStable(r.PCRs, func(i, j int) bool { return r.PCRs[i].PCR < r.PCRs[j].PCR })
	return r.validate()
}

func sameTypes(a, b []EventRef) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type {
			return false
		}
	}
	return true
}

func union(a, b []string) []string {
	for _, x := range b {
		found := false
		for _, y := range a {
			found = found || x == y
		}
		if !found {
			a = append(a, x)
		}
	}
	return a
}

func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
