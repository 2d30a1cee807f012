package policy

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// The keys of the daemon's signing identity and TPM evidence (see
// docs/policy.md, docs/tpm.md).
const (
	keySigningKeyPath    = "signing_key_path"
	keyEvidenceTPMDevice = "evidence_tpm_device"
	keyEvidenceTPMSocket = "evidence_tpm_socket"
	keyEvidencePCRs      = "evidence_pcrs"
	keyVerdictPCR        = "verdict_pcr"
	keyVerdictLogPath    = "verdict_log_path"
)

// DefaultVerdictPCR is the PCR the daemon extends each distinct verdict
// into (docs/tpm.md argues the choice), and DefaultVerdictLogPath the
// verdict log beside it.
const (
	DefaultVerdictPCR     = 13
	DefaultVerdictLogPath = "/run/secure-ai/verdict.log"
)

// DefaultEvidencePCRs is the PCR selection of GET /api/v1/evidence quotes:
// firmware, boot loader and Secure Boot (0-9), the unified kernel image
// and systemd-stub (11) and shim's MOK state (14).
var DefaultEvidencePCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14}

// DefaultSigningKeyPath is signing_key_path when the policy does not set
// it: in the unit's StateDirectory= secure-ai/identity (0700, the service's
// alone, kept across reboots), where the unit's runtime-attestor-keygen
// makes it at first start.
const DefaultSigningKeyPath = "/var/lib/secure-ai/identity/signing.key"

// DefaultEvidenceTPMDevice is the TPM the daemon quotes with.
const DefaultEvidenceTPMDevice = "/dev/tpmrm0"

// evidence parses one of evidenceKeys; it reports whether key was one.
func (ps *parser) evidence(key string, v *yaml.Node) bool {
	p := ps.p
	switch key {
	case keySigningKeyPath:
		ps.str(key, v, &p.SigningKeyPath)
	case keyEvidenceTPMDevice:
		ps.str(key, v, &p.EvidenceTPMDevice)
	case keyEvidenceTPMSocket:
		ps.str(key, v, &p.EvidenceTPMSocket)
	case keyEvidencePCRs:
		ps.evidencePCRs(key, v)
	case keyVerdictPCR:
		ps.integer(key, v, &p.VerdictPCR)
	case keyVerdictLogPath:
		ps.str(key, v, &p.VerdictLogPath)
	default:
		return false
	}
	return true
}

func (ps *parser) evidencePCRs(key string, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		ps.e.add(key, n.Line, "want a list of PCR indices 0..23, got %s", describe(n))
		return
	}
	out := []int{}
	for i, c := range n.Content {
		k := fmt.Sprintf("%s[%d]", key, i)
		ps.p.lines[k] = c.Line
		v := -1
		ps.integer(k, c, &v)
		out = append(out, v)
	}
	ps.p.EvidencePCRs = out
}

// validateEvidence checks the evidence keys.
func (p *Policy) validateEvidence(e *errs) {
	e.absolute(keySigningKeyPath, p.SigningKeyPath, true)
	e.absolute(keyEvidenceTPMDevice, p.EvidenceTPMDevice, true)
	e.absolute(keyEvidenceTPMSocket, p.EvidenceTPMSocket, true)
	e.absolute(keyVerdictLogPath, p.VerdictLogPath, true)
	if p.VerdictPCR < 0 || p.VerdictPCR > 15 {
		e.add(keyVerdictPCR, 0, "%d is not a PCR index 0..15: PCRs 16 to 23 can be reset (16 debug, 17-22 by a dynamic launch, 23 by any process), which would erase the verdict history; the default is %d", p.VerdictPCR, DefaultVerdictPCR)
	}
	if len(p.EvidencePCRs) == 0 {
		e.add(keyEvidencePCRs, 0, "empty list: a quote needs at least one PCR (the default is %v)", DefaultEvidencePCRs)
	}
	seen := map[int]int{}
	for i, pcr := range p.EvidencePCRs {
		k := fmt.Sprintf("%s[%d]", keyEvidencePCRs, i)
		if pcr < 0 || pcr > 23 {
			e.add(k, 0, "%d is not a PCR index 0..23", pcr)
			continue
		}
		if j, dup := seen[pcr]; dup {
			e.add(k, 0, "PCR %d is listed twice (also %s[%d])", pcr, keyEvidencePCRs, j)
		}
		seen[pcr] = i
	}
}

// checkSigningKey checks signing_key_path as CheckFiles does the API
// token: a key that is not there is an error naming the command that makes
// it (the daemon never runs silently unsigned; "" is the explicit way to run
// without bundle_signature), one that group or others can access is too.
func (p *Policy) checkSigningKey(e *errs) {
	if p.SigningKeyPath == "" {
		return
	}
	_, missing, err := readSecret(p.SigningKeyPath)
	switch {
	case missing:
		e.add(keySigningKeyPath, 0, "%s does not exist: create it with `attestctl keygen --out %s` as the daemon's user "+
			"(the unit's runtime-attestor-keygen does at start), then give verifiers %s.pub", p.SigningKeyPath, p.SigningKeyPath, p.SigningKeyPath)
	case err != nil:
		e.add(keySigningKeyPath, 0, "%v", err)
	}
}
