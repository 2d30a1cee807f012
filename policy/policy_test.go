package policy

import (
	"encoding/json"
	"errors"
	"github.com/secure-ai/runtime-attestor/builtin"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// TestDefaultMatchesSpec checks Default against the defaults that
// docs/policy.md and the README list.
func TestDefaultMatchesSpec(t *testing.T) {
	t.Parallel()
	p := Default()
	for i, tc := range []struct {
		key       string
		got, want any
	}{
		{"require_tpm", p.RequireTPM, false},
		{"require_secure_boot", p.RequireSecureBoot, false},
		{"expected_pcrs", p.ExpectedPCRs, map[int]string{}},
		{"policy_files", p.PolicyFiles, []string{"/etc/secure-ai/policy/policy.yaml", "/etc/secure-ai/policy/agent.yaml"}},
		{"refresh_interval", p.RefreshInterval, 5 * time.Minute},
		{"hmac_key_path", p.HMACKeyPath, "/run/secure-ai/attestation-hmac-key"},
		{"listen", p.Listen, "127.0.0.1:8505"},
		{"plugin_dir", p.PluginDir, "/usr/libexec/secure-ai/runtime-attestor/plugins"},
		{"api_token_path", p.APITokenPath, "/run/secure-ai/attestor-api-token"},
		{"audit_log_path", p.AuditLogPath, "/var/lib/secure-ai/logs/runtime-attestor-audit.jsonl"},
		{"run_unlisted_plugins", p.RunUnlistedPlugins, false},
		{"severity_weights", p.SeverityWeights, map[sdk.Severity]int{sdk.SeverityInfo: 0, sdk.SeverityLow: 1, sdk.SeverityMedium: 5, sdk.SeverityHigh: 20, sdk.SeverityCritical: 100}},
		{"thresholds", p.Thresholds, Thresholds{Degraded: 5, Failed: 100}},
		{"severity_overrides", p.SeverityOverrides, map[string]sdk.Severity{}},
		{"plugin_timeout", p.PluginTimeout, 10 * time.Second},
		{"attestation_timeout", p.AttestationTimeout, 60 * time.Second},
		{"max_parallel_plugins", p.MaxParallelPlugins, 2},
		{"log_level", p.LogLevel, "info"},
		{"service_binaries", p.ServiceBinaries, map[string]ServiceBinary{
			"policy-engine": {Path: "/usr/libexec/secure-ai/policy-engine"},
			"registry":      {Path: "/usr/libexec/secure-ai/registry"},
			"tool-firewall": {Path: "/usr/libexec/secure-ai/tool-firewall"},
			"agent":         {Path: "/usr/libexec/secure-ai/agent"},
			"airlock":       {Path: "/usr/libexec/secure-ai/airlock"},
			"mcp-firewall":  {Path: "/usr/libexec/secure-ai/mcp-firewall"},
		}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("Test %d: %s = %#v, want %#v", i, tc.key, tc.got, tc.want)
		}
	}
	if len(p.ServiceBinaries) != 6 {
		t.Errorf("%d default services, the documented status shows service_count 6", len(p.ServiceBinaries))
	}
	for _, b := range builtin.Names() {
		if pp := p.Plugins[b]; !pp.Enabled || pp.SHA256 != "" || pp.Timeout != 0 || pp.Config != nil {
			t.Errorf("built-in %s: %+v", b, pp)
		}
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("the default policy does not validate: %v", err)
	}
}

func comparable(p *Policy) *Policy {
	c := *p
	c.Source, c.SourceSHA256, c.lines = "", "", nil
	return &c
}

// TestProductionExampleIsDefault: the production example writes out the
// defaults, every key present.
func TestProductionExampleIsDefault(t *testing.T) {
	t.Parallel()
	path := filepath.Join("examples", "production.yaml")
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(comparable(p), comparable(Default())) {
		t.Fatalf("production.yaml is not the default policy:\n got %+v\nwant %+v", comparable(p), comparable(Default()))
	}
	if p.Source != path || len(p.SourceSHA256) != 64 {
		t.Errorf("source %q %q", p.Source, p.SourceSHA256)
	}
	data, _ := os.ReadFile(path)
	for _, k := range topKeys {
		if !strings.Contains(string(data), "\n"+k+":") {
			t.Errorf("production.yaml does not set %s", k)
		}
	}
}

func renderDev(t *testing.T, root, run string) []byte {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join("examples", "development.yaml.in"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(tmpl), "@ROOT@", root)
	return []byte(strings.ReplaceAll(s, "@RUN@", run))
}

// TestDevelopmentTemplate renders the template as scripts/dev-run.sh does
// and checks what it promises.
func TestDevelopmentTemplate(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ root, run string }{
		{root, filepath.Join(root, ".run")},
		{"/home/dev/my repo #1", "/home/dev/my repo #1/.run"},
	} {
		p, err := Parse(renderDev(t, r.root, r.run))
		if err != nil {
			t.Fatalf("root %q: %v", r.root, err)
		}
		want := map[string]any{
			"plugin_dir":       filepath.Join(r.root, "bin", "plugins"),
			"hmac_key_path":    filepath.Join(r.run, "hmac.key"),
			"signing_key_path": filepath.Join(r.run, "signing.key"),
			"api_token_path":   filepath.Join(r.run, "api-token"),
			"audit_log_path":   filepath.Join(r.run, "audit.jsonl"),
			"refresh_interval": 30 * time.Second,
			"require_tpm":      false,
			"secure_boot":      false,
			"service_binaries": map[string]ServiceBinary{
				"runtime-attestor": {Path: filepath.Join(r.root, "bin", "runtime-attestor")},
				"attestctl":        {Path: filepath.Join(r.root, "bin", "attestctl")},
			},
			"policy_files": []string{filepath.Join(r.root, "policy", "examples", "production.yaml"), filepath.Join(r.root, "policy", "examples", "development.yaml.in")},
			"listen":       "127.0.0.1:8505",
			"override":     sdk.SeverityInfo,
		}
		got := map[string]any{
			"plugin_dir": p.PluginDir, "hmac_key_path": p.HMACKeyPath, "signing_key_path": p.SigningKeyPath, "api_token_path": p.APITokenPath,
			"audit_log_path": p.AuditLogPath, "refresh_interval": p.RefreshInterval, "require_tpm": p.RequireTPM,
			"secure_boot": p.RequireSecureBoot, "service_binaries": p.ServiceBinaries, "policy_files": p.PolicyFiles,
			"listen": p.Listen, "override": p.SeverityOverrides["kernel.tainted"],
		}
		for k, w := range want {
			if !reflect.DeepEqual(got[k], w) {
				t.Errorf("root %q: %s = %#v, want %#v", r.root, k, got[k], w)
			}
		}
		for _, b := range builtin.Names() {
			if !p.PluginEnabled(b) {
				t.Errorf("built-in %s disabled", b)
			}
			if _, err := p.PluginConfigJSON(b); err != nil {
				t.Error(err)
			}
		}
	}
	// The files the development policy names in the repository exist.
	p, _ := Parse(renderDev(t, root, filepath.Join(root, ".run")))
	for _, f := range append(p.PolicyFiles, p.Plugins["policies"].Config["registry_manifest_path"].(string)) {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("development policy names a missing file: %v", err)
		}
	}
	var manifest map[string]any
	raw, _ := os.ReadFile(filepath.Join("examples", "registry-manifest.json"))
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Errorf("registry-manifest.json: %v", err)
	}
}

