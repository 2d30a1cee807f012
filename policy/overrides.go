package policy

import (
	"maps"
	"slices"

	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// ProtectedCodes are the core finding codes that severity_overrides may not
// lower, with their floor: lowering them would silently cancel a pin
// (core.plugin_untrusted) or the bundle's signature (core.hmac_key).
var ProtectedCodes = map[string]sdk.Severity{
	"core.plugin_untrusted": sdk.SeverityCritical,
	"core.hmac_key":         sdk.SeverityHigh,
}

// Floors are the codes severity_overrides may not lower, with their floor:
// ProtectedCodes and every code a built-in declares critical (the
// registry's builtin.Plugin.Critical). Validate checks them.
func Floors() map[string]sdk.Severity {
	out := maps.Clone(ProtectedCodes)
	for _, code := range builtin.CriticalCodes() {
		out[code] = sdk.SeverityCritical
	}
	return out
}

// builtinKeys are the top-level policy keys injected into the
// configuration of the plugin called name (none for a third-party one).
func builtinKeys(name string) []string {
	b, _ := builtin.Lookup(name)
	return b.PolicyKeys
}

// CheckOverrides refuses every severity override that lowers a code of
// floors below its floor, naming the key.
func (p *Policy) CheckOverrides(floors map[string]sdk.Severity) error {
	e := &errs{lines: p.lines}
	for _, code := range slices.Sorted(maps.Keys(p.SeverityOverrides)) {
		floor, ok := floors[code]
		if s := p.SeverityOverrides[code]; ok && s.Valid() && s < floor {
			e.add("severity_overrides."+code, 0, "%s may not be lowered below %s (it guards the attestation itself); remove the override", code, floor)
		}
	}
	return e.err()
}
