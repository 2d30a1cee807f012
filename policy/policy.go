// Package policy is the attestation policy (/etc/secure-ai/policy/
// attestation.yaml): its types and defaults, strict YAML loading (unknown
// keys, wrong types, duplicate keys and impossible values are refused with
// the full dotted key and the line), validation, the checks of the files the
// policy names (CheckFiles) and the assembly of each plugin's configuration
// (PluginConfigJSON). docs/policy.md describes every key.
package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// DefaultPath is where the daemon reads its policy.
const DefaultPath = "/etc/secure-ai/policy/attestation.yaml"

// DefaultAuditMaxBytes is the audit log's default size budget (64 MiB) and
// MinAuditMaxBytes the smallest one accepted.
const (
	DefaultAuditMaxBytes = 64 << 20
	MinAuditMaxBytes     = 64 << 10
)

// DefaultAuditKeyPath is audit_key_path when the policy does not set it:
// beside the log, its name ending in .key instead of .jsonl.
func DefaultAuditKeyPath(logPath string) string {
	return strings.TrimSuffix(logPath, ".jsonl") + ".key"
}

// DefaultServices are the appliance's Go services, measured by default
// (service_binaries) at /usr/libexec/secure-ai/<name>.
var DefaultServices = []string{"policy-engine", "registry", "tool-firewall", "agent", "airlock", "mcp-firewall"}

// Policy is a parsed, defaulted attestation policy.
type Policy struct {
	RequireTPM         bool                     // require_tpm
	RequireSecureBoot  bool                     // require_secure_boot
	ExpectedPCRs       map[int]string           // expected_pcrs: PCR index 0..23 -> lowercase hex SHA-256
	BootReference      string                   // boot_reference: the tpm plugin's boot reference file; "" = none
	ServiceBinaries    map[string]ServiceBinary // service_binaries
	PolicyFiles        []string                 // policy_files
	RefreshInterval    time.Duration            // refresh_interval
	HMACKeyPath        string                   // hmac_key_path
	Listen             string                   // listen
	AllowRemoteListen  bool                     // allow_remote_listen (false): listen may name a non-loopback address
	PluginDir          string                   // plugin_dir
	APITokenPath       string                   // api_token_path; "" = refresh refused
	AuditLogPath       string                   // audit_log_path
	AuditKeyPath       string                   // audit_key_path; "" = records not MACed
	AuditMaxBytes      int                      // audit_max_bytes: the log's size budget, rotated files included
	Plugins            map[string]PluginPolicy  // plugins.<name>; always holds the built-ins
	RunUnlistedPlugins bool                     // run_unlisted_plugins
	ResidentPlugins    bool                     // resident_plugins (false): keep plugin processes between attestations
	SeverityWeights    map[sdk.Severity]int     // severity_weights
	Thresholds         Thresholds               // thresholds
	SeverityOverrides  map[string]sdk.Severity  // severity_overrides: finding code -> severity
	PluginTimeout      time.Duration            // plugin_timeout
	AttestationTimeout time.Duration            // attestation_timeout
	MaxParallelPlugins int                      // max_parallel_plugins
	// AttestationCPUPercent is attestation_cpu_percent: the average CPU,
	// in percent of one CPU, that a periodic attestation after the first
	// may use (not one a refresh waits for);
	// the engine pauses between plugin turns to keep to it (0: no pauses).
	AttestationCPUPercent int
	LogLevel              string // log_level

	// The daemon's signing identity and TPM evidence (evidence.go).
	SigningKeyPath    string // signing_key_path (DefaultSigningKeyPath); "" = bundles carry no bundle_signature
	EvidenceTPMDevice string // evidence_tpm_device; "" = no quotes from a device
	EvidenceTPMSocket string // evidence_tpm_socket: a swtpm socket, instead of the device
	EvidencePCRs      []int  // evidence_pcrs: the PCRs GET /api/v1/evidence quotes
	VerdictPCR        int    // verdict_pcr: the PCR each distinct verdict is extended into
	VerdictLogPath    string // verdict_log_path; "" = verdicts are not measured

	// Source is the file the policy was loaded from ("" for Default or
	// Parse) and SourceSHA256 the lowercase hex SHA-256 of the bytes parsed
	// ("" for Default).
	Source       string
	SourceSHA256 string

	lines map[string]int // dotted key -> line, for errors found after parsing
}

