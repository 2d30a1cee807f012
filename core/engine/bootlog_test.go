package engine

import (
	"encoding/json"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// TestSecureBootFromTheLog: the measured Secure Boot state wins over
// efivars, a disagreement is a finding, and only the tpm plugin can claim
// what was measured.
func TestSecureBootFromTheLog(t *testing.T) {
	t.Parallel()
	on, off := `{"replay":"verified","secure_boot":{"enabled":true}}`, `{"replay":"verified","secure_boot":{"enabled":false}}`
	for i, tc := range []struct {
		name      string
		efivars   string // the secureboot plugin's boot_measurements.secure_boot, "" = not measured
		logFrom   string // plugin answering boot_measurements.event_log
		log       string
		require   bool
		want      *bool
		sev       sdk.Severity // of secureboot.log_disagrees; 0 = none
		overrides map[string]sdk.Severity
	}{
		{"agree on", "true", "tpm", on, false, ptr(true), 0, nil},
		{"agree off", "false", "tpm", off, false, ptr(false), 0, nil},
		{"efivars faked on", "true", "tpm", off, false, ptr(false), sdk.SeverityHigh, nil},
		{"efivars faked on, Secure Boot required", "true", "tpm", off, true, ptr(false), sdk.SeverityCritical, nil},
		{"efivars say off, the log on", "false", "tpm", on, true, ptr(true), sdk.SeverityHigh, nil},
		{"no efivars: the log alone", "", "tpm", on, false, ptr(true), 0, nil},
		{"no Secure Boot state in the log: efivars stand", "true", "tpm", `{"replay":"failed","secure_boot":null}`, false, ptr(true), 0, nil},
		{"a third-party plugin cannot claim the measured state", "true", "vendor", off, true, ptr(true), 0, nil},
		{"nor can the secureboot plugin", "true", "secureboot", off, true, ptr(true), 0, nil},
		{"severity override applies", "true", "tpm", off, false, ptr(false), sdk.SeverityMedium, map[string]sdk.Severity{codeLogDisagrees: sdk.SeverityMedium}},
	} {
		sbMeas := map[string]json.RawMessage{}
		if tc.efivars != "" {
			sbMeas["boot_measurements.secure_boot"] = json.RawMessage(tc.efivars)
		}
		logger := map[string]json.RawMessage{"boot_measurements.event_log": json.RawMessage(tc.log)}
		results := []pluginhost.Result{{Name: "secureboot", Measurements: sbMeas}}
		if tc.logFrom == "secureboot" {
			results[0].Measurements["boot_measurements.event_log"] = json.RawMessage(tc.log)
		} else {
			results = append(results, pluginhost.Result{Name: tc.logFrom, Measurements: logger})
		}
		b := &bundle.Bundle{}
		all := merge(b, results, tc.overrides)
		all = append(all, secureBootFromLog(b, tc.require, tc.overrides)...)
		var got []attributed
		for _, a := range all {
			if a.Code == codeLogDisagrees {
				got = append(got, a)
			}
		}
		switch {
		case tc.sev == 0 && len(got) != 0:
			t.Errorf("Test %d (%s): findings %+v, want none", i, tc.name, got)
		case tc.sev != 0 && (len(got) != 1 || got[0].Severity != tc.sev || got[0].plugin != "core"):
			t.Errorf("Test %d (%s): findings %+v, want one %s from core", i, tc.name, got, tc.sev)
		}
		if (b.BootMeasurements.SecureBoot == nil) != (tc.want == nil) || tc.want != nil && *b.BootMeasurements.SecureBoot != *tc.want {
			t.Errorf("Test %d (%s): secure_boot %v, want %v", i, tc.name, b.BootMeasurements.SecureBoot, *tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
