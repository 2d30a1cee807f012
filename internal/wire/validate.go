package wire

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/secure-ai/runtime-attestor/internal/canonjson"

	"github.com/secure-ai/runtime-attestor/internal/pluginname"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Limits on what a plugin may send, enforced by both ends.
const (
	MaxFindings       = 4096
	MaxMessageLen     = 4096
	MaxSubjectLen     = 1024
	MaxCodeLen        = 128
	MaxMeasurementKey = 128
)

// ValidName reports whether name is a valid plugin name.
func ValidName(name string) bool { return pluginname.Valid(name) }

// ValidateDescription checks a plugin's description against the protocol
// rules: a valid name, unique finding codes under the plugin's own prefix
// with valid default severities, well-formed fill keys.
func ValidateDescription(d sdk.Description) error {
	if !ValidName(d.Name) {
		return &ProtocolError{Msg: fmt.Sprintf("plugin name %q is not lowercase letters, digits and '_' starting with a letter", d.Name)}
	}
	if d.Version == "" {
		return &ProtocolError{Msg: "plugin describes no version"}
	}
	seen := map[string]bool{}
	for _, f := range d.Findings {
		if err := validateCode(d.Name, f.Code); err != nil {
			return err
		}
		if seen[f.Code] {
			return &ProtocolError{Msg: fmt.Sprintf("finding code %q described twice", f.Code)}
		}
		seen[f.Code] = true
		if !f.DefaultSeverity.Valid() {
			return &ProtocolError{Msg: fmt.Sprintf("finding code %q has invalid default severity %d", f.Code, int(f.DefaultSeverity))}
		}
	}
	for _, k := range d.Fills {
		if !pluginname.ValidKey(k) || len(k) > MaxMeasurementKey {
			return &ProtocolError{Msg: fmt.Sprintf("fill key %q is not a dotted snake_case name", k)}
		}
	}
	return nil
}

func validateCode(name, code string) error {
	if len(code) > MaxCodeLen || !pluginname.ValidCode(code) {
		return &ProtocolError{Msg: fmt.Sprintf("finding code %q is not a dotted snake_case code", code)}
	}
	if !strings.HasPrefix(code, name+".") {
		return &ProtocolError{Msg: fmt.Sprintf("finding code %q does not start with the plugin's name %q", code, name+".")}
	}
	return nil
}

// ValidateMeasurement checks a measurement against the plugin's description:
// every finding has a described code, a valid severity and bounded text, and
// every measurement key is well formed and every value has an RFC 8785
// form, which replaces the value in m. A filled field may be absent: a
// check leaves out what it could not measure.
func ValidateMeasurement(d sdk.Description, m *Measurement) error {
	if len(m.Findings) > MaxFindings {
		return &ProtocolError{Msg: fmt.Sprintf("%d findings, more than the limit of %d", len(m.Findings), MaxFindings)}
	}
	described := make(map[string]bool, len(d.Findings))
	for _, f := range d.Findings {
		described[f.Code] = true
	}
	for i, f := range m.Findings {
		if err := validateCode(d.Name, f.Code); err != nil {
			return err
		}
		if !described[f.Code] {
			return &ProtocolError{Msg: fmt.Sprintf("finding %d has code %q that the plugin does not describe", i, f.Code)}
		}
		if !f.Severity.Valid() {
			return &ProtocolError{Msg: fmt.Sprintf("finding %d (%s) has invalid severity %d", i, f.Code, int(f.Severity))}
		}
		if len(f.Message) > MaxMessageLen || len(f.Subject) > MaxSubjectLen {
			return &ProtocolError{Msg: fmt.Sprintf("finding %d (%s) has a message or subject over the length limit", i, f.Code)}
		}
	}
	for k, v := range m.Measurements {
		if !pluginname.ValidKey(k) || len(k) > MaxMeasurementKey {
			return &ProtocolError{Msg: fmt.Sprintf("measurement key %q is not a dotted snake_case name", k)}
		}
		c, err := signable(v)
		if err != nil {
			return &ProtocolError{Msg: fmt.Sprintf("measurement %q cannot be signed: %v", k, err)}
		}
		// Kept in the form it was checked in: the daemon canonicalises a
		// plugin's answer this once (the bundle recognises canonical values
		// in one pass).
		m.Measurements[k] = c
	}
	return nil
}

// signable returns the RFC 8785 (JCS) canonical form of a measurement
// value, which the daemon's bundle signature needs, or why it has none:
// invalid UTF-8, a lone surrogate escape, a duplicate member name, a
// number out of the IEEE 754 double range.
func signable(v []byte) ([]byte, error) {
	if !utf8.Valid(v) {
		return nil, errors.New("invalid UTF-8")
	}
	return canonjson.Canonical(v)
}
