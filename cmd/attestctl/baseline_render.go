package main

import (
	"bytes"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// section is one commented block of the baseline policy.
type section struct {
	comment string
	keys    []string
}

// baselineSections orders the policy's top-level keys and says what each
// block does. A key of the base policy not named here is carried over at
// the end.
var baselineSections = []section{
	{`--- Hardware roots ------------------------------------------------------------
require_tpm and require_secure_boot are true when this machine has them:
losing either later is a critical finding (state failed).
boot_reference is the boot reference recorded here from the event log the
tpm plugin replayed to the TPM's PCRs (docs/tpm.md): every event of every
replayed PCR. A boot that measures another event is named (which PCR,
which event, which digest). After a firmware, shim or kernel update, add
the new boot with attestctl boot-reference record --merge, or run
attestctl baseline again.
expected_pcrs pins the raw values of the PCRs the boot reference does not
cover (the SHA-256 bank; plugins.tpm.config.pcrs selects which, 0..7 by
default); all of them when no event log replayed. Empty without a TPM.`,
		[]string{"require_tpm", "require_secure_boot", "boot_reference", "expected_pcrs"}},
	{`--- Service binaries -----------------------------------------------------------
Every service binary, pinned to the digest measured here. A different file
is binaries.digest_mismatch (high), a missing one binaries.missing.
Upgrading a service: put the new digest here, then SIGHUP the daemon.`,
		[]string{"service_binaries", "policy_files"}},
	{`--- Plugins -------------------------------------------------------------------
Every plugin found in plugin_dir, pinned to its SHA-256: a different
executable is not started (core.plugin_untrusted). The ostree plugin's
expected_deployments pins the booted deployment's reference (and the staged
one's, when there was one): another deployment is ostree.unexpected_deployment.
Upgrading a plugin without a failed window: set enabled: false and reload,
swap the file, pin its new SHA-256 with enabled: true and reload (docs/
deployment.md, "Rotating the HMAC key and the API token, upgrading a pinned
plugin").`,
		[]string{"plugins", "run_unlisted_plugins", "resident_plugins", "plugin_dir"}},
	{`--- When and how --------------------------------------------------------------`,
		[]string{"refresh_interval", "plugin_timeout", "attestation_timeout", "max_parallel_plugins"}},
	{`--- Signing identity ------------------------------------------------------------
signing_key_path signs every bundle (bundle_signature) and EAR result, so a
gate or verifier needs only the public key (signing.key.pub beside it:
attestctl gate --pubkey). The unit's runtime-attestor-keygen makes the key at
first start; the daemon does not start without it.`,
		[]string{"signing_key_path", "evidence_tpm_device", "evidence_tpm_socket", "evidence_pcrs", "verdict_pcr", "verdict_log_path"}},
	{`--- Files and addresses ---------------------------------------------------------
Carried over from the policy this baseline started from.`,
		[]string{"hmac_key_path", "api_token_path", "listen", "audit_log_path", "log_level"}},
	{`--- From findings to state ------------------------------------------------------
Carried over. failed holds until the daemon restarts.`,
		[]string{"severity_weights", "thresholds", "severity_overrides"}},
}

// renderBaseline writes the production policy: the base document with the
// pins applied, one commented section at a time.
func renderBaseline(base map[string]any, p *pins, from string, now time.Time) ([]byte, error) {
	doc := applyPins(base, p)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# runtime-attestor production policy written by `attestctl baseline`\n")
	fmt.Fprintf(&buf, "# on %s from %s.\n", now.Format(time.RFC3339), from)
	fmt.Fprintf(&buf, "#\n# It pins what this machine measured when it was known to be good. Every\n")
	fmt.Fprintf(&buf, "# key is described in docs/policy.md; run the daemon with it and check that\n")
	fmt.Fprintf(&buf, "# `attestctl status` says attested before you install it fleet-wide.\n")
	done := map[string]bool{}
	notes := machineNotes(p)
	for i, s := range baselineSections {
		comment := s.comment
		if n := notes[i]; n != "" {
			comment += "\n" + n
		}
		if err := writeSection(&buf, comment, s.keys, doc, done); err != nil {
			return nil, err
		}
	}
	var rest []string
	for k := range doc {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	if err := writeSection(&buf, "--- Other settings carried over ---------------------------------------------", rest, doc, done); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeSection(buf *bytes.Buffer, comment string, keys []string, doc map[string]any, done map[string]bool) error {
	var present []string
	for _, k := range keys {
		if _, ok := doc[k]; ok && !done[k] {
			present = append(present, k)
		}
	}
	if len(present) == 0 {
		return nil
	}
	buf.WriteString("\n")
	for _, line := range strings.Split(comment, "\n") {
		buf.WriteString(strings.TrimRight("# "+line, " ") + "\n")
	}
	for _, k := range present {
		done[k] = true
		var node yaml.Node
		if err := node.Encode(map[string]any{k: doc[k]}); err != nil {
			return fmt.Errorf("encode %s: %w", k, err)
		}
		enc := yaml.NewEncoder(buf)
		enc.SetIndent(2)
		if err := enc.Encode(&node); err != nil {
			return fmt.Errorf("encode %s: %w", k, err)
		}
		enc.Close()
	}
	return nil
}

// applyPins returns the base document with the pins and the production
// switches set.
func applyPins(base map[string]any, p *pins) map[string]any {
	doc := deepCopy(base).(map[string]any)
	doc["require_tpm"] = p.tpm
	doc["require_secure_boot"] = p.secureBoot
	doc["expected_pcrs"] = p.unreferencedPCRs()
	doc["boot_reference"] = p.bootRefPath
	doc["signing_key_path"] = p.signingKey
	sb := map[string]any{}
	for name, s := range p.services {
		sb[name] = map[string]any{"path": s.Path, "sha256": s.SHA256}
	}
	doc["service_binaries"] = sb
	doc["run_unlisted_plugins"] = false
	plugins, _ := doc["plugins"].(map[string]any)
	if plugins == nil {
		plugins = map[string]any{}
	}
	for name, sum := range p.plugins {
		m, _ := plugins[name].(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		m["sha256"] = sum
		if _, ok := m["enabled"]; !ok {
			m["enabled"] = true
		}
		plugins[name] = m
	}
	for name, v := range plugins { // listed, not in plugin_dir: disabled rather than core.plugin_missing
		if _, ok := p.plugins[name]; ok {
			continue
		}
		m, _ := v.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		delete(m, "sha256")
		m["enabled"] = false
		plugins[name] = m
	}
	for _, name := range builtinsMissing(p) {
		if _, ok := plugins[name]; !ok {
			plugins[name] = map[string]any{"enabled": false}
		}
	}
	if len(p.deployments) > 0 {
		m, _ := plugins["ostree"].(map[string]any)
		if m == nil {
			m = map[string]any{"enabled": true}
		}
		cfg, _ := m["config"].(map[string]any)
		if cfg == nil {
			cfg = map[string]any{}
		}
		cfg["expected_deployments"] = append([]string{}, p.deployments...)
		m["config"] = cfg
		plugins["ostree"] = m
	}
	doc["plugins"] = plugins
	return doc
}

func builtinsMissing(p *pins) []string {
	var out []string
	for _, w := range builtin.Names() {
		if _, ok := p.plugins[w]; !ok {
			out = append(out, w)
		}
	}
	return out
}

// machineNotes says, per section of baselineSections, what this machine
// measured.
func machineNotes(p *pins) map[int]string {
	tpm, sb := "no TPM answered: require_tpm stays false", "Secure Boot not on: require_secure_boot stays false"
	if p.tpm {
		tpm = fmt.Sprintf("a TPM answered: %d PCR values pinned, no boot reference (no event log replayed)", len(p.unreferencedPCRs()))
		if p.bootRefPath != "" {
			tpm = fmt.Sprintf("a TPM answered: boot reference %s (PCRs %s), %d other PCR values pinned",
				p.bootRefPath, joinPCRs(p.bootRef.PCRList()), len(p.unreferencedPCRs()))
		}
	}
	if p.secureBoot {
		sb = "Secure Boot on"
	}
	dep := "not an ostree system (no deployment_reference): expected_deployments is not set"
	if len(p.deployments) > 0 {
		dep = fmt.Sprintf("%d ostree deployment reference(s) pinned", len(p.deployments))
	}
	return map[int]string{
		0: "This machine: " + tpm + "; " + sb + ".",
		2: fmt.Sprintf("This machine: %d plugins pinned; %s.", len(p.plugins), dep),
	}
}
