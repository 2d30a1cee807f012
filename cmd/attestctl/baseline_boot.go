package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/tpm/eventlog"
)

// bootLogMeasure is the part of the tpm plugin's
// boot_measurements.event_log a baseline reads (docs/tpm.md).
type bootLogMeasure struct {
	Path         string `json:"path"`
	SHA256       string `json:"sha256"`
	Replay       string `json:"replay"`
	ReplayedPCRs []int  `json:"replayed_pcrs"`
	Userspace    *struct {
		Path   string `json:"path"`
		SHA256 string `json:"sha256"`
	} `json:"userspace"`
}

// pinBootReference records the boot reference of this boot where a TPM
// answered and the tpm plugin replayed its firmware event log to the
// quoted PCRs: the events of every replayed PCR, from the very logs the
// plugin read (their SHA-256 must still be what it measured). Without a
// TPM, or without a log that replays, nothing is recorded and the raw PCR
// values stay the only boot pin (a warning says why).
func (p *pins) pinBootReference(b *bundle.Bundle) error {
	if !p.tpm {
		return nil
	}
	raw := b.BootMeasurements.EventLog
	if len(raw) == 0 || string(raw) == "null" {
		p.warnings = append(p.warnings, "the tpm plugin read no event log: boot_reference is not set, expected_pcrs pins the raw PCR values")
		return nil
	}
	var m bootLogMeasure
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("the tpm plugin's boot_measurements.event_log does not decode: %w", err)
	}
	if m.Replay != "verified" || len(m.ReplayedPCRs) == 0 {
		p.warnings = append(p.warnings, fmt.Sprintf("the event log %s did not replay to the TPM's PCRs (replay %q): boot_reference is not set, expected_pcrs pins the raw PCR values", clean(m.Path), clean(m.Replay)))
		return nil
	}
	if err := sameFile(m.Path, m.SHA256, "event log"); err != nil {
		return err
	}
	user := ""
	if m.Userspace != nil && m.Userspace.Path != "" {
		if err := sameFile(m.Userspace.Path, m.Userspace.SHA256, "userspace measurement log"); err != nil {
			return err
		}
		user = m.Userspace.Path
	}
	ref, _, err := recordReference(m.Path, user, m.ReplayedPCRs)
	if err != nil {
		return fmt.Errorf("record the boot reference: %w", err)
	}
	p.bootRef = ref
	return nil
}

// sameFile checks that path still holds the bytes the plugin measured.
func sameFile(path, sum, what string) error {
	raw, err := regfile.Read(path, eventlog.MaxLogSize)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	h := sha256.Sum256(raw)
	if got := hex.EncodeToString(h[:]); got != sum {
		return fmt.Errorf("the %s %s changed while it was measured (measured %s, now %s): run baseline again", what, path, clean(sum), got)
	}
	return nil
}

// bootReferencePath is where the boot reference goes: --boot-reference,
// else beside the policy written (boot-reference.yaml); "" when the policy
// goes to standard output and no file was named.
func bootReferencePath(flag, out string) (string, error) {
	switch {
	case flag != "":
		return filepath.Abs(flag)
	case out == "-":
		return "", nil
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(abs), "boot-reference.yaml"), nil
}

// unreferencedPCRs returns the pinned PCR values of the PCRs the boot
// reference does not cover (all of them without a reference).
func (p *pins) unreferencedPCRs() map[int]string {
	out := map[int]string{}
	var covered []int
	if p.bootRef != nil {
		covered = p.bootRef.PCRList()
	}
	for i, v := range p.pcrs {
		if !slices.Contains(covered, i) {
			out[i] = v
		}
	}
	return out
}
