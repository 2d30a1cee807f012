// Package bundle defines the attestation bundle (the signed JSON document the
// daemon serves), its RFC 8785 (JCS) canonical form and its HMAC-SHA256
// signature.
//
// The signature is computed over the canonical JSON of the bundle with the
// top-level "bundle_hmac" member removed, so anyone can verify a bundle as
// received, whatever its member order or whitespace, with a JSON library,
// a canonicalizer and HMAC-SHA256. See docs/bundle.md.
package bundle

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Version is the bundle schema version written in bundle_version. It grows
// only when a field changes meaning or is removed; new fields may appear
// within a version.
const Version = 1

// TimeLayout is the layout of timestamp: RFC 3339 in UTC with exactly three
// fractional digits (milliseconds), e.g. "2026-03-13T12:00:00.250Z".
const TimeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime formats t as a bundle timestamp (UTC, millisecond precision).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Bundle is one attestation. Every member is always present in its JSON; a
// value that no plugin measured is null, never a digest of nothing. Numbers
// that the core fills are integers.
// AuditHead is the audit log's head: the seq of a record and the SHA-256
// of its line (the prev the next record carries; 64 zeros and seq 0 for an
// empty log).
type AuditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

type Bundle struct {
	// BundleVersion is Version.
	BundleVersion int `json:"bundle_version"`
	// AttestorVersion is the daemon's version.
	AttestorVersion string `json:"attestor_version"`
	// Sequence counts attestations since the daemon started, from 1.
	Sequence uint64 `json:"sequence"`
	// Nonce is the fresh random nonce of this attestation (lowercase hex),
	// sent to every plugin (the TPM quote covers it).
	Nonce string `json:"nonce"`
	// Timestamp is when the attestation ended (see TimeLayout).
	Timestamp string `json:"timestamp"`
	// State is the daemon's state after this attestation.
	State state.State `json:"state"`
	// Score is the sum of the severity weights of the findings.
	Score int `json:"score"`
	// AttestationPolicySHA256 is the SHA-256 (hex) of the attestation policy
	// file that weighed this attestation; null when the built-in defaults
	// were used.
	AttestationPolicySHA256 *string `json:"attestation_policy_sha256"`

	BootMeasurements     BootMeasurements  `json:"boot_measurements"`
	DeploymentDigest     *string           `json:"deployment_digest"`
	ServiceDigests       map[string]string `json:"service_digests"`
	PolicyDigest         *string           `json:"policy_digest"`
	RegistryManifestHash *string           `json:"registry_manifest_hash"`
	KernelCmdline        *string           `json:"kernel_cmdline"`
	KernelLockdown       *string           `json:"kernel_lockdown"`
	TPMAvailable         *bool             `json:"tpm_available"`
	TPMQuoteVerified     *bool             `json:"tpm_quote_verified"`

	// Failures lists every finding above info, from every plugin and from
	// the core, in the order the engine merged them. Always a list.
	Failures []Failure `json:"failures"`
	// Checks maps each plugin that was run (or should have run) to what it
	// did. Always an object.
	Checks map[string]Check `json:"checks"`
	// AuditHead anchors the audit log in the signed bundle: its last
	// record before this attestation's own records. Null without an audit
	// log (runtime-attestor --once).
	AuditHead *AuditHead `json:"audit_head"`

	// BundleSignature is the asymmetric signature of the bundle (see
	// SignWith); null when no signing key is configured or usable.
	BundleSignature *Signature `json:"bundle_signature"`

	// BundleHMAC is the lowercase hex HMAC-SHA256 of the signing input (see
	// SigningInput); "" when the bundle is unsigned (no usable key).
	BundleHMAC string `json:"bundle_hmac"`
}

// BootMeasurements holds the boot chain's measurements.
type BootMeasurements struct {
	SecureBoot *bool `json:"secure_boot"`
	SetupMode  *bool `json:"setup_mode"`
	// PCRs maps a decimal PCR index ("0".."23") to its lowercase hex
	// SHA-256 bank value; null when the TPM was not read.
	PCRs map[string]string `json:"pcrs"`
	// EventLog summarises the boot's event logs as the tpm plugin replayed
	// them (digest of the raw log, events per PCR, replay result, the
	// Secure Boot state measured, the comparison with the boot
	// reference; docs/bundle.md); null when no log was read.
	EventLog json.RawMessage `json:"event_log"`
}

// Finding is one finding in a bundle. Unlike sdk.Finding every member is
// always present.
type Finding struct {
	Code     string       `json:"code"`
	Severity sdk.Severity `json:"severity"`
	Message  string       `json:"message"`
	Subject  string       `json:"subject"`
}

// FromSDK converts a plugin's finding.
func FromSDK(f sdk.Finding) Finding {
	return Finding{Code: f.Code, Severity: f.Severity, Message: f.Message, Subject: f.Subject}
}