func TestEmptyDocumentIsDefault(t *testing.T) {
	t.Parallel()
	for i, doc := range []string{"", "\n\n", "# only a comment\n", "~\n", "null", "---\n", "--- # hi\n...\n"} {
		p, err := Parse([]byte(doc))
		if err != nil {
			t.Errorf("Test %d: %q: %v", i, doc, err)
			continue
		}
		if !reflect.DeepEqual(comparable(p), comparable(Default())) {
			t.Errorf("Test %d: %q is not the default policy", i, doc)
		}
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(`
require_tpm: true
require_secure_boot: true
expected_pcrs:
  0: "3D458CFE55CC03EA1F443F1562BEEC8DF51C75E14A9FCF9A7234A13F198E7969"
  "7": 65caf8dd1e0ea7a6347b635d2b379c93b9a1351edc2afc3ecda700e534eb3068
service_binaries:
  agent: /opt/agent
  registry:
    path: /opt/registry
    sha256: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
policy_files: [/a, /b/c.yaml]
refresh_interval: 1m30s
api_token_path: ""
listen: "[::1]:9000"
plugins:
  kernel:
    timeout: 3s
    config:
      required_params: [lockdown=integrity, "module.sig_enforce=1"]
      n: 12
      f: 1.5
      big: 9007199254740993
      on: true
      nothing: null
      when: 2026-03-13
      nested: {a: [1, {b: x}]}
  ostree:
    enabled: false
  vendor_x:
  vendor_y:
    sha256: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
run_unlisted_plugins: false
severity_weights: {medium: 7}
thresholds: {degraded: 7}
severity_overrides:
  kernel.tainted: low
  core.audit_write: high
max_parallel_plugins: 4
log_level: debug
`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.RequireTPM || !p.RequireSecureBoot || p.RunUnlistedPlugins {
		t.Error("booleans")
	}
	if p.ExpectedPCRs[0] != "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969" || len(p.ExpectedPCRs) != 2 {
		t.Errorf("expected_pcrs %v", p.ExpectedPCRs)
	}
	if want := (map[string]ServiceBinary{"agent": {Path: "/opt/agent"}, "registry": {Path: "/opt/registry", SHA256: strings.Repeat("a", 64)}}); !reflect.DeepEqual(p.ServiceBinaries, want) {
		t.Errorf("service_binaries %v", p.ServiceBinaries)
	}
	if p.RefreshInterval != 90*time.Second || p.APITokenPath != "" || p.Listen != "[::1]:9000" {
		t.Error("scalars")
	}
	if p.SeverityWeights[sdk.SeverityMedium] != 7 || p.SeverityWeights[sdk.SeverityCritical] != 100 || p.Thresholds != (Thresholds{7, 100}) {
		t.Errorf("weights merged with defaults: %v %v", p.SeverityWeights, p.Thresholds)
	}
	if p.PluginTimeoutFor("kernel") != 3*time.Second || p.PluginTimeoutFor("tpm") != 10*time.Second || p.PluginTimeoutFor("vendor_z") != 10*time.Second {
		t.Error("timeouts")
	}
	for name, want := range map[string]bool{"kernel": true, "ostree": false, "tpm": true, "vendor_x": true, "vendor_y": true, "vendor_z": false} {
		if p.PluginEnabled(name) != want {
			t.Errorf("PluginEnabled(%s) = %v", name, !want)
		}
	}
	if got := strings.Join(p.ExpectedPlugins(), ","); got != "binaries,kernel,policies,secureboot,tpm,vendor_x,vendor_y" {
		t.Errorf("ExpectedPlugins %s", got)
	}
	cfg, err := p.PluginConfigJSON("kernel")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"big":9007199254740993,"f":1.5,"n":12,"nested":{"a":[1,{"b":"x"}]},"nothing":null,"on":true,"required_params":["lockdown=integrity","module.sig_enforce=1"],"when":"2026-03-13"}`
	if string(cfg) != want {
		t.Errorf("kernel config\n got %s\nwant %s", cfg, want)
	}
	if _, ok := p.Plugins["kernel"].Config["n"].(int64); !ok {
		t.Errorf("integers are int64: %T", p.Plugins["kernel"].Config["n"])
	}
}

func TestPluginConfigInjection(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(`
require_tpm: true
expected_pcrs: {7: "` + strings.Repeat("b", 64) + `"}
service_binaries:
  agent: {path: /x/agent, sha256: "` + strings.Repeat("c", 64) + `"}
  a_b: /x/a&b
policy_files: [/p/1.yaml, /p/0.yaml]
plugins:
  tpm:
    config: {device: /dev/tpm0}
  vendor_x:
    config: {require_tpm: "mine"}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ name, want string }{
		{"tpm", `{"device":"/dev/tpm0","expected_pcrs":{"7":"` + strings.Repeat("b", 64) + `"},"require_tpm":true}`},
		{"secureboot", `{"require_secure_boot":false}`},
		{"binaries", `{"service_binaries":{"a_b":{"path":"/x/a&b","sha256":""},"agent":{"path":"/x/agent","sha256":"` + strings.Repeat("c", 64) + `"}}}`},
		{"policies", `{"policy_files":["/p/1.yaml","/p/0.yaml"]}`},
		{"kernel", `{}`},
		{"vendor_x", `{"require_tpm":"mine"}`},
		{"unknown", `{}`},
	} {
		got, err := p.PluginConfigJSON(tc.name)
		if err != nil || string(got) != tc.want {
			t.Errorf("Test %d: %s: %s (%v), want %s", i, tc.name, got, err, tc.want)
		}
	}
	empty, _ := Parse([]byte(`policy_files: []`))
	if got, _ := empty.PluginConfigJSON("policies"); string(got) != `{"policy_files":[]}` {
		t.Errorf("empty policy_files: %s", got)
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		e    Error
		want string
	}{
		{Error{Key: "plugins.kernel.timeout", Msg: "bad", Line: 12}, "policy: plugins.kernel.timeout: bad (line 12)"},
		{Error{Key: "listen", Msg: "bad"}, "policy: listen: bad"},
		{Error{Msg: "invalid YAML"}, "policy: invalid YAML"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Test %d: %q, want %q", i, got, tc.want)
		}
	}
	_, err := Parse([]byte("listen: x\nlog_level: loud\n"))
	probs := Problems(err)
	if len(probs) != 2 || probs[0].Key != "listen" || probs[1].Key != "log_level" {
		t.Fatalf("Problems: %v", probs)
	}
	if ps := Problems(errors.Join(errors.New("x"), &Error{Key: "k"})); len(ps) != 1 {
		t.Fatal(ps)
	}
}

