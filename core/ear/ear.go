// Package ear makes EAT Attestation Results (draft-ietf-rats-ear, the
// Veraison EAR profile) from a bundle: a JWT, signed with the daemon's
// signing key, that says in the RATS vocabulary what the bundle says. A
// relying party that speaks EAR needs no knowledge of this project's bundle
// format. See docs/api.md for the claims and the trustworthiness table.
package ear

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Profile is the EAR profile, the eat_profile claim.
const Profile = "tag:github.com,2023:veraison/ear"

// MediaType is the Content-Type of GET /api/v1/ear.
const MediaType = `application/eat+jwt; eat_profile="` + Profile + `"`

// CoreSubmod is the submodule that carries the daemon's overall state.
const CoreSubmod = "runtime-attestor"

// Status is an EAR status tier (ear.status).
type Status string

// The four tiers.
const (
	None            Status = "none"
	Affirming       Status = "affirming"
	Warning         Status = "warning"
	Contraindicated Status = "contraindicated"
)

// Trustworthiness claim values (AR4SI): one per tier.
const (
	ValueAffirming       = 2
	ValueWarning         = 32
	ValueContraindicated = 96
)

// StateStatus maps a daemon state to a status: attested affirming,
// degraded warning, failed contraindicated, pending none.
func StateStatus(s state.State) Status {
	switch s {
	case state.Attested:
		return Affirming
	case state.Degraded:
		return Warning
	case state.Failed:
		return Contraindicated
	}
	return None
}

// VerifierID is ear.verifier-id.
type VerifierID struct {
	Developer string `json:"developer"`
	Build     string `json:"build"`
}

// Appraisal is one submodule's result.
type Appraisal struct {
	Status   Status         `json:"ear.status"`
	Vector   map[string]int `json:"ear.trustworthiness-vector,omitempty"`
	PolicyID string         `json:"ear.appraisal-policy-id,omitempty"`
}

// Claims are the JWT's claims.
type Claims struct {
	Profile     string               `json:"eat_profile"`
	IssuedAt    int64                `json:"iat"`
	VerifierID  VerifierID           `json:"ear.verifier-id"`
	RawEvidence string               `json:"ear.raw-evidence,omitempty"`
	Nonce       string               `json:"eat_nonce,omitempty"`
	Submods     map[string]Appraisal `json:"submods"`
}

// Options of one result.
type Options struct {
	// Version is the daemon's version (ear.verifier-id.build).
	Version string
	// Now is the issue time.
	Now time.Time
	// Nonce, when set, is echoed as eat_nonce (a relying party's
	// freshness challenge).
	Nonce string
}

// Build returns the claims for raw, the bundle as signed, or for no bundle
// (nil raw: pending).
func Build(raw []byte, opts Options) (*Claims, error) {
	c := &Claims{
		Profile:    Profile,
		IssuedAt:   opts.Now.Unix(),
		VerifierID: VerifierID{Developer: "runtime-attestor", Build: "runtime-attestor " + opts.Version},
		Nonce:      opts.Nonce,
		Submods:    map[string]Appraisal{},
	}
	if len(raw) == 0 || string(raw) == "null" {
		c.Submods[CoreSubmod] = Appraisal{Status: None}
		return c, nil
	}
	var b bundle.Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("ear: read bundle: %w", err)
	}
	digest, err := bundle.ContentDigest(raw)
	if err != nil {
		return nil, fmt.Errorf("ear: %w", err)
	}
	c.RawEvidence = base64.RawURLEncoding.EncodeToString(digest)
	core := Appraisal{Status: StateStatus(b.State), Vector: map[string]int{ClaimSourcedData: ValueAffirming}}
	for _, f := range b.Failures {
		if f.Plugin == "core" {
			worsen(core.Vector, ClaimSourcedData, f.Severity)
		}
	}
	if b.AttestationPolicySHA256 != nil {
		core.PolicyID = "sha256:" + *b.AttestationPolicySHA256
	}
	c.Submods[CoreSubmod] = core
	for name, chk := range b.Checks {
		if name == CoreSubmod {
			continue // a plugin cannot be named so (names are [a-z0-9_-]); never let one shadow the core
		}
		c.Submods[name] = appraise(name, chk.Findings)
	}
	return c, nil
}

// appraise derives a plugin's trustworthiness vector from its findings
// (see claimFor) and its status from the worst claim.
func appraise(plugin string, findings []bundle.Finding) Appraisal {
	v := map[string]int{}
	for _, c := range primaryClaims(plugin) {
		v[c] = ValueAffirming
	}
	for _, f := range findings {
		worsen(v, claimFor(plugin, f.Code), f.Severity)
	}
	worst := 0
	for _, x := range v {
		worst = max(worst, x)
	}
	return Appraisal{Status: tier(worst), Vector: v}
}

func tier(v int) Status {
	switch {
	case v >= ValueContraindicated:
		return Contraindicated
	case v >= ValueWarning:
		return Warning
	case v >= ValueAffirming:
		return Affirming
	}
	return None
}

// valueOf maps a finding's severity to a claim value: info affirms, low to
// high warn, critical contraindicates.
func valueOf(s sdk.Severity) int {
	switch s {
	case sdk.SeverityCritical:
		return ValueContraindicated
	case sdk.SeverityLow, sdk.SeverityMedium, sdk.SeverityHigh:
		return ValueWarning
	}
	return ValueAffirming
}

func worsen(v map[string]int, claim string, s sdk.Severity) {
	v[claim] = max(v[claim], valueOf(s))
}

// Sign returns c as a compact JWS (a JWT) signed by s: EdDSA for an
// Ed25519 key, ES256 for a P-256 key; the header's kid is the key id.
func Sign(c *Claims, s *identity.Signer) (string, error) {
	alg := "EdDSA"
	if s.Alg() == identity.AlgES256 {
		alg = "ES256"
	}
	hdr, err := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "kid": s.KeyID()})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("ear: encode claims: %w", err)
	}
	in := b64(hdr) + "." + b64(payload)
	sig, err := s.Sign([]byte(in))
	if err != nil {
		return "", fmt.Errorf("ear: %w", err)
	}
	return in + "." + b64(sig), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// SubmodNames returns the submodule names of c, sorted (for tests and
// display).
func (c *Claims) SubmodNames() []string {
	out := make([]string, 0, len(c.Submods))
	for k := range c.Submods {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// isCodeOf reports whether code is one of plugin's (plugin.<something>).
func isCodeOf(plugin, code string) bool { return strings.HasPrefix(code, plugin+".") }
