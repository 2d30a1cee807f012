package policy

import (
	"maps"
	"slices"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// ProtectedCodes are the core finding codes that severity_overrides may not
// lower, with their floor: lowering them would silently cancel a pin
// (core.plugin_untrusted) or the bundle's signature (core.hmac_key).
var ProtectedCodes = map[string]sdk.Severity{
	"core.plugin_untrusted": sdk.SeverityCritical,
	"core.hmac_key":         sdk.SeverityHigh,
}

// CheckOverrides refuses every severity override that lowers a code of
// floors below its floor, naming the key. Validate checks ProtectedCodes;
// the daemon also checks the codes its built-in plugins declare critical.
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
