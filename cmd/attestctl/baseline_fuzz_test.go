package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/policy"
)

// FuzzBaselineFromBundle: whatever the plugins put in the bundle (they are
// untrusted), a baseline either refuses with an error or writes a policy
// that loads, and never pins a value that is not a SHA-256.
func FuzzBaselineFromBundle(f *testing.F) {
	f.Add(`{"tpm_available":true,"boot_measurements":{"pcrs":{"0":"` + strings.Repeat("a", 64) + `"},"secure_boot":true},` +
		`"service_digests":{"agent":"` + strings.Repeat("b", 64) + `"},` +
		`"checks":{"ostree":{"measurements":{"deployment_reference":"` + strings.Repeat("c", 64) + `","next_deployment":{"kind":"staged","deployment_reference":"` + strings.Repeat("d", 64) + `"}}}}}`)
	f.Add(`{"boot_measurements":{"pcrs":{"0":"x\ny: 1"}},"tpm_available":true}`)
	f.Add(`{"service_digests":{"agent":"` + strings.Repeat("B", 64) + `"}}`)
	f.Add(`{"checks":{"ostree":{"measurements":{"deployment_reference":"\"]\n- evil"}}}}`)
	f.Add(`{"checks":{"ostree":{"measurements":[1,2]}}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var b bundle.Bundle
		if json.Unmarshal([]byte(raw), &b) != nil {
			return
		}
		base := policy.Default()
		base.PluginDir = t.TempDir()
		base.ServiceBinaries = map[string]policy.ServiceBinary{"agent": {Path: "/usr/libexec/secure-ai/agent"}}
		doc := map[string]any{"plugin_dir": base.PluginDir, "service_binaries": map[string]any{"agent": "/usr/libexec/secure-ai/agent"}}
		p, err := derivePins(base, &b)
		if err != nil {
			return
		}
		out, err := renderBaseline(doc, p, "fuzz", time.Unix(0, 0))
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		pol, err := policy.Parse(out)
		if err != nil {
			t.Fatalf("the baseline does not load: %v\n%s", err, out)
		}
		for i, v := range pol.ExpectedPCRs {
			if !isSHA256(v) {
				t.Fatalf("PCR %d pinned to %q", i, v)
			}
		}
		for _, d := range p.deployments {
			if !isSHA256(d) {
				t.Fatalf("deployment pinned to %q", d)
			}
		}
	})
}