// TestOverridesCannotLowerProtectedCodes: severity_overrides that would
// cancel a pin or the bundle's signature are refused, naming the key; raising
// them, or lowering another code, is fine.
func TestOverridesCannotLowerProtectedCodes(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		yaml, key string
	}{
		{"severity_overrides:\n  core.plugin_untrusted: info\n", "severity_overrides.core.plugin_untrusted"},
		{"severity_overrides:\n  core.plugin_untrusted: high\n", "severity_overrides.core.plugin_untrusted"},
		{"severity_overrides:\n  core.hmac_key: low\n", "severity_overrides.core.hmac_key"},
		{"severity_overrides:\n  core.hmac_key: critical\n", ""},
		{"severity_overrides:\n  binaries.missing: info\n", ""},
	} {
		_, err := Parse([]byte(tc.yaml))
		ps := Problems(err)
		switch {
		case tc.key == "" && err != nil:
			t.Errorf("Test %d: %q refused: %v", i, tc.yaml, err)
		case tc.key != "" && (len(ps) != 1 || ps[0].Key != tc.key || !strings.Contains(ps[0].Msg, "may not be lowered")):
			t.Errorf("Test %d: %q: %v, want one problem at %s", i, tc.yaml, err, tc.key)
		}
	}
}

// TestCheckOverridesFloors: the daemon passes the codes its built-ins
// declare critical; lowering one is refused.
func TestCheckOverridesFloors(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte("severity_overrides:\n  tpm.quote_invalid: info\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.CheckOverrides(map[string]sdk.Severity{"tpm.quote_invalid": sdk.SeverityCritical})
	if ps := Problems(err); len(ps) != 1 || ps[0].Key != "severity_overrides.tpm.quote_invalid" || ps[0].Line != 2 {
		t.Fatalf("CheckOverrides = %v, want severity_overrides.tpm.quote_invalid at line 2", err)
	}
}

// TestBuiltinFloorsRefused: every code the registry says a built-in
// declares critical is a floor of the policy itself, so Parse (and so
// attestctl's validation, without any plugin executable) refuses lowering
// it; a code not in the registry may be lowered.
func TestBuiltinFloorsRefused(t *testing.T) {
	t.Parallel()
	codes := builtin.CriticalCodes()
	if len(codes) == 0 {
		t.Fatal("the registry names no critical code")
	}
	for _, code := range codes {
		_, err := Parse([]byte("severity_overrides:\n  " + code + ": high\n"))
		if ps := Problems(err); len(ps) != 1 || ps[0].Key != "severity_overrides."+code || ps[0].Line != 2 {
			t.Errorf("lowering %s: %v, want one problem at severity_overrides.%s line 2", code, err, code)
		}
	}
	if _, err := Parse([]byte("severity_overrides:\n  tpm.pcr_mismatch: low\n")); err != nil {
		t.Errorf("lowering a code that is not a floor: %v", err)
	}
}
