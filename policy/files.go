package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/secure-ai/runtime-attestor/internal/regfile"
)

// Minimum sizes of the secrets the policy names.
const (
	MinTokenBytes   = 16
	MinHMACKeyBytes = 32
)

// CheckFiles checks the secret files the policy names, as the daemon does
// at start (a bad one and it does not start):
//
//   - api_token_path, when set, must be a readable regular file that is not
//     accessible to group or others (0600 or 0400) and holds at least
//     MinTokenBytes bytes once surrounding whitespace is trimmed.
//   - hmac_key_path, when the file exists, must be a readable regular file
//     not accessible to group or others and at least MinHMACKeyBytes long
//     (the key is its raw bytes). A missing key file is not an error here:
//     the daemon then runs unsigned and reports core.hmac_key.
//   - signing_key_path, when set, must exist (else the error names the
//     attestctl keygen command that makes it) and be a readable regular
//     file not accessible to group or others.
//
// The secrets are read only to measure them; nothing is kept. Every
// problem is an *Error naming the key.
func (p *Policy) CheckFiles() error {
	e := &errs{lines: p.lines}
	if p.APITokenPath != "" {
		data, missing, err := readSecret(p.APITokenPath)
		switch {
		case missing:
			e.add("api_token_path", 0, "%s does not exist (set api_token_path: \"\" to refuse every refresh)", p.APITokenPath)
		case err != nil:
			e.add("api_token_path", 0, "%v", err)
		case len(bytes.TrimSpace(data)) == 0:
			e.add("api_token_path", 0, "%s is empty", p.APITokenPath)
		case len(bytes.TrimSpace(data)) < MinTokenBytes:
			e.add("api_token_path", 0, "the token in %s is %d bytes, shorter than %d", p.APITokenPath, len(bytes.TrimSpace(data)), MinTokenBytes)
		}
	}
	if p.HMACKeyPath != "" {
		data, missing, err := readSecret(p.HMACKeyPath)
		switch {
		case missing:
			// runs unsigned, reported as core.hmac_key
		case err != nil:
			e.add("hmac_key_path", 0, "%v", err)
		case len(data) < MinHMACKeyBytes:
			e.add("hmac_key_path", 0, "the key in %s is %d bytes, shorter than %d", p.HMACKeyPath, len(data), MinHMACKeyBytes)
		}
	}
	p.checkSigningKey(e)
	return e.err()
}

// readSecret reads a small secret file, refusing anything but a regular
// file closed to group and others.
func readSecret(path string) (data []byte, missing bool, err error) {
	f, st, err := regfile.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	if errors.Is(err, regfile.ErrNotRegular) {
		return nil, false, fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, false, fmt.Errorf("%s is accessible to group or others (mode %#o): run chmod 600 %s", path, perm, path)
	}
	const limit = 64 << 10
	data, err = io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if len(data) > limit {
		return nil, false, fmt.Errorf("%s is larger than %d bytes: not a key", path, limit)
	}
	return data, false, nil
}
