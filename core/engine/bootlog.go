package engine

import (
	"encoding/json"
	"fmt"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// codeLogDisagrees is the finding of a Secure Boot state that efivars and
// the measured boot disagree on. Only the engine sees both: the secureboot
// plugin reads efivars, the tpm plugin the event log it replayed against
// its verified quote.
const codeLogDisagrees = "secureboot.log_disagrees"

// secureBootFromLog makes boot_measurements.secure_boot what was measured
// into PCR 7 when the tpm plugin read it from a log that replayed against
// its verified quote (boot_measurements.event_log.secure_boot; the plugin
// sets it only then), and reports a disagreement with the efivars the
// secureboot plugin read: efivars can be faked after boot, a measured log
// cannot. The finding is high, and critical when the policy requires
// Secure Boot and the log says it was off.
func secureBootFromLog(b *bundle.Bundle, requireSecureBoot bool, overrides map[string]sdk.Severity) []attributed {
	var el struct {
		SecureBoot *struct {
			Enabled bool `json:"enabled"`
		} `json:"secure_boot"`
	}
	raw := b.BootMeasurements.EventLog
	if len(raw) == 0 || json.Unmarshal(raw, &el) != nil || el.SecureBoot == nil {
		return nil
	}
	measured := el.SecureBoot.Enabled
	efivars := b.BootMeasurements.SecureBoot
	b.BootMeasurements.SecureBoot = &measured
	if efivars == nil || *efivars == measured {
		return nil
	}
	sev := sdk.SeverityHigh
	note := ""
	if requireSecureBoot && !measured {
		sev, note = sdk.SeverityCritical, " (the policy requires Secure Boot)"
	}
	return []attributed{{plugin: "core", Finding: override(sdk.Finding{
		Code: codeLogDisagrees, Severity: sev, Subject: "secure_boot",
		Message: fmt.Sprintf("the SecureBoot EFI variable says %s, the boot measured into PCR 7 says %s%s: efivars were changed after boot, or the firmware lies; the bundle reports what was measured",
			onOff(*efivars), onOff(measured), note),
	}, overrides)}}
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}
