package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/pluginname"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Limits that Validate enforces.
const (
	MinRefreshInterval = time.Second
	MaxWeight          = 1_000_000
	MaxThreshold       = 1_000_000_000
	MaxParallelPlugins = 64
	MaxPCR             = 23
)

var (
	hex64RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	serviceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// LogLevels are the accepted log_level values.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// Validate checks every value of the policy and returns every problem,
// each an *Error naming its dotted key, joined with errors.Join.
func (p *Policy) Validate() error { return p.validate(&errs{lines: p.lines}) }

// validate runs the checks group by group, always in the same order, so that
// the joined problems come out the same way for the same policy.
func (p *Policy) validate(e *errs) error {
	p.validatePaths(e)
	p.validatePolicyFiles(e)
	p.validateServiceBinaries(e)
	p.validatePCRs(e)
	p.validateDurations(e)
	p.validateListen(e)
	p.validatePlugins(e)
	p.validateSeverities(e)
	p.validateLimits(e)
	return e.err()
}

// absolute records a problem unless path is a clean absolute path (or empty
// where emptyOK).
func (e *errs) absolute(key, path string, emptyOK bool) {
	switch {
	case path == "" && emptyOK:
	case path == "":
		e.add(key, 0, "empty path")
	case !filepath.IsAbs(path):
		e.add(key, 0, "%q is not an absolute path", path)
	case filepath.Clean(path) != path && filepath.Clean(path)+"/" != path:
		e.add(key, 0, "%q is not a clean path (write %q)", path, filepath.Clean(path))
	}
}

// validatePaths checks the files and folders the daemon reads and writes.
func (p *Policy) validatePaths(e *errs) {
	e.absolute("hmac_key_path", p.HMACKeyPath, false)
	e.absolute("api_token_path", p.APITokenPath, true)
	e.absolute("audit_log_path", p.AuditLogPath, false)
	e.absolute("audit_key_path", p.AuditKeyPath, true)
	if p.AuditKeyPath != "" && p.AuditKeyPath == p.AuditLogPath {
		e.add("audit_key_path", 0, "is the audit log itself; name another file (e.g. beside it, ending in .key)")
	} else if p.AuditKeyPath != "" && filepath.Dir(p.AuditKeyPath) != filepath.Dir(p.AuditLogPath) {
		e.add("audit_key_path", 0, "%q is not in the audit log's folder %s: the daemon's sandbox lets it write only there", p.AuditKeyPath, filepath.Dir(p.AuditLogPath))
	}
	if p.AuditMaxBytes < MinAuditMaxBytes {
		e.add("audit_max_bytes", 0, "%d is below the minimum of %d bytes (64 KiB)", p.AuditMaxBytes, MinAuditMaxBytes)
	}
	e.absolute("plugin_dir", p.PluginDir, false)
	e.absolute("boot_reference", p.BootReference, true)
	p.validateEvidence(e)
}

// validatePolicyFiles checks the measured policy files: absolute, each once.
func (p *Policy) validatePolicyFiles(e *errs) {
	seenFile := map[string]int{}
	for i, f := range p.PolicyFiles {
		key := fmt.Sprintf("policy_files[%d]", i)
		e.absolute(key, f, false)
		if j, dup := seenFile[filepath.Clean(f)]; dup && f != "" {
			e.add(key, 0, "%q is listed twice (also policy_files[%d])", f, j)
		}
		seenFile[filepath.Clean(f)] = i
	}
}

// validateServiceBinaries checks each service's name, path and pinned digest.
func (p *Policy) validateServiceBinaries(e *errs) {
	for _, name := range slices.Sorted(maps.Keys(p.ServiceBinaries)) {
		b := p.ServiceBinaries[name]
		key := "service_binaries." + name
		if !serviceRE.MatchString(name) {
			e.add(key, 0, "service name must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
		}
		e.absolute(key+pathSuffix(p, name), b.Path, false)
		if b.SHA256 != "" && !hex64RE.MatchString(b.SHA256) {
			e.add(key+".sha256", 0, "%q is not a SHA-256 (64 hex digits)", b.SHA256)
		}
	}
}

// validatePCRs checks the expected PCR values: index in range, SHA-256 value.
func (p *Policy) validatePCRs(e *errs) {
	for _, idx := range slices.Sorted(maps.Keys(p.ExpectedPCRs)) {
		v := p.ExpectedPCRs[idx]
		key := "expected_pcrs." + strconv.Itoa(idx)
		if idx < 0 || idx > MaxPCR {
			e.add(key, 0, "PCR index %d is out of range 0..%d", idx, MaxPCR)
		}
		if !hex64RE.MatchString(v) {
			e.add(key, 0, "%q is not a SHA-256 bank value (64 hex digits)", v)
		}
	}
}

// validateDurations checks the refresh interval and the two timeouts.
func (p *Policy) validateDurations(e *errs) {
	if p.RefreshInterval < MinRefreshInterval {
		e.add("refresh_interval", 0, "%s is too short: the minimum is %s", p.RefreshInterval, MinRefreshInterval)
	}
	if p.PluginTimeout <= 0 {
		e.add("plugin_timeout", 0, "must be positive, got %s", p.PluginTimeout)
	}
	if p.AttestationTimeout <= 0 {
		e.add("attestation_timeout", 0, "must be positive, got %s", p.AttestationTimeout)
	}
	if p.PluginTimeout > 0 && p.AttestationTimeout > 0 && p.PluginTimeout > p.AttestationTimeout {
		e.add("plugin_timeout", 0, "%s is longer than attestation_timeout (%s)", p.PluginTimeout, p.AttestationTimeout)
	}
}

// validateListen checks the API's listen address: host:port, and loopback
// unless allow_remote_listen says otherwise.
func (p *Policy) validateListen(e *errs) {
	if err := checkListen(p.Listen); err != "" {
		e.add("listen", 0, "%s", err)
	} else if !p.AllowRemoteListen && !LoopbackListen(p.Listen) {
		e.add("listen", 0, "%q is not a loopback address: other machines could reach the API, and the bearer token would cross the network in clear; listen on 127.0.0.1 or [::1], or set allow_remote_listen: true if you mean it", p.Listen)
	}
}

// validatePlugins checks each plugin's name, pinned digest, timeout and config.
func (p *Policy) validatePlugins(e *errs) {
	for _, name := range slices.Sorted(maps.Keys(p.Plugins)) {
		pp := p.Plugins[name]
		key := "plugins." + name
		if !pluginname.Valid(name) {
			e.add(key, 0, "plugin name must be lowercase letters, digits and '_', starting with a letter (the part after attestor-check-)")
		}
		if pp.SHA256 != "" && !hex64RE.MatchString(pp.SHA256) {
			e.add(key+".sha256", 0, "%q is not a SHA-256 (64 hex digits)", pp.SHA256)
		}
		switch {
		case pp.Timeout < 0:
			e.add(key+".timeout", 0, "must be positive, got %s", pp.Timeout)
		case p.AttestationTimeout > 0 && pp.Timeout > p.AttestationTimeout:
			e.add(key+".timeout", 0, "%s is longer than attestation_timeout (%s)", pp.Timeout, p.AttestationTimeout)
		}
		for _, k := range builtinKeys(name) {
			if _, ok := pp.Config[k]; ok {
				e.add(key+".config."+k, 0, "set it at the top level (%s): the policy passes it to the %s plugin", k, name)
			}
		}
		if pp.Config != nil {
			if _, err := json.Marshal(pp.Config); err != nil {
				e.add(key+".config", 0, "not JSON-compatible: %v", err)
			}
		}
	}
}

// validateSeverities checks the weights, the thresholds and the overrides.
func (p *Policy) validateSeverities(e *errs) {
	for _, s := range sdk.Severities() {
		key := "severity_weights." + s.String()
		w, ok := p.SeverityWeights[s]
		switch {
		case !ok:
			e.add(key, 0, "missing")
		case w < 0 || w > MaxWeight:
			e.add(key, 0, "%d is out of range 0..%d", w, MaxWeight)
		case s == sdk.SeverityCritical && w == 0:
			e.add(key, 0, "must be greater than 0")
		}
	}
	for s := range p.SeverityWeights {
		if !s.Valid() {
			e.add("severity_weights", 0, "unknown severity %d", int(s))
		}
	}
	t := p.Thresholds
	switch {
	case t.Degraded <= 0:
		e.add("thresholds.degraded", 0, "must be greater than 0, got %d", t.Degraded)
	case t.Failed > MaxThreshold:
		e.add("thresholds.failed", 0, "%d is over the limit of %d", t.Failed, MaxThreshold)
	case t.Degraded > t.Failed:
		e.add("thresholds.degraded", 0, "%d is above thresholds.failed (%d): want 0 < degraded <= failed", t.Degraded, t.Failed)
	}
	p.validateOverrides(e)
}

// validateOverrides checks each severity override's code and severity, and
// that none lowers a protected finding.
func (p *Policy) validateOverrides(e *errs) {
	for _, code := range slices.Sorted(maps.Keys(p.SeverityOverrides)) {
		key := "severity_overrides." + code
		if !pluginname.ValidCode(code) {
			e.add(key, 0, "%q is not a finding code (<plugin>.<what>, lowercase, e.g. binaries.missing)", code)
		}
		if s := p.SeverityOverrides[code]; !s.Valid() {
			e.add(key, 0, "invalid severity %d", int(s))
		}
	}
	if err := p.CheckOverrides(Floors()); err != nil {
		e.list = append(e.list, err)
	}
}

// validateLimits checks the parallelism bound and the log level.
func (p *Policy) validateLimits(e *errs) {
	if p.AttestationCPUPercent < 0 || p.AttestationCPUPercent > 100 {
		e.add("attestation_cpu_percent", 0, "%d is out of range 0..100 (percent of one CPU; 0 turns pacing off)", p.AttestationCPUPercent)
	}
	if p.MaxParallelPlugins < 1 || p.MaxParallelPlugins > MaxParallelPlugins {
		e.add("max_parallel_plugins", 0, "%d is out of range 1..%d", p.MaxParallelPlugins, MaxParallelPlugins)
	}
	validLevel := false
	for _, l := range LogLevels {
		validLevel = validLevel || p.LogLevel == l
	}
	if !validLevel {
		e.add("log_level", 0, "%q is not one of trace, debug, info, warn, error", p.LogLevel)
	}
}

// pathSuffix names the path of a service binary: ".path" when it was given
// as {path, sha256}, nothing when given as a plain path.
func pathSuffix(p *Policy, name string) string {
	if _, ok := p.lines["service_binaries."+name+".path"]; ok {
		return ".path"
	}
	return ""
}

// LoopbackListen reports whether a listen address (host:port, already
// checked) binds only the loopback: localhost or a loopback IP. An empty
// host means every interface.
func LoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (e.g. 127.0.0.1:8505)", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n < 1 { // ParseUint, unlike Atoi, refuses a sign: "+8505" is not this port to the sandbox
		return fmt.Sprintf("port %q is not a number from 1 to 65535 (digits only)", port)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Sprintf("host %q is not an IP address (or localhost, or empty for every interface)", host)
	}
	return ""
}
