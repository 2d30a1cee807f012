package tpm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/tpm/eventlog"
)

// maxMismatchFindings bounds the findings of one boot that differs from its
// reference: past it one summary finding counts the rest.
const maxMismatchFindings = 20

// replayBank is the bank replayed and compared: the one the quote covers.
const replayBank = eventlog.SHA256

// Replay results of boot_measurements.event_log.
const (
	// replayVerified: every logged PCR of the quote replayed against it.
	replayVerified = "verified"
	// replayFailed: at least one PCR did not replay.
	replayFailed = "failed"
	// replayUnverified: no verified quote to replay against.
	replayUnverified = "unverified"
)

// bootState carries the boot reference and the quoted PCR values from one
// step of a measurement to the next.
type bootState struct {
	ref    *eventlog.Reference
	refSum string
	// quoted holds the PCR values, per bank, of a quote that verified;
	// nil when none did.
	quoted bankValues
}

// eventLogJSON is boot_measurements.event_log.
type eventLogJSON struct {
	Path string `json:"path"`
	// SHA256 and Size identify the raw log, so that a verifier given the
	// log (the evidence endpoint) knows it has the very bytes replayed.
	SHA256       string                `json:"sha256"`
	Size         int                   `json:"size"`
	Banks        []string              `json:"banks"`
	Events       map[string]int        `json:"events"`
	Replay       string                `json:"replay"`
	ReplayedPCRs []int                 `json:"replayed_pcrs"`
	FailedPCRs   []int                 `json:"failed_pcrs"`
	Userspace    *userspaceJSON        `json:"userspace"`
	SecureBoot   *eventlog.SecureBoot  `json:"secure_boot"`
	Reference    *referenceSummaryJSON `json:"reference"`
}

type userspaceJSON struct {
	Path        string         `json:"path"`
	SHA256      string         `json:"sha256"`
	Events      map[string]int `json:"events"`
	NvPCREvents int            `json:"nvpcr_events"`
}

type referenceSummaryJSON struct {
	Path        string `json:"path"`
	SHA256      string `json:"sha256"`
	Differences int    `json:"differences"`
}

// loadReference reads the boot reference, if one is configured, and adds
// its PCRs to the selection quoted.
func (c *check) loadReference(m *measurement) {
	m.sel = c.cfg.pcrs
	path := c.cfg.bootReference
	if path == "" {
		return
	}
	raw, err := regfile.Read(path, eventlog.MaxReferenceSize)
	var ref *eventlog.Reference
	if err == nil {
		ref, err = eventlog.ParseReference(raw)
	}
	if err == nil && ref.Bank != replayBank {
		err = fmt.Errorf("bank: %s is not the bank quoted (%s): record the reference again", ref.Bank, replayBank)
	}
	if err != nil {
		m.add(CodeBootReferenceInvalid, path, "boot reference %s is unusable: %v; the boot is not compared with it (fix the file, or write it again with attestctl boot-reference record)", path, err)
		return
	}
	m.boot.ref, m.boot.refSum = ref, sha256Hex(raw)
	sel := map[int]bool{}
	for _, p := range c.cfg.pcrs {
		sel[p] = true
	}
	for _, p := range ref.PCRList() {
		sel[p] = true
	}
	m.sel = make([]int, 0, len(sel))
	for p := range sel {
		m.sel = append(m.sel, p)
	}
	sort.Ints(m.sel)
}

// checkEventLog reads the logs, replays them against the quoted PCRs,
// reads Secure Boot from them and compares them with the reference,
// publishing boot_measurements.event_log.
func (c *check) checkEventLog(m *measurement) {
	if c.cfg.eventLog == "" || !m.available && m.boot.ref == nil {
		// Without a TPM there is nothing to replay against, and a
		// missing log says nothing new.
		return
	}
	fw, ok := c.readFirmwareLog(m)
	if !ok {
		c.referenceUnchecked(m, "the firmware event log could not be read")
		return
	}
	user, userJSON := c.readUserspaceLog(m)
	out := &eventLogJSON{Path: c.cfg.eventLog, SHA256: hex.EncodeToString(fw.SHA256[:]), Size: fw.Size,
		Banks: fw.BankNames(), Events: eventlog.CountPerPCR(fw.Events), Userspace: userJSON,
		Replay: replayUnverified, ReplayedPCRs: []int{}, FailedPCRs: []int{}}
	defer m.res.Set(KeyEventLog, out)

	if m.boot.quoted == nil {
		c.referenceUnchecked(m, "no quote verified in this attestation, so the log cannot be replayed against PCR values the TPM vouched for")
		return
	}
	replayed, user := c.replay(m, fw, user, out)
	if replayed[7] {
		sb, err := eventlog.SecureBootState(fw, replayBank)
		if err != nil {
			m.add(CodeEventLogSecureBoot, "pcr:7", "%v; boot_measurements.secure_boot comes from efivars alone", err)
		} else {
			out.SecureBoot = sb
		}
	}
	if m.boot.ref != nil {
		out.Reference = c.compare(m, fw, user, replayed)
	}
}

