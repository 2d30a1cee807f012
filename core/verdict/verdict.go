// Package verdict measures the attestor's verdicts into the TPM: each
// attestation whose verdict differs from the last one measured is extended
// into one PCR and appended to a verdict log in the TCG canonical event log
// JSON form, so that any verifier of TPM quotes pins or replays it. See
// docs/tpm.md, "Verdict measurement".
package verdict

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// Version is verdict_version.
const Version = 1

// Verdict is what is extended: the state, the finding codes that led to it
// and the digest of the stable measurements. Nothing in it changes from
// one attestation to the next unless the appliance or its judgement does:
// no time, nonce, sequence, score or message.
type Verdict struct {
	VerdictVersion int         `json:"verdict_version"`
	State          state.State `json:"state"`
	// FindingCodes are the distinct codes of the bundle's failures
	// (findings above info), sorted. Always a list.
	FindingCodes []string `json:"finding_codes"`
	// MeasurementsSHA256 is SHA-256(JCS(Measurements)), lowercase hex.
	MeasurementsSHA256 string `json:"measurements_sha256"`
}

// Measurements are the bundle's stable measurements. A value no plugin
// measured is null, as in the bundle. The fields are in the order of their
// JSON names, RFC 8785's order, so that encoding/json writes them in
// canonical form, which digestJSON recognises without transforming
// (ServiceDigests may hold thousands of entries).
type Measurements struct {
	AttestationPolicySHA256 *string `json:"attestation_policy_sha256"`
	AttestorVersion         string  `json:"attestor_version"`
	Boot                    Boot    `json:"boot"`
	DeploymentDigest        *string `json:"deployment_digest"`
	// Plugins maps each plugin run to the SHA-256 of its executable (null
	// when none ran): the plugin pins.
	Plugins              map[string]*string `json:"plugins"`
	PolicyDigest         *string            `json:"policy_digest"`
	RegistryManifestHash *string            `json:"registry_manifest_hash"`
	ServiceDigests       map[string]string  `json:"service_digests"`
}

// Boot is the boot reference result: Secure Boot's state and whether the
// TPM plugin verified its quote against the reference PCRs. The PCR
// values themselves are left out: the verdict PCR is one of them.
type Boot struct {
	SecureBoot       *bool `json:"secure_boot"`
	SetupMode        *bool `json:"setup_mode"`
	TPMAvailable     *bool `json:"tpm_available"`
	TPMQuoteVerified *bool `json:"tpm_quote_verified"`
}

// Of returns the verdict of the bundle raw and its measurements.
func Of(raw []byte) (Verdict, Measurements, error) {
	v, m, _, err := of(raw)
	return v, m, err
}

// of is Of, with the bundle as it decoded it.
func of(raw []byte) (Verdict, Measurements, *bundle.Bundle, error) {
	var b bundle.Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return Verdict{}, Measurements{}, nil, fmt.Errorf("verdict of a bundle: %w", err)
	}
	v, m, err := fromBundle(&b)
	return v, m, &b, err
}

// fromBundle returns the verdict of b and its measurements.
func fromBundle(b *bundle.Bundle) (Verdict, Measurements, error) {
	if !b.State.Valid() || b.BundleVersion != bundle.Version {
		return Verdict{}, Measurements{}, fmt.Errorf("verdict of a bundle: not a version %d bundle with a state (bundle_version %d, state %q)", bundle.Version, b.BundleVersion, clip(string(b.State)))
	}
	m := Measurements{
		AttestorVersion:         b.AttestorVersion,
		DeploymentDigest:        b.DeploymentDigest,
		ServiceDigests:          b.ServiceDigests,
		PolicyDigest:            b.PolicyDigest,
		AttestationPolicySHA256: b.AttestationPolicySHA256,
		RegistryManifestHash:    b.RegistryManifestHash,
		Plugins:                 make(map[string]*string, len(b.Checks)),
		Boot: Boot{SecureBoot: b.BootMeasurements.SecureBoot, SetupMode: b.BootMeasurements.SetupMode,
			TPMAvailable: b.TPMAvailable, TPMQuoteVerified: b.TPMQuoteVerified},
	}
	if m.ServiceDigests == nil {
		m.ServiceDigests = map[string]string{}
	}
	for name, c := range b.Checks {
		m.Plugins[name] = c.SHA256
	}
	codes := []string{}
	for _, f := range b.Failures {
		if !slices.Contains(codes, f.Code) {
			codes = append(codes, f.Code)
		}
	}
	slices.Sort(codes)
	md, err := digestJSON(m)
	if err != nil {
		return Verdict{}, Measurements{}, err
	}
	v := Verdict{VerdictVersion: Version, State: b.State, FindingCodes: codes, MeasurementsSHA256: hex.EncodeToString(md)}
	return v, m, nil
}

// Digest returns SHA-256(JCS(v)): the value extended into the PCR.
func (v Verdict) Digest() ([]byte, error) {
	if v.FindingCodes == nil {
		v.FindingCodes = []string{}
	}
	return digestJSON(v)
}

// digestJSON returns SHA-256 of the JCS form of v's JSON.
func digestJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode verdict: %w", err)
	}
	c, err := bundle.Canonical(raw)
	if err != nil {
		return nil, fmt.Errorf("verdict: %w", err)
	}
	sum := sha256.Sum256(c)
	return sum[:], nil
}
