// Package eventlog reads the logs of what was measured into a TPM's PCRs
// during boot and checks them: the firmware's TCG event log (parsed with
// github.com/google/go-attestation), systemd's userspace measurement log
// (CEL-JSON), their replay against PCR values a quote vouched for, the
// Secure Boot state measured into PCR 7, and a comparison with a boot
// reference that names every event that differs.
//
// Everything here is pure: bytes in, values out. The logs are
// attacker-influenced bytes, so every parser bounds what it accepts
// (MaxLogSize, MaxEvents) and is fuzzed.
package eventlog

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"github.com/google/go-attestation/attest"
)

// Bounds on what Parse accepts. A real firmware log is 10 to 200 KiB with
// 20 to a few hundred events; these are far above that and bound what a
// hostile log can make the parser allocate and the comparison compute.
const (
	MaxLogSize = 4 << 20
	MaxEvents  = 8192
	// MaxPCR is the highest PCR index of a PC Client TPM.
	MaxPCR = 23
)

// Where Linux puts the logs.
const (
	// DefaultFirmwareLog is where the kernel exposes the firmware's TCG
	// event log.
	DefaultFirmwareLog = "/sys/kernel/security/tpm0/binary_bios_measurements"
	// DefaultUserspaceLog is where systemd logs what it measures into
	// PCRs 11, 12, 13 and 15 (and NvPCRs).
	DefaultUserspaceLog = "/run/log/systemd/tpm2-measure.log"
)

// Bank is a PCR bank, named by its hash: "sha1", "sha256", "sha384",
// "sha512".
type Bank string

// The banks a log can carry.
const (
	SHA1   Bank = "sha1"
	SHA256 Bank = "sha256"
	SHA384 Bank = "sha384"
	SHA512 Bank = "sha512"
)

var banks = []struct {
	bank Bank
	alg  attest.HashAlg
	hash crypto.Hash
}{
	{SHA1, attest.HashSHA1, crypto.SHA1},
	{SHA256, attest.HashSHA256, crypto.SHA256},
	{SHA384, attest.HashSHA384, crypto.SHA384},
	{SHA512, attest.HashSHA512, crypto.SHA512},
}

// ParseBank returns the bank called name.
func ParseBank(name string) (Bank, error) {
	for _, b := range banks {
		if string(b.bank) == name {
			return b.bank, nil
		}
	}
	return "", fmt.Errorf("%q is not a PCR bank (sha1, sha256, sha384 or sha512)", name)
}

// Hash returns the bank's hash function.
func (b Bank) Hash() crypto.Hash {
	for _, x := range banks {
		if x.bank == b {
			return x.hash
		}
	}
	return 0
}

func (b Bank) alg() attest.HashAlg {
	for _, x := range banks {
		if x.bank == b {
			return x.alg
		}
	}
	return 0
}

// Source says which log an event comes from.
type Source string

// The two logs.
const (
	Firmware  Source = "firmware"
	Userspace Source = "userspace"
)

// Event is one measurement of a log.
type Event struct {
	// Source is the log the event is in.
	Source Source
	// Index is the event's position in its log, counted from 0 as
	// tpm2_eventlog does (a crypto-agile firmware log's event 0 is its
	// Spec ID header, which extends nothing).
	Index int
	// PCR is the PCR the event extended; -1 for a systemd NvPCR event.
	PCR int
	// Type is the TCG event type (EV_*) of a firmware event. A userspace
	// event has TypeName instead.
	Type uint32
	// TypeName names the type: EV_* for firmware events ("EV_0x%08x" for
	// a type the TCG does not define), the CEL content type and systemd
	// event type for userspace ones ("systemd:phase").
	TypeName string
	// Digests holds the event's digest in each bank it carries.
	Digests map[Bank][]byte
	// Data is the measured event data (firmware) or content string
	// (userspace). It is not covered by the PCRs: only Digests are.
	Data []byte
}

// Digest returns the event's digest in bank b, or nil.
func (e Event) Digest(b Bank) []byte { return e.Digests[b] }

