package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-ai/runtime-attestor/internal/canonjson"
)

// Canonical returns the RFC 8785 (JCS) canonical form of the JSON value raw
// (package internal/canonjson): object members sorted by their UTF-16 code
// units, no insignificant whitespace, numbers in their ECMAScript shortest
// form, strings with only the mandatory escapes. It refuses invalid JSON,
// invalid UTF-8, lone surrogate escapes, duplicate member names at any
// depth, numbers out of the IEEE 754 double range and trailing data.
//
// JCS reads numbers as IEEE 754 doubles: integers beyond 2^53 lose
// precision. The fields the daemon fills stay far below that.
//
// Input already in canonical form (what the daemon serves, what a verifier
// receives) is recognised in one pass and returned as a copy without being
// parsed and written again.
func Canonical(raw []byte) ([]byte, error) { return canonjson.Canonical(raw) }

// SigningInput returns the bytes that bundle_hmac signs: the canonical
// (JCS) JSON of the bundle raw with its top-level "bundle_hmac" member
// removed (if present). raw must be a JSON object. Members named
// bundle_hmac below the top level are kept.
func SigningInput(raw []byte) ([]byte, error) {
	members, err := topLevel(raw)
	if err != nil {
		return nil, err
	}
	return signingInput(members)
}

func signingInput(members map[string]json.RawMessage) ([]byte, error) {
	return canonicalWithout(members, "bundle_hmac")
}

// canonicalWithout returns the canonical JSON of the object members (as
// topLevel returns them: canonical values) without the top-level members
// named drop.
func canonicalWithout(members map[string]json.RawMessage, drop ...string) ([]byte, error) {
	out, err := assemble(members, drop...)
	if err != nil {
		return nil, fmt.Errorf("signing input: %w", err)
	}
	return out, nil
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// topLevel splits a JSON object into its members, refusing anything else
// and duplicate member names.
func topLevel(raw []byte) (map[string]json.RawMessage, error) {
	c, err := Canonical(raw)
	if err != nil {
		return nil, err
	}
	if len(c) == 0 || c[0] != '{' {
		return nil, errors.New("bundle is not a JSON object")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(c, &members); err != nil {
		return nil, fmt.Errorf("bundle is not a JSON object: %w", err)
	}
	return members, nil
}

// CanonicalObject returns the canonical JSON of the object whose members
// are members (each value JSON, in any form): every value is
// canonicalised on its own (one pass when it is canonical already) and
// the object assembled around them, without the whole being parsed again.
func CanonicalObject(members map[string]json.RawMessage) ([]byte, error) {
	canon := make(map[string]json.RawMessage, len(members))
	for k, v := range members {
		c, err := Canonical(v)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", k, err)
		}
		canon[k] = c
	}
	return assemble(canon)
}
