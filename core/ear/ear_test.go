package ear

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func signer(t *testing.T, kind string) *identity.Signer {
	t.Helper()
	s, err := identity.New(kind)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func finding(code string, sev sdk.Severity) bundle.Finding {
	return bundle.Finding{Code: code, Severity: sev}
}

func sampleBundle(t *testing.T, st string) []byte {
	t.Helper()
	b := bundle.Bundle{BundleVersion: 1, State: "degraded", AttestationPolicySHA256: bundle.Ptr("ab12"),
		Failures: []bundle.Failure{{Finding: finding("core.audit_write", sdk.SeverityMedium), Plugin: "core"}},
		Checks: map[string]bundle.Check{
			"tpm":        {Name: "tpm", Findings: []bundle.Finding{finding("tpm.pcr_mismatch", sdk.SeverityHigh)}},
			"binaries":   {Name: "binaries", Findings: []bundle.Finding{finding("binaries.ok", sdk.SeverityInfo)}},
			"kernel":     {Name: "kernel", Findings: []bundle.Finding{finding("kernel.tainted", sdk.SeverityCritical)}},
			"ostree":     {Name: "ostree"},
			"acme":       {Name: "acme", Findings: []bundle.Finding{finding("core.plugin_crashed", sdk.SeverityHigh)}},
			CoreSubmod:   {Name: CoreSubmod, Findings: []bundle.Finding{finding("x.y", sdk.SeverityInfo)}},
			"secureboot": {Name: "secureboot", Findings: []bundle.Finding{finding("secureboot.disabled", sdk.SeverityLow)}},
		}}
	b.State = stateOf(st)
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestVerifiedByGoJose: the JWT verifies with go-jose (an independent JOSE
// implementation) for both key types, and says what the table says.
func TestVerifiedByGoJose(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{identity.KeyEd25519, identity.KeyP256} {
		s := signer(t, kind)
		raw := sampleBundle(t, "degraded")
		c, err := Build(raw, Options{Version: "1.2.3", Now: time.Unix(1700000000, 0), Nonce: "00ff"})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := Sign(c, s)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
		if err != nil {
			t.Fatalf("%s: go-jose cannot parse the EAR: %v", kind, err)
		}
		if got := jws.Signatures[0].Header.KeyID; got != s.KeyID() {
			t.Errorf("%s: kid %q, want %q", kind, got, s.KeyID())
		}
		payload, err := jws.Verify(s.Public())
		if err != nil {
			t.Fatalf("%s: go-jose refuses the signature: %v", kind, err)
		}
		if _, err := jws.Verify(signer(t, kind).Public()); err == nil {
			t.Errorf("%s: go-jose accepted the EAR under another key", kind)
		}
		var got map[string]any
		if err := json.Unmarshal(payload, &got); err != nil {
			t.Fatal(err)
		}
		if got["eat_profile"] != Profile || got["iat"] != float64(1700000000) || got["eat_nonce"] != "00ff" {
			t.Errorf("%s: header claims %v", kind, got)
		}
		digest, _ := bundle.ContentDigest(raw)
		if got["ear.raw-evidence"] != b64(digest) {
			t.Errorf("%s: ear.raw-evidence %v, want the bundle's content digest", kind, got["ear.raw-evidence"])
		}
		want := map[string]string{
			CoreSubmod:   `{"ear.appraisal-policy-id":"sha256:ab12","ear.status":"warning","ear.trustworthiness-vector":{"sourced-data":32}}`,
			"tpm":        `{"ear.status":"warning","ear.trustworthiness-vector":{"hardware":32,"instance-identity":2}}`,
			"binaries":   `{"ear.status":"affirming","ear.trustworthiness-vector":{"executables":2}}`,
			"kernel":     `{"ear.status":"contraindicated","ear.trustworthiness-vector":{"configuration":2,"executables":96}}`,
			"ostree":     `{"ear.status":"affirming","ear.trustworthiness-vector":{"file-system":2}}`,
			"acme":       `{"ear.status":"warning","ear.trustworthiness-vector":{"sourced-data":32}}`,
			"secureboot": `{"ear.status":"warning","ear.trustworthiness-vector":{"configuration":32}}`,
		}
		subs := got["submods"].(map[string]any)
		if len(subs) != len(want) {
			t.Errorf("%s: submods %v", kind, subs)
		}
		for name, w := range want {
			g, _ := json.Marshal(subs[name])
			if string(g) != w {
				t.Errorf("%s: submod %s:\n got %s\nwant %s", kind, name, g, w)
			}
		}
	}
}

func TestStatusFromState(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		state string
		want  Status
	}{{"attested", Affirming}, {"degraded", Warning}, {"failed", Contraindicated}, {"pending", None}} {
		c, err := Build(sampleBundle(t, tc.state), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Submods[CoreSubmod].Status; got != tc.want {
			t.Errorf("Test %d: state %s: status %s, want %s", i, tc.state, got, tc.want)
		}
	}
	c, err := Build(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Submods) != 1 || c.Submods[CoreSubmod].Status != None || c.RawEvidence != "" {
		t.Errorf("pending: %+v", c)
	}
}

func stateOf(s string) state.State { return state.State(s) }
