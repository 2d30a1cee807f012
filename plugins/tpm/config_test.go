package tpm

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

const pin = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestParseConfig(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		json    string
		wantKey string // "" when the configuration is valid
		check   func(settings) bool
	}{
		{`{}`, "", func(s settings) bool {
			return s.device == DefaultDevice && s.socket == "" && reflect.DeepEqual(s.pcrs, []int{0, 1, 2, 3, 4, 5, 6, 7}) &&
				s.akHandle == 0 && s.akAlg == akECC && s.retry.Retries == 5 && s.retry.Delay == 100*time.Millisecond && !s.requireTPM &&
				s.stateFile == "/var/lib/secure-ai/runtime-attestor/tpm-clock.json"
		}},
		{`{"state_file": ""}`, "", func(s settings) bool { return s.stateFile == "" }},
		{`{"state_file": null}`, "", func(s settings) bool { return s.stateFile == DefaultStateFile }},
		{`{"state_file": "/run/attestor/clock.json"}`, "", func(s settings) bool { return s.stateFile == "/run/attestor/clock.json" }},
		{`null`, "", func(s settings) bool { return s.device == DefaultDevice }},
		{`{"require_tpm": true, "expected_pcrs": {"7": "` + strings.ToUpper(pin) + `", "14": "` + pin + `"}}`, "", func(s settings) bool {
			return s.requireTPM && reflect.DeepEqual(s.pcrs, []int{0, 1, 2, 3, 4, 5, 6, 7, 14}) && len(s.expected) == 2 && s.expected[7][0] == 0xe3
		}},
		{`{"pcrs": [10, 4], "expected_pcrs": {"7": "` + pin + `"}}`, "", func(s settings) bool { return reflect.DeepEqual(s.pcrs, []int{4, 7, 10}) }},
		{`{"device": "/dev/tpm0"}`, "", func(s settings) bool { return s.device == "/dev/tpm0" }},
		{`{"swtpm_socket": "/run/swtpm/sock"}`, "", func(s settings) bool {
			return s.socket == "/run/swtpm/sock" && s.device == "" && s.target() == "/run/swtpm/sock"
		}},
		{`{"ak": {"handle": "0x81010002"}}`, "", func(s settings) bool { return s.akHandle == 0x81010002 }},
		{`{"ak": {"algorithm": "rsa"}, "retries": 0, "retry_delay": "0s"}`, "", func(s settings) bool {
			return s.akAlg == akRSA && s.retry.Retries == 0 && s.retry.Delay == 0
		}},

		{`{"colour": "blue"}`, "colour", nil},
		{`{"require_tpm": "yes"}`, "require_tpm", nil},
		{`{"expected_pcrs": {"24": "` + pin + `"}}`, "expected_pcrs.24", nil},
		{`{"expected_pcrs": {"07": "` + pin + `"}}`, "expected_pcrs.07", nil},
		{`{"expected_pcrs": {"pcr7": "` + pin + `"}}`, "expected_pcrs.pcr7", nil},
		{`{"expected_pcrs": {"7": "abcd"}}`, "expected_pcrs.7", nil},
		{`{"expected_pcrs": {"7": "` + strings.Repeat("zz", 32) + `"}}`, "expected_pcrs.7", nil},
		{`{"device": "dev/tpmrm0"}`, "device", nil},
		{`{"device": "/dev/../dev/tpmrm0"}`, "device", nil},
		{`{"swtpm_socket": "sock"}`, "swtpm_socket", nil},
		{`{"device": "/dev/tpm0", "swtpm_socket": "/run/s"}`, "swtpm_socket", nil},
		{`{"pcrs": []}`, "pcrs", nil},
		{`{"pcrs": [1, 24]}`, "pcrs.1", nil},
		{`{"pcrs": [-1]}`, "pcrs.0", nil},
		{`{"pcrs": [3, 3]}`, "pcrs.1", nil},
		{`{"pcrs": "0-7"}`, "pcrs", nil},
		{`{"ak": {"handle": "81010002"}}`, "ak.handle", nil},
		{`{"ak": {"handle": "0x80000001"}}`, "ak.handle", nil},
		{`{"ak": {"handle": "0xzz"}}`, "ak.handle", nil},
		{`{"ak": {"algorithm": "dsa"}}`, "ak.algorithm", nil},
		{`{"ak": {"handle": "0x81010002", "algorithm": "rsa"}}`, "ak.algorithm", nil},
		{`{"ak": {"size": 1}}`, "size", nil},
		{`{"retries": -1}`, "retries", nil},
		{`{"retries": 101}`, "retries", nil},
		{`{"retry_delay": "soon"}`, "retry_delay", nil},
		{`{"retry_delay": "-1s"}`, "retry_delay", nil},
		{`{"retry_delay": "1m"}`, "retry_delay", nil},
		{`{"state_file": "tpm-clock.json"}`, "state_file", nil},
		{`{"state_file": "/var/lib/x/../tpm-clock.json"}`, "state_file", nil},
		{`{"state_file": "/var/lib/x/"}`, "state_file", nil},
		{`{"state_file": "/"}`, "state_file", nil},
		{`{"state_file": "/var/lib/a\u0000b"}`, "state_file", nil},
		{`{"state_file": 7}`, "state_file", nil},
	} {
		s, err := parseConfig(sdk.NewConfig([]byte(tc.json)))
		if tc.wantKey == "" {
			if err != nil {
				t.Errorf("Test %d: %s: %v", i, tc.json, err)
			} else if !tc.check(s) {
				t.Errorf("Test %d: %s: settings %+v", i, tc.json, s)
			}
			continue
		}
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.wantKey {
			t.Errorf("Test %d: %s: error %v, want a ConfigError for key %q", i, tc.json, err, tc.wantKey)
		}
	}
}

