package policy

import (
	"strings"
	"testing"
	"time"
)

// TestParseErrors: every kind of bad policy is refused with the full
// dotted key, the line and a message saying what is wrong.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("a", 64)
	for i, tc := range []struct {
		name, doc string
		key       string
		line      int
		msg       string
	}{
		{"unknown top key", "require_tpm: true\nrequire_tmp: true\n", "require_tmp", 2, "unknown key (did you mean require_tpm?)"},
		{"unknown far key", "frobnicate: 1\n", "frobnicate", 1, "known keys:"},
		{"unknown plugin key", "plugins:\n  kernel:\n    timout: 5s\n", "plugins.kernel.timout", 3, "did you mean timeout"},
		{"bad plugin timeout", "plugins:\n  kernel:\n    timeout: soon\n", "plugins.kernel.timeout", 3, "is not a duration"},
		{"bare number duration", "refresh_interval: 30\n", "refresh_interval", 1, `write it with a unit, e.g. "30s"`},
		{"bare number plugin timeout", "plugins:\n  tpm:\n    timeout: 5\n", "plugins.tpm.timeout", 3, "bare number"},
		{"negative duration", "plugin_timeout: -5s\n", "plugin_timeout", 1, "must be positive"},
		{"zero attestation timeout", "attestation_timeout: 0s\n", "attestation_timeout", 1, "must be positive"},
		{"refresh too short", "refresh_interval: 500ms\n", "refresh_interval", 1, "minimum is 1s"},
		{"plugin timeout over attestation", "plugin_timeout: 2m\n", "plugin_timeout", 0, "longer than attestation_timeout"},
		{"per-plugin timeout over attestation", "plugins:\n  kernel:\n    timeout: 61s\n", "plugins.kernel.timeout", 3, "longer than attestation_timeout"},
		{"yes is not a bool", "require_tpm: yes\n", "require_tpm", 1, "YAML 1.2"},
		{"string bool", "require_tpm: \"true\"\n", "require_tpm", 1, "want true or false"},
		{"list for bool", "run_unlisted_plugins: [true]\n", "run_unlisted_plugins", 1, "got a list"},
		{"relative hmac path", "hmac_key_path: run/key\n", "hmac_key_path", 1, "not an absolute path"},
		{"empty hmac path", "hmac_key_path: \"\"\n", "hmac_key_path", 1, "empty path"},
		{"null hmac path", "hmac_key_path:\n", "hmac_key_path", 1, "got no value (null)"},
		{"relative token path", "api_token_path: token\n", "api_token_path", 1, "not an absolute path"},
		{"relative audit path", "audit_log_path: audit.jsonl\n", "audit_log_path", 1, "not an absolute path"},
		{"relative plugin dir", "plugin_dir: ./plugins\n", "plugin_dir", 1, "not an absolute path"},
		{"unclean path", "plugin_dir: /usr/../etc\n", "plugin_dir", 1, "not a clean path"},
		{"relative policy file", "policy_files: [/a, b]\n", "policy_files[1]", 1, "not an absolute path"},
		{"duplicate policy file", "policy_files:\n  - /a\n  - /b\n  - /a\n", "policy_files[2]", 4, "listed twice"},
		{"policy files not a list", "policy_files: /a\n", "policy_files", 1, "want a list of paths"},
		{"relative service path", "service_binaries:\n  agent: bin/agent\n", "service_binaries.agent", 2, "not an absolute path"},
		{"relative service path in map", "service_binaries:\n  agent:\n    path: bin/agent\n", "service_binaries.agent.path", 3, "not an absolute path"},
		{"service without path", "service_binaries:\n  agent:\n    sha256: " + hex + "\n", "service_binaries.agent", 2, "no path"},
		{"service unknown key", "service_binaries:\n  agent:\n    path: /a\n    digest: x\n", "service_binaries.agent.digest", 4, "unknown key"},
		{"service bad sha", "service_binaries:\n  agent:\n    path: /a\n    sha256: abc\n", "service_binaries.agent.sha256", 4, "not a SHA-256"},
		{"service bad name", "service_binaries:\n  \"my agent\": /a\n", "service_binaries.my agent", 2, "service name"},
		{"service empty name", "service_binaries:\n  \"\": /a\n", "service_binaries.", 2, "service name"},
		{"service list", "service_binaries:\n  agent: [/a]\n", "service_binaries.agent", 2, "want a path or {path, sha256}"},
		{"duplicate service", "service_binaries:\n  agent: /a\n  agent: /b\n", "service_binaries.agent", 3, "duplicate key (first given on line 2)"},
		{"duplicate top key", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", "listen", 2, "duplicate key"},
		{"duplicate config key", "plugins:\n  kernel:\n    config:\n      a: 1\n      a: 2\n", "plugins.kernel.config.a", 5, "duplicate key"},
		{"pcr out of range", "expected_pcrs:\n  24: " + hex + "\n", "expected_pcrs.24", 2, "out of range 0..23"},
		{"pcr negative", "expected_pcrs:\n  -1: " + hex + "\n", "expected_pcrs.-1", 2, "out of range"},
		{"pcr not a number", "expected_pcrs:\n  seven: " + hex + "\n", "expected_pcrs.seven", 2, "decimal number from 0 to 23"},
		{"pcr hex index", "expected_pcrs:\n  0x7: " + hex + "\n", "expected_pcrs.0x7", 2, "decimal number"},
		{"pcr twice", "expected_pcrs:\n  7: " + hex + "\n  \"07\": " + hex + "\n", "expected_pcrs.07", 3, "given twice"},
		{"pcr short value", "expected_pcrs:\n  7: abcd\n", "expected_pcrs.7", 2, "not a SHA-256 bank value"},
		{"pcr non-hex value", "expected_pcrs:\n  7: " + strings.Repeat("g", 64) + "\n", "expected_pcrs.7", 2, "not a SHA-256"},
		{"pcrs list", "expected_pcrs: [1]\n", "expected_pcrs", 1, "want a mapping"},
		{"unknown severity weight", "severity_weights:\n  severe: 3\n", "severity_weights.severe", 2, "unknown severity"},
		{"negative weight", "severity_weights:\n  low: -1\n", "severity_weights.low", 2, "out of range"},
		{"critical zero", "severity_weights:\n  critical: 0\n", "severity_weights.critical", 2, "greater than 0"},
		{"weight not int", "severity_weights:\n  low: 1.5\n", "severity_weights.low", 2, "want an integer"},
		{"degraded zero", "thresholds:\n  degraded: 0\n", "thresholds.degraded", 2, "greater than 0"},
		{"degraded above failed", "thresholds:\n  degraded: 200\n", "thresholds.degraded", 2, "want 0 < degraded <= failed"},
		{"thresholds unknown", "thresholds:\n  attested: 1\n", "thresholds.attested", 2, "unknown key"},
		{"unknown override severity", "severity_overrides:\n  kernel.tainted: severe\n", "severity_overrides.kernel.tainted", 2, "unknown severity"},
		{"bad override code", "severity_overrides:\n  Kernel: low\n", "severity_overrides.Kernel", 2, "not a finding code"},
		{"listen no port", "listen: 127.0.0.1\n", "listen", 1, "not host:port"},
		{"listen port zero", "listen: 127.0.0.1:0\n", "listen", 1, "1 to 65535"},
		{"listen port big", "listen: 127.0.0.1:70000\n", "listen", 1, "1 to 65535"},
		{"listen port name", "listen: 127.0.0.1:http\n", "listen", 1, "1 to 65535"},
		{"listen port with a sign", "listen: \"127.0.0.1:+8505\"\n", "listen", 1, "digits only"},
		{"listen hostname", "listen: example.com:8505\n", "listen", 1, "not an IP address"},
		{"listen every interface", "listen: :8505\n", "listen", 0, "not a loopback address"},
		{"listen 0.0.0.0", "listen: 0.0.0.0:8505\n", "listen", 0, "allow_remote_listen: true"},
		{"listen remote IP", "listen: 192.0.2.7:8505\n", "listen", 0, "not a loopback address"},
		{"allow remote not bool", "allow_remote_listen: yes please\n", "allow_remote_listen", 1, "want"},
		{"audit key relative", "audit_key_path: audit.key\n", "audit_key_path", 0, "not an absolute path"},
		{"audit max small", "audit_max_bytes: 1000\n", "audit_max_bytes", 0, "below the minimum"},
		{"bad plugin name", "plugins:\n  Vendor-X: {}\n", "plugins.Vendor-X", 2, "lowercase letters"},
		{"bad plugin sha", "plugins:\n  tpm:\n    sha256: xyz\n", "plugins.tpm.sha256", 3, "not a SHA-256"},
		{"plugin not a map", "plugins:\n  tpm: true\n", "plugins.tpm", 2, "want a mapping"},
		{"plugins list", "plugins: [tpm]\n", "plugins", 1, "want a mapping"},
		{"config not a map", "plugins:\n  tpm:\n    config: [1]\n", "plugins.tpm.config", 3, "want a mapping"},
		{"injected key in config", "plugins:\n  tpm:\n    config:\n      require_tpm: true\n", "plugins.tpm.config.require_tpm", 4, "set it at the top level (require_tpm)"},
		{"injected pcrs in config", "plugins:\n  tpm:\n    config:\n      expected_pcrs: {}\n", "plugins.tpm.config.expected_pcrs", 4, "top level (expected_pcrs)"},
		{"injected secure boot", "plugins:\n  secureboot:\n    config:\n      require_secure_boot: true\n", "plugins.secureboot.config.require_secure_boot", 4, "top level"},
		{"injected binaries", "plugins:\n  binaries:\n    config:\n      service_binaries: {}\n", "plugins.binaries.config.service_binaries", 4, "top level"},
		{"injected policy files", "plugins:\n  policies:\n    config:\n      policy_files: []\n", "plugins.policies.config.policy_files", 4, "top level"},
		{"int config key", "plugins:\n  kernel:\n    config:\n      1: x\n", "plugins.kernel.config", 4, "not a string: quote it"},
		{"nested int config key", "plugins:\n  kernel:\n    config:\n      a:\n        - {true: x}\n", "plugins.kernel.config.a[0]", 5, "not a string"},
		{"infinite config value", "plugins:\n  kernel:\n    config:\n      a: .inf\n", "plugins.kernel.config.a", 4, "not a finite number"},
		{"binary config value", "plugins:\n  kernel:\n    config:\n      a: !!binary aGVsbG8=\n", "plugins.kernel.config.a", 4, "unsupported value"},
		{"custom tag", "plugins:\n  kernel:\n    config:\n      a: !secret x\n", "plugins.kernel.config.a", 4, "unsupported value"},
		{"max parallel zero", "max_parallel_plugins: 0\n", "max_parallel_plugins", 1, "out of range 1..64"},
		{"max parallel big", "max_parallel_plugins: 65\n", "max_parallel_plugins", 1, "out of range 1..64"},
		{"max parallel string", "max_parallel_plugins: two\n", "max_parallel_plugins", 1, "want an integer"},
		{"log level", "log_level: loud\n", "log_level", 1, "not one of trace, debug, info, warn, error"},
		{"top level list", "- a\n- b\n", "", 1, "must be a mapping"},
		{"top level string", "hello\n", "", 1, "must be a mapping"},
		{"anchor", "a: &x 1\n", "", 1, "anchors and aliases"},
		{"alias", "policy_files: &f [/a]\nplugins:\n  policies:\n    config:\n      extra: *f\n", "", 1, "anchors and aliases"},
		{"merge key", "plugins:\n  tpm:\n    <<: {enabled: true}\n", "", 3, "merge keys"},
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "", 0, "more than one YAML document"},
		{"syntax error", "listen: [\n", "", 0, "invalid YAML"},
		{"tab indentation", "plugins:\n\tkernel: {}\n", "", 0, "invalid YAML"},
		{"non-scalar key", "? [a]\n: 1\n", "", 1, "want a plain name"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil {
			t.Errorf("Test %d (%s): accepted", i, tc.name)
			continue
		}
		var found *Error
		for _, pe := range Problems(err) {
			if pe.Key == tc.key && strings.Contains(pe.Msg, tc.msg) {
				found = pe
				break
			}
		}
		if found == nil {
			t.Errorf("Test %d (%s): no problem with key %q saying %q in:\n%v", i, tc.name, tc.key, tc.msg, err)
			continue
		}
		if tc.line != 0 && found.Line != tc.line {
			t.Errorf("Test %d (%s): line %d, want %d (%v)", i, tc.name, found.Line, tc.line, found)
		}
		if !strings.HasPrefix(err.Error(), "policy: ") {
			t.Errorf("Test %d (%s): %q does not start with policy:", i, tc.name, err)
		}
	}
}