// replay replays every quoted bank and returns the PCRs that replayed in
// all of them, and the userspace events the quote vouched for (without
// those systemd logged after it).
func (c *check) replay(m *measurement, fw *eventlog.Log, user []eventlog.Event, out *eventLogJSON) (map[int]bool, []eventlog.Event) {
	out.Replay = replayVerified
	okIn, logged := map[int]int{}, map[int]bool{}
	vouched := user
	banks := append([]tpm2.TPMAlgID{tpm2.TPMAlgSHA256}, c.cfg.banks...)
	for _, h := range banks {
		b := bankName(h)
		if !fw.HasBank(b) {
			out.Replay = replayFailed
			m.add(CodeEventLogReplayFailed, "eventlog:"+string(b), "the firmware event log %s has no %s digests (banks %s): it cannot be replayed against the quoted %s PCRs", c.cfg.eventLog, b, strings.Join(fw.BankNames(), ", "), b)
			continue
		}
		replays := eventlog.Replay(fw, user, b, m.boot.quoted[h])
		vouched = eventlog.WithoutLate(vouched, replays)
		for _, r := range replays {
			logged[r.PCR] = logged[r.PCR] || r.Logged
			switch {
			case !r.Logged:
			case r.OK:
				okIn[r.PCR]++
			default:
				out.Replay = replayFailed
				m.add(CodeEventLogReplayFailed, fmt.Sprintf("pcr:%d/%s", r.PCR, r.Bank),
					"PCR %d (%s bank) does not replay: %s. The log does not describe this boot (edited, truncated, or PCR %d extended without logging)", r.PCR, r.Bank, r.Problem, r.PCR)
			}
		}
	}
	replayed := map[int]bool{}
	for _, p := range m.sel {
		if okIn[p] == len(banks) {
			replayed[p] = true
			out.ReplayedPCRs = append(out.ReplayedPCRs, p)
		} else if logged[p] {
			out.FailedPCRs = append(out.FailedPCRs, p)
		}
	}
	return replayed, vouched
}

// compare compares the replayed PCRs with the reference, one finding per
// differing event up to maxMismatchFindings, and reports the reference's
// PCRs that could not be compared.
func (c *check) compare(m *measurement, fw *eventlog.Log, user []eventlog.Event, replayed map[int]bool) *referenceSummaryJSON {
	ref := m.boot.ref
	var ok, unchecked []int
	for _, p := range ref.PCRList() {
		if replayed[p] {
			ok = append(ok, p)
		} else {
			unchecked = append(unchecked, p)
		}
	}
	if len(unchecked) > 0 {
		c.referenceUnchecked(m, fmt.Sprintf("PCR %s did not replay against the quote (or has no logged event)", joinInts(unchecked)))
	}
	diffs := eventlog.Compare(fw, user, ref, ok)
	perPCR := map[int]int{}
	for i, d := range diffs {
		if i < maxMismatchFindings {
			m.add(CodeBootEventMismatch, d.Subject(), "%s", d)
			continue
		}
		perPCR[d.PCR]++
	}
	if rest := len(diffs) - maxMismatchFindings; rest > 0 {
		var parts []string
		for _, p := range sortedIntKeys(perPCR) {
			parts = append(parts, fmt.Sprintf("PCR %d: %d", p, perPCR[p]))
		}
		m.add(CodeBootEventMismatchMore, "boot_reference", "%d more events differ from the boot reference than the %d reported (%s)", rest, maxMismatchFindings, strings.Join(parts, ", "))
	}
	return &referenceSummaryJSON{Path: c.cfg.bootReference, SHA256: m.boot.refSum, Differences: len(diffs)}
}

// referenceUnchecked reports, when a reference is loaded, that some of it
// could not be compared.
func (c *check) referenceUnchecked(m *measurement, why string) {
	if m.boot.ref == nil {
		return
	}
	m.add(CodeBootReferenceUnchecked, "boot_reference", "the boot was not (fully) compared with the boot reference %s: %s", c.cfg.bootReference, why)
}

// readFirmwareLog reads and parses the firmware log, reporting why not.
func (c *check) readFirmwareLog(m *measurement) (*eventlog.Log, bool) {
	path := c.cfg.eventLog
	raw, err := regfile.Read(path, eventlog.MaxLogSize)
	if errors.Is(err, fs.ErrNotExist) {
		sev, note := severityOf(CodeEventLogMissing), ""
		if c.cfg.bootReference != "" {
			sev, note = severityOf(CodeEventLogInvalid), " (the policy sets a boot_reference)"
		}
		m.res.Addf(CodeEventLogMissing, sev, path, "no firmware event log at %s%s: the boot cannot be replayed (a machine that did not boot through UEFI with a TPM, or securityfs not mounted)", path, note)
		return nil, false
	}
	var l *eventlog.Log
	if err == nil {
		l, err = eventlog.Parse(raw)
	}
	if err != nil {
		m.add(CodeEventLogInvalid, path, "firmware event log %s is unusable: %v", path, err)
		return nil, false
	}
	return l, true
}

// readUserspaceLog reads systemd's log; an absent one is normal.
func (c *check) readUserspaceLog(m *measurement) ([]eventlog.Event, *userspaceJSON) {
	path := c.cfg.userspaceLog
	if path == "" {
		return nil, nil
	}
	raw, err := regfile.Read(path, eventlog.MaxLogSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var evs []eventlog.Event
	if err == nil {
		evs, err = eventlog.ParseCEL(raw)
	}
	if err != nil {
		m.add(CodeUserspaceLogInvalid, path, "systemd's measurement log %s is unusable: %v; its PCRs are replayed without it", path, err)
		return nil, nil
	}
	nv := 0
	for _, e := range evs {
		if e.PCR < 0 {
			nv++
		}
	}
	return evs, &userspaceJSON{Path: path, SHA256: sha256Hex(raw), Events: eventlog.CountPerPCR(evs), NvPCREvents: nv}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func sortedIntKeys(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
