// Package canonjson writes RFC 8785 (JCS) canonical JSON, the form the
// daemon signs and hashes: object members sorted by their UTF-16 code
// units, no insignificant whitespace, numbers in their ECMAScript shortest
// form, strings with only the mandatory escapes. Input that is canonical
// already (what the daemon serves, what a plugin's encoding/json usually
// writes) is recognised in one pass and not parsed and written again; the
// rest goes through github.com/gowebpki/jcs.
package canonjson

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// Canonical returns the canonical form of the JSON value raw. It refuses
// invalid JSON, invalid UTF-8, lone surrogate escapes, duplicate member
// names at any depth, numbers out of the IEEE 754 double range and
// trailing data.
//
// JCS reads numbers as IEEE 754 doubles: integers beyond 2^53 lose
// precision.
func Canonical(raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return nil, errors.New("canonicalize json: empty input")
	}
	if !utf8.Valid(raw) {
		return nil, errors.New("canonicalize json: invalid utf-8")
	}
	if isCanonical(raw) {
		return bytes.Clone(raw), nil
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalize json: %w", err)
	}
	return out, nil
}