// TestEveryProblemReported: Parse lists all problems, not just the first.
func TestEveryProblemReported(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`
require_tpm: maybe
refresh_interval: 5
listen: nowhere
plugins:
  kernel:
    timeout: forever
    colour: blue
thresholds: {degraded: 500}
log_level: chatty
`))
	want := []string{"require_tpm", "refresh_interval", "plugins.kernel.timeout", "plugins.kernel.colour", "listen", "thresholds.degraded", "log_level"}
	got := map[string]bool{}
	for _, p := range Problems(err) {
		got[p.Key] = true
		if p.Line == 0 {
			t.Errorf("%s: no line", p.Key)
		}
	}
	for _, k := range want {
		if !got[k] {
			t.Errorf("%s not reported in:\n%v", k, err)
		}
	}
	if n := len(Problems(err)); n != len(want) {
		t.Errorf("%d problems, want %d:\n%v", n, len(want), err)
	}
}

// TestValidateProgrammatic: Validate catches what code, not YAML, got wrong.
func TestValidateProgrammatic(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		edit func(p *Policy)
		key  string
	}{
		{func(p *Policy) { p.ExpectedPCRs[3] = strings.Repeat("A", 64) }, "expected_pcrs.3"},
		{func(p *Policy) { delete(p.SeverityWeights, 2) }, "severity_weights.low"},
		{func(p *Policy) { p.SeverityWeights[9] = 1 }, "severity_weights"},
		{func(p *Policy) { p.SeverityOverrides["a.b"] = 0 }, "severity_overrides.a.b"},
		{func(p *Policy) { p.Plugins["tpm"] = PluginPolicy{Timeout: -time.Second} }, "plugins.tpm.timeout"},
		{func(p *Policy) { p.Plugins["x"] = PluginPolicy{Config: map[string]any{"f": func() {}}} }, "plugins.x.config"},
		{func(p *Policy) { p.Thresholds = Thresholds{5, 2_000_000_000} }, "thresholds.failed"},
		{func(p *Policy) { p.SeverityWeights[5] = 2_000_000 }, "severity_weights.critical"},
		{func(p *Policy) { p.PolicyFiles = []string{""} }, "policy_files[0]"},
	} {
		p := Default()
		tc.edit(p)
		err := p.Validate()
		ok := false
		for _, pe := range Problems(err) {
			ok = ok || pe.Key == tc.key
		}
		if !ok {
			t.Errorf("Test %d: want a problem with %s, got %v", i, tc.key, err)
		}
	}
}
