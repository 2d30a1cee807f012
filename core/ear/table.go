package ear

import "strings"

// The trustworthiness claims (draft-ietf-rats-ar4si) this attestor sets.
// runtime-opaque and storage-opaque are never set: nothing here measures
// memory encryption or sealed storage.
const (
	ClaimInstanceIdentity = "instance-identity"
	ClaimConfiguration    = "configuration"
	ClaimExecutables      = "executables"
	ClaimFileSystem       = "file-system"
	ClaimHardware         = "hardware"
	ClaimSourcedData      = "sourced-data"
)

// primaryClaims are the claims a plugin's submodule always carries, set to
// affirming unless a finding says otherwise. This is the table in
// docs/api.md ("Trustworthiness vector").
func primaryClaims(plugin string) []string {
	switch plugin {
	case "tpm":
		return []string{ClaimHardware, ClaimInstanceIdentity}
	case "secureboot", "policies", "kernel":
		return []string{ClaimConfiguration}
	case "ostree":
		return []string{ClaimFileSystem}
	case "binaries":
		return []string{ClaimExecutables}
	}
	return []string{ClaimSourcedData}
}

// claimFor is the claim a finding of plugin weighs on: the tpm plugin's
// quote, attestation-key and clock findings on instance-identity (the TPM
// could not prove who it is, or was rolled back), its other findings (no
// TPM, PCR mismatches) on hardware; the kernel's taint and module-signature
// findings on executables; every other finding, core.plugin_* faults about
// the plugin included, on the plugin's first primary claim.
func claimFor(plugin, code string) string {
	switch plugin {
	case "tpm":
		for _, p := range []string{"tpm.quote_", "tpm.ak_", "tpm.clock_"} {
			if strings.HasPrefix(code, p) {
				return ClaimInstanceIdentity
			}
		}
		return ClaimHardware
	case "kernel":
		if isCodeOf(plugin, code) && (strings.Contains(code, "taint") || strings.Contains(code, "module")) {
			return ClaimExecutables
		}
	}
	return primaryClaims(plugin)[0]
}
