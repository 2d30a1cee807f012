package engine

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// target returns where field lives in b, nil for a field the bundle
// does not have (TestRegistryFieldsHaveTargets keeps the registry's in).
func target(b *bundle.Bundle, field string) any {
	switch field {
	case "boot_measurements.pcrs":
		return &b.BootMeasurements.PCRs
	case "boot_measurements.event_log":
		return &b.BootMeasurements.EventLog
	case "boot_measurements.secure_boot":
		return &b.BootMeasurements.SecureBoot
	case "boot_measurements.setup_mode":
		return &b.BootMeasurements.SetupMode
	case "tpm_available":
		return &b.TPMAvailable
	case "tpm_quote_verified":
		return &b.TPMQuoteVerified
	case "deployment_digest":
		return &b.DeploymentDigest
	case "service_digests":
		return &b.ServiceDigests
	case "policy_digest":
		return &b.PolicyDigest
	case "registry_manifest_hash":
		return &b.RegistryManifestHash
	case "kernel_cmdline":
		return &b.KernelCmdline
	case "kernel_lockdown":
		return &b.KernelLockdown
	}
	return nil
}

// attributed is a finding with the plugin it is about ("core" for the
// engine's own).
type attributed struct {
	plugin string
	sdk.Finding
}

// merge fills b from the plugins' results and returns every finding, with
// the policy's severity overrides applied. It also fills b.Checks.
func merge(b *bundle.Bundle, results []pluginhost.Result, overrides map[string]sdk.Severity) []attributed {
	var all []attributed
	// Which built-in owns which bundle field (the registry): only the
	// owner's measurement of a field reaches the bundle's top level; any
	// plugin's measurements are kept under checks.<name>.measurements.
	owners := builtin.FieldOwners()
	b.Checks = make(map[string]bundle.Check, len(results))
	for _, r := range results {
		var findings []sdk.Finding
		for _, f := range r.Findings {
			findings = append(findings, override(f, overrides))
		}
		// What cannot be signed is not kept: a value that has no RFC 8785
		// form (invalid UTF-8, a lone surrogate, a number out of range, a
		// duplicate member) would otherwise make the whole bundle unsignable.
		// Canonicalised once here, each value in one pass when the host
		// validated it into its canonical form already; the bundle's seal
		// then takes the object as it is.
		measurements := r.Measurements
		var raw json.RawMessage
		if measurements != nil {
			var err error
			raw, err = bundle.CanonicalObject(measurements)
			if err != nil {
				findings = append(findings, override(sdk.Finding{
					Code:     "core.plugin_protocol",
					Severity: sdk.SeverityHigh,
					Subject:  r.Name,
					Message:  fmt.Sprintf("plugin %s answered measurements that cannot be signed (no RFC 8785 form); they were discarded: %v", r.Name, err),
				}, overrides))
				measurements, raw = nil, nil
			}
		}
		for _, field := range slices.Sorted(maps.Keys(measurements)) {
			owner, ok := owners[field]
			if !ok || owner != r.Name || target(b, field) == nil {
				continue
			}
			if err := decodeInto(measurements[field], target(b, field)); err != nil {
				findings = append(findings, override(sdk.Finding{
					Code:     "core.plugin_protocol",
					Severity: sdk.SeverityHigh,
					Subject:  r.Name,
					Message:  fmt.Sprintf("plugin %s measured %s with the wrong JSON type: %v", r.Name, field, err),
				}, overrides))
			}
		}
		c := bundle.Check{Name: r.Name, DurationMS: r.Duration.Milliseconds()}
		if r.Version != "" {
			c.Version = bundle.Ptr(r.Version)
		}
		if r.SHA256 != "" {
			c.SHA256 = bundle.Ptr(r.SHA256)
		}
		c.Measurements = raw
		for _, f := range findings {
			c.Findings = append(c.Findings, bundle.FromSDK(f))
			all = append(all, attributed{plugin: r.Name, Finding: f})
		}
		b.Checks[r.Name] = c
	}
	return all
}

// decodeInto decodes raw into the value dst points to, leaving it untouched
// when raw does not decode (json.Unmarshal may fill part of a value before
// it fails).
func decodeInto(raw json.RawMessage, dst any) error {
	fresh := reflect.New(reflect.TypeOf(dst).Elem())
	if err := json.Unmarshal(raw, fresh.Interface()); err != nil {
		return err
	}
	reflect.ValueOf(dst).Elem().Set(fresh.Elem())
	return nil
}

func override(f sdk.Finding, overrides map[string]sdk.Severity) sdk.Finding {
	if s, ok := overrides[f.Code]; ok {
		f.Severity = s
	}
	return f
}

// failures lists every finding above info, in merge order.
func failures(all []attributed) []bundle.Failure {
	out := []bundle.Failure{}
	for _, f := range all {
		if f.Severity > sdk.SeverityInfo {
			out = append(out, bundle.Failure{Finding: bundle.FromSDK(f.Finding), Plugin: f.plugin})
		}
	}
	return out
}

func findingsOf(all []attributed) []sdk.Finding {
	out := make([]sdk.Finding, len(all))
	for i, f := range all {
		out[i] = f.Finding
	}
	return out
}
