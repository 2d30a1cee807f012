// Package builtin is the registry of the built-in check plugins: the one
// place that names them. Everything else (the policy's defaults, the bundle
// merge, the daemon, the Makefile, the tests) iterates it.
//
// It holds data only and imports only the standard library, so that the daemon, the policy and
// attestctl can read it without linking any plugin's code: what a plugin
// needs from the system (its sandbox) is read from the plugin's executable
// itself (core/pluginhost Declarer), never from a compiled-in copy.
//
// Adding a built-in check touches three places: an entry here, its package
// plugins/<name>/ (with a README.md whose finding table matches its
// Describe) and its main cmd/attestor-check-<name>/. The tests of this
// package check that the three agree.
package builtin

import "slices"

// Plugin is one built-in check.
type Plugin struct {
	// Name is plugins.<name> in the policy; the executable is
	// attestor-check-<Name> in plugin_dir, built from
	// cmd/attestor-check-<Name>, its code in plugins/<Name>.
	Name string
	// Fills are the bundle fields the plugin owns: only its measurement of
	// such a field reaches the bundle's top level. Equal to its Describe's
	// Fills.
	Fills []string
	// PolicyKeys are the top-level policy keys the daemon injects into the
	// plugin's configuration (require_tpm, service_binaries, ...); the
	// policy refuses them under plugins.<Name>.config.
	PolicyKeys []string
	// Critical are the finding codes the plugin declares critical: a
	// policy's severity_overrides may not lower them. Equal to the codes
	// its Describe gives SeverityCritical; kept here rather than read from
	// the executable so that a policy's validity does not depend on which
	// executable is installed, and a replaced executable cannot lift a
	// floor by describing a code as less severe.
	Critical []string
}

// All returns the built-in plugins, sorted by name. The slice and its
// contents are the caller's.
func All() []Plugin {
	return []Plugin{
		{
			Name:  "binaries",
			Fills: []string{"service_digests"},
			// service_binaries: {name: {path, sha256}}
			PolicyKeys: []string{"service_binaries"},
		},
		{
			Name:  "kernel",
			Fills: []string{"kernel_cmdline", "kernel_lockdown"},
		},
		{
			Name:  "ostree",
			Fills: []string{"deployment_digest"},
		},
		{
			Name:       "policies",
			Fills:      []string{"policy_digest", "registry_manifest_hash"},
			PolicyKeys: []string{"policy_files"},
		},
		{
			Name:       "secureboot",
			Fills:      []string{"boot_measurements.secure_boot", "boot_measurements.setup_mode"},
			PolicyKeys: []string{"require_secure_boot"},
		},
		{
			Name:       "tpm",
			Fills:      []string{"tpm_available", "tpm_quote_verified", "boot_measurements.pcrs", "boot_measurements.event_log"},
			PolicyKeys: []string{"require_tpm", "expected_pcrs", "boot_reference"},
			Critical: []string{
				"tpm.clock_rollback",
				"tpm.quote_bad_magic",
				"tpm.quote_bad_type",
				"tpm.quote_malformed",
				"tpm.quote_nonce_mismatch",
				"tpm.quote_pcr_digest_mismatch",
				"tpm.quote_selection_mismatch",
				"tpm.quote_signature_invalid",
			},
		},
	}
}

// FilePrefix starts the file name of every plugin executable, built-in or
// not: attestor-check-<name>.
const FilePrefix = "attestor-check-"

// Names returns the built-in plugins' names, sorted.
func Names() []string {
	all := All()
	out := make([]string, len(all))
	for i, p := range all {
		out[i] = p.Name
	}
	return out
}

// Lookup returns the built-in plugin called name.
func Lookup(name string) (Plugin, bool) {
	for _, p := range All() {
		if p.Name == name {
			return p, true
		}
	}
	return Plugin{}, false
}

// Is reports whether name is a built-in plugin.
func Is(name string) bool {
	_, ok := Lookup(name)
	return ok
}

// FieldOwners maps every bundle field a built-in owns to its plugin.
func FieldOwners() map[string]string {
	out := map[string]string{}
	for _, p := range All() {
		for _, f := range p.Fills {
			out[f] = p.Name
		}
	}
	return out
}

// CriticalCodes returns, sorted, every finding code a built-in declares
// critical.
func CriticalCodes() []string {
	var out []string
	for _, p := range All() {
		out = append(out, p.Critical...)
	}
	slices.Sort(out)
	return out
}