// TestConfigureOverTheWire checks that a refused configuration reaches the
// daemon as a *sdk.ConfigError naming the key.
func TestConfigureOverTheWire(t *testing.T) {
	t.Parallel()
	h := sdktest.New(t, New())
	err := h.Configure(map[string]any{"pcrs": []int{99}})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "pcrs.0") {
		t.Fatalf("error %v, want a ConfigError naming pcrs.0", err)
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	d := New().Describe()
	if err := wire.ValidateDescription(d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Fills, []string{"tpm_available", "tpm_quote_verified", "boot_measurements.pcrs", "boot_measurements.event_log"}) {
		t.Errorf("fills %v", d.Fills)
	}
	want := map[string]sdk.Severity{
		"tpm.unavailable": sdk.SeverityInfo, "tpm.open_failed": sdk.SeverityHigh, "tpm.busy": sdk.SeverityHigh,
		"tpm.pcr_read_failed": sdk.SeverityHigh, "tpm.pcr_mismatch": sdk.SeverityHigh,
		"tpm.ak_failed": sdk.SeverityHigh, "tpm.ak_unsuitable": sdk.SeverityHigh, "tpm.quote_failed": sdk.SeverityHigh,
		"tpm.quote_malformed": sdk.SeverityCritical, "tpm.quote_signature_invalid": sdk.SeverityCritical,
		"tpm.quote_bad_magic": sdk.SeverityCritical, "tpm.quote_bad_type": sdk.SeverityCritical,
		"tpm.quote_nonce_mismatch": sdk.SeverityCritical, "tpm.quote_selection_mismatch": sdk.SeverityCritical,
		"tpm.quote_pcr_digest_mismatch": sdk.SeverityCritical, "tpm.clock_rollback": sdk.SeverityCritical,
		"tpm.clock_state_invalid": sdk.SeverityMedium, "tpm.clock_state_unavailable": sdk.SeverityInfo,
		"tpm.clock_state_write_failed": sdk.SeverityMedium,
		"tpm.eventlog_missing":         sdk.SeverityInfo, "tpm.eventlog_invalid": sdk.SeverityHigh,
		"tpm.eventlog_replay_failed": sdk.SeverityHigh, "tpm.eventlog_secureboot_unknown": sdk.SeverityLow,
		"tpm.userspace_log_invalid": sdk.SeverityHigh, "tpm.boot_reference_invalid": sdk.SeverityHigh,
		"tpm.boot_reference_unchecked": sdk.SeverityHigh, "tpm.boot_event_mismatch": sdk.SeverityHigh,
		"tpm.boot_event_mismatch_more": sdk.SeverityInfo,
	}
	got := map[string]sdk.Severity{}
	for _, f := range d.Findings {
		got[f.Code] = f.DefaultSeverity
		if f.Description == "" {
			t.Errorf("%s has no description", f.Code)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("finding codes %v, want %v", got, want)
	}
}