// Log is a parsed firmware event log.
type Log struct {
	// SHA256 is the SHA-256 of the raw log.
	SHA256 [32]byte
	// Size is the raw log's length in bytes.
	Size int
	// Banks are the banks the log's Spec ID header declares (sha1 only
	// for a log in the old SHA-1 format).
	Banks []Bank
	// Events are the measurements in log order, without the Spec ID
	// header.
	Events []Event

	parsed *attest.EventLog
}

// ErrTooLarge is wrapped by the errors of a log past MaxLogSize or
// MaxEvents.
var ErrTooLarge = errors.New("log too large")

// Parse parses a firmware TCG event log (binary_bios_measurements), in the
// crypto-agile TPM 2.0 format or the old SHA-1 one. A log that is empty,
// truncated, garbage or past the bounds is an error that says what is
// wrong; event types the TCG does not define are kept.
func Parse(raw []byte) (*Log, error) {
	if len(raw) == 0 {
		return nil, errors.New("the event log is empty")
	}
	if len(raw) > MaxLogSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d are read", ErrTooLarge, len(raw), MaxLogSize)
	}
	el, err := attest.ParseEventLog(raw)
	if err != nil {
		return nil, fmt.Errorf("the event log does not parse (truncated or not a TCG event log): %w", err)
	}
	l := &Log{SHA256: sha256.Sum256(raw), Size: len(raw), parsed: el}
	for _, a := range el.Algs {
		for _, b := range banks {
			if b.alg == a {
				l.Banks = append(l.Banks, b.bank)
			}
		}
	}
	// Each bank's view gives the events in log order with that bank's
	// digest; together they give every digest of every event.
	var events []attest.Event
	perBank := map[Bank][]attest.Event{}
	for _, b := range l.Banks {
		perBank[b] = el.Events(b.alg())
		events = perBank[b]
	}
	if len(events) > MaxEvents {
		return nil, fmt.Errorf("%w: %d events, at most %d are read", ErrTooLarge, len(events), MaxEvents)
	}
	first := 0
	if agile(raw) {
		first = 1 // event 0 is the Spec ID header, not in the list
	}
	for i, e := range events {
		ev := Event{Source: Firmware, Index: first + i, PCR: e.Index, Type: uint32(e.Type), TypeName: TypeName(uint32(e.Type)),
			Data: e.Data, Digests: map[Bank][]byte{}}
		for b, list := range perBank {
			if d := list[i].Digest; d != nil {
				ev.Digests[b] = d
			}
		}
		if ev.PCR < 0 || ev.PCR > MaxPCR {
			return nil, fmt.Errorf("event %d extends PCR %d, outside 0..%d", ev.Index, e.Index, MaxPCR)
		}
		l.Events = append(l.Events, ev)
	}
	return l, nil
}

// agile reports whether raw starts with the Spec ID header of a
// crypto-agile log (TCG PC Client Platform Firmware Profile 10.4.5.1).
func agile(raw []byte) bool {
	const hdr = 4 + 4 + 20 + 4 // PCR index, type, SHA-1 digest, size
	if len(raw) < hdr+16 {
		return false
	}
	return binary.LittleEndian.Uint32(raw[4:8]) == evNoAction && bytes.HasPrefix(raw[hdr:], []byte("Spec ID Event03\x00"))
}

// CountPerPCR counts events per PCR (decimal string keys), NvPCR events
// left out.
func CountPerPCR(events []Event) map[string]int {
	out := map[string]int{}
	for _, e := range events {
		if e.PCR >= 0 {
			out[fmt.Sprint(e.PCR)]++
		}
	}
	return out
}

// HasBank reports whether the log declares bank b.
func (l *Log) HasBank(b Bank) bool {
	for _, x := range l.Banks {
		if x == b {
			return true
		}
	}
	return false
}

// BankNames lists the log's banks as strings.
func (l *Log) BankNames() []string {
	out := make([]string, len(l.Banks))
	for i, b := range l.Banks {
		out[i] = string(b)
	}
	sort.Strings(out)
	return out
}

func hexOr(b []byte, none string) string {
	if len(b) == 0 {
		return none
	}
	return hex.EncodeToString(b)
}