// Failure is a finding in the flat failures list, with the plugin it came
// from: for core.plugin_* findings the plugin at fault, for other core.*
// findings "core".
type Failure struct {
	Finding
	Plugin string `json:"plugin"`
}

// Check is what one plugin did in this attestation.
type Check struct {
	// Name is the plugin's name (the key in checks).
	Name string `json:"name"`
	// Version is what the plugin described; null when it never answered.
	Version *string `json:"version"`
	// SHA256 is the lowercase hex SHA-256 of the executable that ran;
	// null when there was none.
	SHA256 *string `json:"sha256"`
	// DurationMS is how long the measurement took, in whole milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// Measurements is the plugin's measurements as one JSON object; null
	// when it returned none (fault, timeout).
	Measurements json.RawMessage `json:"measurements"`
	// Findings is every finding of this plugin, info included, and the
	// core.plugin_* findings about it. Always a list.
	Findings []Finding `json:"findings"`
}

// Ptr returns a pointer to v, for filling the nullable fields.
func Ptr[T any](v T) *T { return &v }

// MarshalJSON encodes the bundle with failures and checks as empty
// containers, never null.
func (b Bundle) MarshalJSON() ([]byte, error) {
	type plain Bundle
	c := plain(b)
	if c.Failures == nil {
		c.Failures = []Failure{}
	}
	if c.Checks == nil {
		c.Checks = map[string]Check{}
	}
	return json.Marshal(c)
}

// MarshalJSON encodes the check with findings as a list, never null, and
// refuses measurements that are not a JSON object or null.
func (c Check) MarshalJSON() ([]byte, error) {
	type plain Check
	p := plain(c)
	if p.Findings == nil {
		p.Findings = []Finding{}
	}
	if len(p.Measurements) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(p.Measurements, &obj); err != nil {
			return nil, fmt.Errorf("check %s: measurements are not a JSON object: %w", c.Name, err)
		}
	}
	return json.Marshal(p)
}

// Errors Verify returns (wrapped); test with errors.Is.
var (
	// ErrUnsigned: the bundle has no bundle_hmac, or an empty one.
	ErrUnsigned = errors.New("bundle is unsigned")
	// ErrMismatch: bundle_hmac is not the HMAC of this bundle under this key.
	ErrMismatch = errors.New("bundle_hmac does not match the bundle")
)

// Sign sets b.BundleHMAC to the lowercase hex HMAC-SHA256, keyed by key,
// of the signing input of b (its canonical JSON without bundle_hmac).
//
// An empty key is refused. Any other length is accepted here: requiring a
// long enough key (the daemon wants at least 32 bytes) is the caller's
// concern.
func (b *Bundle) Sign(key []byte) error {
	if len(key) == 0 {
		return errors.New("sign bundle: empty key")
	}
	members, err := b.members()
	if err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	in, err := signingInput(members)
	if err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write(in)
	b.BundleHMAC = hex.EncodeToString(m.Sum(nil))
	return nil
}

// HMAC returns the lowercase hex HMAC-SHA256, keyed by key, of
// SigningInput(raw).
func HMAC(raw, key []byte) (string, error) {
	in, err := SigningInput(raw)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write(in)
	return hex.EncodeToString(m.Sum(nil)), nil
}

// Verify checks the bundle_hmac of a bundle as received (raw JSON) against
// key: the HMAC is recomputed over SigningInput(raw) and compared in
// constant time. Errors say what is wrong: bad JSON, not an object, a
// missing or empty bundle_hmac (ErrUnsigned), one that is not 64 lowercase
// hex digits, or a mismatch (ErrMismatch).
func Verify(raw, key []byte) error {
	if len(key) == 0 {
		return errors.New("verify bundle: empty key")
	}
	members, err := topLevel(raw)
	if err != nil {
		return fmt.Errorf("verify bundle: %w", err)
	}
	sigRaw, ok := members["bundle_hmac"]
	if !ok {
		return fmt.Errorf("verify bundle: no bundle_hmac member: %w", ErrUnsigned)
	}
	var sig *string
	if err := json.Unmarshal(sigRaw, &sig); err != nil {
		return fmt.Errorf("verify bundle: bundle_hmac is not a string")
	}
	if sig == nil || *sig == "" {
		return fmt.Errorf("verify bundle: bundle_hmac is empty: %w", ErrUnsigned)
	}
	if !isLowerHex(*sig, sha256.Size*2) {
		return fmt.Errorf("verify bundle: bundle_hmac is not 64 lowercase hex digits")
	}
	want, _ := hex.DecodeString(*sig)
	in, err := signingInput(members)
	if err != nil {
		return fmt.Errorf("verify bundle: %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write(in)
	if !hmac.Equal(m.Sum(nil), want) {
		return fmt.Errorf("verify bundle: %w", ErrMismatch)
	}
	return nil
}

// Digest returns the lowercase hex SHA-256 of the canonical form of raw, or
// "" when raw is not valid JSON.
func Digest(raw []byte) string {
	c, err := Canonical(raw)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:])
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
