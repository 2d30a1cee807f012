package main

import (
	"encoding/json"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/tpm/eventlog"
)

// pins is what a baseline pins, derived from one measurement.
type pins struct {
	plugins     map[string]string // plugin name -> SHA-256 of attestor-check-<name>
	services    map[string]policy.ServiceBinary
	pcrs        map[int]string      // empty without a TPM
	tpm         bool                // a TPM answered: require_tpm
	secureBoot  bool                // Secure Boot measured on: require_secure_boot
	deployments []string            // ostree deployment_reference values: booted, then next
	bootRef     *eventlog.Reference // this boot's events, where a TPM replayed its log; nil otherwise
	bootRefPath string              // where bootRef was written, for boot_reference; "" = not pinned
	signingKey  string              // signing_key_path of the policy written
	warnings    []string
}

// derivePins reads the pins out of the bundle the real plugins produced,
// and hashes plugin_dir itself to pin every plugin found there.
func derivePins(base *policy.Policy, b *bundle.Bundle) (*pins, error) {
	p := &pins{plugins: map[string]string{}, services: map[string]policy.ServiceBinary{}, pcrs: map[int]string{}}
	if err := p.pinPlugins(base.PluginDir, b); err != nil {
		return nil, err
	}
	if err := p.pinServices(base, b); err != nil {
		return nil, err
	}
	p.tpm = b.TPMAvailable != nil && *b.TPMAvailable
	if p.tpm {
		for k, v := range b.BootMeasurements.PCRs {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i > 23 || !isSHA256(v) {
				return nil, fmt.Errorf("the tpm plugin reported PCR %q = %q, which is not a PCR index and SHA-256", k, v)
			}
			p.pcrs[i] = v
		}
	}
	if err := p.pinBootReference(b); err != nil {
		return nil, err
	}
	p.secureBoot = b.BootMeasurements.SecureBoot != nil && *b.BootMeasurements.SecureBoot
	if err := p.pinDeployments(b); err != nil {
		return nil, err
	}
	p.pinSigningKey(base)
	return p, nil
}

// pinSigningKey keeps the base policy's signing key, or names the default
// one when the base runs without (signing_key_path: ""): a production
// appliance signs its bundles, so that gates and verifiers need no secret.
func (p *pins) pinSigningKey(base *policy.Policy) {
	p.signingKey = base.SigningKeyPath
	if p.signingKey == "" {
		p.signingKey = policy.DefaultSigningKeyPath
		p.warnings = append(p.warnings, fmt.Sprintf(`the base policy has signing_key_path: "" (no bundle_signature): the policy written signs with %s`, p.signingKey))
	}
	if _, err := os.Stat(p.signingKey); err != nil {
		p.warnings = append(p.warnings, fmt.Sprintf("signing key %s does not exist yet: the unit's runtime-attestor-keygen makes it at start (by hand: attestctl keygen --out %s); the daemon does not start without it", p.signingKey, p.signingKey))
	}
}

// pinPlugins hashes every attestor-check-* executable in dir. Where the
// plugin ran, the host's own hash must agree (the file did not change
// between the measurement and now).
func (p *pins) pinPlugins(dir string, b *bundle.Bundle) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("plugin_dir: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), pluginPrefix)
		if !ok || name == "" || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Mode().Perm()&0o111 == 0 {
			continue // not executable: the host does not run it either
		}
		sum, err := hashFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		if c, ok := b.Checks[name]; ok && c.SHA256 != nil && *c.SHA256 != sum {
			return fmt.Errorf("plugin %s changed while it was measured (ran as %s, now %s): run baseline again", name, *c.SHA256, sum)
		}
		p.plugins[name] = sum
	}
	for _, name := range builtin.Names() {
		if _, ok := p.plugins[name]; !ok {
			p.warnings = append(p.warnings, fmt.Sprintf("built-in plugin %s is not in %s: the policy written disables it", name, dir))
		}
	}
	return nil
}

// pinServices pins each service binary to the digest the binaries plugin
// measured. A service the policy lists but the machine lacks is an error:
// pinning it would make the appliance fail at once.
func (p *pins) pinServices(base *policy.Policy, b *bundle.Bundle) error {
	var missing []string
	for name, sb := range base.ServiceBinaries {
		d, ok := b.ServiceDigests[name]
		if !ok || !isSHA256(d) {
			missing = append(missing, fmt.Sprintf("%s (%s)", name, sb.Path))
			continue
		}
		p.services[name] = policy.ServiceBinary{Path: sb.Path, SHA256: d}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("the binaries plugin measured no digest for service_binaries %s: install them, or remove them from the policy, then run baseline again", strings.Join(missing, ", "))
	}
	return nil
}

// ostreeMeasure is the part of the ostree plugin's measurements a baseline
// pins (plugins/ostree/README.md).
type ostreeMeasure struct {
	Reference string `json:"deployment_reference"`
	Next      *struct {
		Kind      string `json:"kind"`
		Reference string `json:"deployment_reference"`
	} `json:"next_deployment"`
}

func (p *pins) pinDeployments(b *bundle.Bundle) error {
	c, ok := b.Checks["ostree"]
	if !ok || len(c.Measurements) == 0 || string(c.Measurements) == "null" {
		return nil
	}
	var m ostreeMeasure
	if err := json.Unmarshal(c.Measurements, &m); err != nil {
		return fmt.Errorf("the ostree plugin's measurements do not decode: %w", err)
	}
	if m.Reference == "" {
		return nil
	}
	if !isSHA256(m.Reference) || (m.Next != nil && m.Next.Reference != "" && !isSHA256(m.Next.Reference)) {
		return fmt.Errorf("the ostree plugin reported a deployment_reference that is not a SHA-256 (%q)", clean(m.Reference))
	}
	p.deployments = append(p.deployments, m.Reference)
	if m.Next != nil && m.Next.Reference != "" && m.Next.Reference != m.Reference {
		p.deployments = append(p.deployments, m.Next.Reference)
		p.warnings = append(p.warnings, fmt.Sprintf("a %s deployment (reference %s) starts at the next boot: it is pinned too; remove it from expected_deployments if you did not stage it", m.Next.Kind, m.Next.Reference))
	}
	return nil
}

// isSHA256 reports whether s is 64 lowercase hex digits, the only form a
// pin may take.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
