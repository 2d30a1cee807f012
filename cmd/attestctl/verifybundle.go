package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/secure-ai/runtime-attestor/core/bundle"
)

// maxBundle bounds the bundle read from a file or stdin.
const maxBundle = 32 << 20

func (a *app) verifyBundle(args []string) int {
	fs := a.flagSet("verify-bundle", "--key FILE [BUNDLE|-]",
		"Verifies the HMAC-SHA256 signature (bundle_hmac) of a bundle with the key file\n"+
			"(its raw bytes, as the attestor's hmac_key_path). BUNDLE is a file, or - or\n"+
			"nothing for standard input; it is the bare bundle or the whole answer of\n"+
			"GET /api/v1/attest or POST /api/v1/refresh ({\"state\": ..., \"bundle\": {...}}).\n"+
			"Exit 0 only for an intact signature, 1 for a bad or missing one, 2 for usage\n"+
			"or I/O errors.")
	keyFile := fs.String("key", "", "file holding the HMAC key (required)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if *keyFile == "" {
		return a.usageError(fs, "--key is required")
	}
	if len(pos) > 1 {
		return a.usageError(fs, "verify-bundle takes at most one bundle")
	}
	src := "-"
	if len(pos) == 1 {
		src = pos[0]
	}
	key, err := os.ReadFile(*keyFile)
	if err != nil {
		return a.fail(exitUsage, "read key: %v", err)
	}
	if len(key) == 0 {
		return a.fail(exitUsage, "key file %s is empty", *keyFile)
	}
	raw, err := a.readInput(src, maxBundle)
	if err != nil {
		return a.fail(exitUsage, "%v", err)
	}

	b, err := extractBundle(raw)
	if err != nil {
		return a.fail(exitFail, "bundle NOT verified: %v", err)
	}
	if err := bundle.Verify(b, key); err != nil {
		why := err.Error()
		switch {
		case errors.Is(err, bundle.ErrMismatch):
			why += " (the bundle was changed after it was signed, or signed with another key)"
		case errors.Is(err, bundle.ErrUnsigned):
			why += " (the attestor had no usable HMAC key when it made this bundle)"
		}
		return a.fail(exitFail, "bundle signature INVALID: %s", why)
	}
	var info struct {
		State     string `json:"state"`
		Sequence  uint64 `json:"sequence"`
		Timestamp string `json:"timestamp"`
	}
	_ = json.Unmarshal(b, &info) // the signature is intact: best-effort summary only
	fmt.Fprintf(a.stdout, "bundle signature OK: state %s, attestation %d at %s\n",
		clean(orDash(info.State)), info.Sequence, clean(orDash(info.Timestamp)))
	return exitOK
}

// extractBundle returns the bundle in raw: raw itself when it is a bundle,
// or its "bundle" member when it is an API answer. The bytes are returned
// verbatim.
func extractBundle(raw []byte) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("the input is empty")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("the input is not a JSON object: %w", err)
	}
	if top == nil {
		return nil, errors.New("the input is null, not a bundle")
	}
	if _, ok := top["bundle_hmac"]; ok {
		return raw, nil
	}
	inner, ok := top["bundle"]
	if !ok {
		return raw, nil // Verify says what is missing
	}
	if bytes.Equal(bytes.TrimSpace(inner), []byte("null")) {
		return nil, errors.New("the answer carries no bundle (the attestor is still pending)")
	}
	return inner, nil
}