// ServiceBinary is one measured service binary; SHA256 "" means unpinned
// (measured and reported, not compared).
type ServiceBinary struct{ Path, SHA256 string }

// PluginPolicy is plugins.<name>.
type PluginPolicy struct {
	Enabled bool
	// SHA256 pins the plugin executable (lowercase hex); "" = not pinned.
	SHA256 string
	// Timeout of one measurement; 0 = PluginTimeout.
	Timeout time.Duration
	// Config is plugins.<name>.config as JSON-compatible values
	// (map[string]any, []any, string, bool, int64, float64, nil).
	Config map[string]any
	// Sandbox is plugins.<name>.sandbox: what the plugin may touch. For a
	// built-in it is added to what the plugin declares; any other plugin
	// gets exactly this (nothing when empty). The plugin host imposes it
	// on the plugin process before its first instruction.
	Sandbox Grant
}

// Grant is what the policy grants a plugin (plugins.<name>.sandbox), with
// the fields and keys of the sandbox a check declares (sdk.Sandbox): files
// and folders read or written, commands run, devices opened, Unix sockets
// and TCP ports reached. The plugin host turns it into the confinement it
// imposes.
type Grant sdk.Sandbox

// Thresholds are the scores at which the state becomes degraded and failed.
type Thresholds struct{ Degraded, Failed int }

// Default returns the built-in policy: the defaults docs/policy.md lists, every built-in
// plugin enabled.
func Default() *Policy {
	p := &Policy{
		RequireTPM:         false,
		RequireSecureBoot:  false,
		ExpectedPCRs:       map[int]string{},
		ServiceBinaries:    map[string]ServiceBinary{},
		PolicyFiles:        []string{"/etc/secure-ai/policy/policy.yaml", "/etc/secure-ai/policy/agent.yaml"},
		RefreshInterval:    5 * time.Minute,
		HMACKeyPath:        "/run/secure-ai/attestation-hmac-key",
		Listen:             "127.0.0.1:8505",
		PluginDir:          "/usr/libexec/secure-ai/runtime-attestor/plugins",
		APITokenPath:       "/run/secure-ai/attestor-api-token",
		AuditLogPath:       "/var/lib/secure-ai/logs/runtime-attestor-audit.jsonl",
		AuditKeyPath:       "/var/lib/secure-ai/logs/runtime-attestor-audit.key", // DefaultAuditKeyPath of the log
		AuditMaxBytes:      DefaultAuditMaxBytes,
		Plugins:            map[string]PluginPolicy{},
		RunUnlistedPlugins: false,
		SeverityWeights: map[sdk.Severity]int{
			sdk.SeverityInfo: 0, sdk.SeverityLow: 1, sdk.SeverityMedium: 5, sdk.SeverityHigh: 20, sdk.SeverityCritical: 100,
		},
		Thresholds:         Thresholds{Degraded: 5, Failed: 100},
		SeverityOverrides:  map[string]sdk.Severity{},
		PluginTimeout:      10 * time.Second,
		AttestationTimeout: 60 * time.Second,
		MaxParallelPlugins: 2,
		// Half the unit's CPUQuota=10%: the other half is the API's.
		AttestationCPUPercent: 5,
		LogLevel:              "info",
		SigningKeyPath:        DefaultSigningKeyPath,
		EvidenceTPMDevice:     DefaultEvidenceTPMDevice,
		EvidencePCRs:          append([]int(nil), DefaultEvidencePCRs...),
		VerdictPCR:            DefaultVerdictPCR,
		VerdictLogPath:        DefaultVerdictLogPath,
	}
	for _, s := range DefaultServices {
		p.ServiceBinaries[s] = ServiceBinary{Path: "/usr/libexec/secure-ai/" + s}
	}
	for _, name := range builtin.Names() {
		p.Plugins[name] = PluginPolicy{Enabled: true}
	}
	return p
}

