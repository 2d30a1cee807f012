package daemon

import (
	"errors"
	"fmt"
	"os"

	"github.com/secure-ai/runtime-attestor/core/filetrust"
	"github.com/secure-ai/runtime-attestor/policy"
)

// trustFiles checks, like sshd's StrictModes, the files the daemon takes
// instructions and secrets from — the policy, the HMAC key, the API token,
// the signing key, the audit MAC key and the plugin folder — and every
// folder above them (core/filetrust). A key that does not exist is the
// engine's business (core.hmac_key, core.signing_key; the audit log makes
// its MAC key); a missing token is refused by CheckFiles. It runs at start (refused: the
// daemon does not start), at every reload (refused: the old policy stays)
// and before every attestation (core.file_trust, high).
func trustFiles(policyPath string, pol *policy.Policy) error {
	uid := os.Geteuid()
	checks := []struct {
		key, path string
		secret    bool
	}{
		{"the policy", policyPath, false},
		{"hmac_key_path", pol.HMACKeyPath, true},
		{"api_token_path", pol.APITokenPath, true},
		{"signing_key_path", pol.SigningKeyPath, true},
		{"audit_key_path", pol.AuditKeyPath, true},
		{"plugin_dir", pol.PluginDir, false},
	}
	var errs []error
	for _, c := range checks {
		if c.path == "" {
			continue
		}
		err := filetrust.Check(c.path, uid)
		if err == nil && c.secret {
			if st, serr := os.Stat(c.path); serr == nil && st.Mode().Perm()&0o077 != 0 {
				err = fmt.Errorf("%s is readable by group or others (mode %#o): run chmod 600 %s", c.path, st.Mode().Perm(), c.path)
			}
		}
		if err == nil || (filetrust.IsNotExist(err) && c.secret) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.key, err))
	}
	return errors.Join(errs...)
}