// IsBuiltin reports whether name is a built-in plugin (package builtin, the
// registry, says which are; each is enabled unless the policy says
// plugins.<name>.enabled: false).
func IsBuiltin(name string) bool { return builtin.Is(name) }

// PluginEnabled reports whether the plugin called name should run: a plugin
// listed under plugins runs unless it says enabled: false; a built-in runs
// unless disabled; any other plugin found in plugin_dir runs when
// run_unlisted_plugins is true.
func (p *Policy) PluginEnabled(name string) bool {
	if pp, ok := p.Plugins[name]; ok {
		return pp.Enabled
	}
	if IsBuiltin(name) {
		return true
	}
	return p.RunUnlistedPlugins
}

// ExpectedPlugins returns, sorted, the plugins that must be present in
// plugin_dir: every enabled built-in and every enabled listed plugin. One
// of them missing is core.plugin_missing.
func (p *Policy) ExpectedPlugins() []string {
	set := map[string]bool{}
	for _, b := range builtin.Names() {
		if p.PluginEnabled(b) {
			set[b] = true
		}
	}
	for name, pp := range p.Plugins {
		if pp.Enabled {
			set[name] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// PluginTimeoutFor returns the measurement timeout of the plugin called
// name: plugins.<name>.timeout, or plugin_timeout.
func (p *Policy) PluginTimeoutFor(name string) time.Duration {
	if pp, ok := p.Plugins[name]; ok && pp.Timeout > 0 {
		return pp.Timeout
	}
	return p.PluginTimeout
}

// PluginConfigJSON returns the configuration sent to the plugin called
// name: plugins.<name>.config with the top-level policy keys the registry
// says the plugin takes (builtin.Plugin.PolicyKeys: tpm gets require_tpm,
// expected_pcrs and boot_reference, secureboot require_secure_boot,
// binaries service_binaries, policies policy_files) injected, as one JSON
// object. A plugin with no configuration gets {}.
func (p *Policy) PluginConfigJSON(name string) ([]byte, error) {
	cfg := map[string]any{}
	for k, v := range p.Plugins[name].Config {
		cfg[k] = v
	}
	if b, ok := builtin.Lookup(name); ok {
		for _, k := range b.PolicyKeys {
			v, set, err := p.injected(k)
			if err != nil {
				return nil, fmt.Errorf("plugins.%s.config: %w", name, err)
			}
			if set {
				cfg[k] = v
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("plugins.%s.config: %w", name, err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// injected returns the value of the top-level key a built-in's
// configuration receives, and false when the key is not set (an empty
// boot_reference is left out).
func (p *Policy) injected(key string) (any, bool, error) {
	switch key {
	case "require_tpm":
		return p.RequireTPM, true, nil
	case "expected_pcrs":
		pcrs := make(map[string]string, len(p.ExpectedPCRs))
		for i, v := range p.ExpectedPCRs {
			pcrs[strconv.Itoa(i)] = v
		}
		return pcrs, true, nil
	case "boot_reference":
		return p.BootReference, p.BootReference != "", nil
	case "require_secure_boot":
		return p.RequireSecureBoot, true, nil
	case "service_binaries":
		bins := make(map[string]map[string]string, len(p.ServiceBinaries))
		for n, b := range p.ServiceBinaries {
			bins[n] = map[string]string{"path": b.Path, "sha256": b.SHA256}
		}
		return bins, true, nil
	case "policy_files":
		return append([]string{}, p.PolicyFiles...), true, nil
	}
	return nil, false, fmt.Errorf("the registry names the policy key %q, which the policy does not have", key)
}
