package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Check is what a plugin author implements.
type Check interface {
	// Describe returns the plugin's identity, the bundle fields it fills and
	// every finding code it can emit. It must be cheap, constant for the
	// life of the process and free of side effects.
	Describe() Description
	// Measure takes one measurement. ctx carries the deadline set by the
	// daemon: return promptly when it is done. Findings describe what is
	// wrong; an error means the measurement itself could not be taken (the
	// daemon reports it as core.plugin_failed). Measure may be called many
	// times over the life of the process, never concurrently.
	Measure(ctx context.Context, req Request) (*Result, error)
}

// Configurer is implemented by checks that take configuration. Configure is
// called once, before the first Measure, with the plugin's subtree of the
// policy (plugins.<name>.config). Return a *ConfigError (see Config.Decode)
// for a bad configuration: the daemon then refuses the policy and names the
// key.
type Configurer interface {
	Configure(ctx context.Context, cfg Config) error
}

// Description identifies a plugin.
type Description struct {
	// Name is the plugin's name: lowercase letters, digits and '_', the part
	// after "attestor-check-" in the executable's name. Every finding code
	// starts with Name + ".".
	Name string
	// Version is the plugin's own version, free-form (semver recommended).
	Version string
	// Summary says in one line what the plugin inspects.
	Summary string
	// Fills lists the bundle fields the plugin's measurements fill, as keys
	// of Result.Measurements ("tpm_available", "boot_measurements.pcrs").
	// The daemon places a field in the bundle only for the built-in plugin
	// that owns it; other plugins' measurements appear under checks.<name>.
	Fills []string
	// Findings lists every finding code the plugin can emit.
	Findings []FindingSpec
}

// FindingSpec documents one finding code.
type FindingSpec struct {
	Code            string
	DefaultSeverity Severity
	Description     string
}

// Request is one measurement request.
type Request struct {
	// Nonce is fresh random data from the daemon, different for every
	// attestation; use it for anything that proves freshness (a TPM quote).
	Nonce []byte
	// Deadline is when the daemon stops waiting (also ctx's deadline).
	Deadline time.Time
	// Logger writes hclog JSON to stderr; the daemon re-logs it under the
	// plugin's name. Never write to stdout.
	Logger hclog.Logger
}

// Result is what one measurement found.
type Result struct {
	// Measurements maps a bundle field (see Description.Fills) or a
	// plugin-specific name to a JSON-encodable value.
	Measurements map[string]any
	// Findings lists what is wrong or noteworthy.
	Findings []Finding
}

// NewResult returns an empty result ready to fill.
func NewResult() *Result { return &Result{Measurements: map[string]any{}} }

// Set records a measurement.
func (r *Result) Set(key string, value any) {
	if r.Measurements == nil {
		r.Measurements = map[string]any{}
	}
	r.Measurements[key] = value
}

// Add appends a finding.
func (r *Result) Add(f Finding) { r.Findings = append(r.Findings, f) }

// Addf appends a finding with a formatted message.
func (r *Result) Addf(code string, sev Severity, subject, format string, args ...any) {
	r.Add(Finding{Code: code, Severity: sev, Subject: subject, Message: fmt.Sprintf(format, args...)})
}

// Finding is one thing a check found.
type Finding struct {
	// Code is stable and dotted: "<plugin>.<what>", e.g. "binaries.missing".
	Code string `json:"code"`
	// Severity weighs the finding in the attestation state.
	Severity Severity `json:"severity"`
	// Message says what was found, precisely, for a human.
	Message string `json:"message"`
	// Subject names the thing the finding is about (a path, a PCR, a key).
	Subject string `json:"subject,omitempty"`
}

// Config is a plugin's configuration as the JSON object the daemon sent.
type Config struct {
	raw []byte
}

// NewConfig wraps a JSON object as a Config: what a check's own test passes
// to Configure, or to the function that parses its configuration.
func NewConfig(raw []byte) Config { return Config{raw: raw} }

// Raw returns the configuration's JSON bytes.
func (c Config) Raw() []byte { return c.raw }

// Decode decodes the configuration into v (a pointer to a struct with json
// tags), refusing unknown keys and wrong types. Its error is a *ConfigError
// naming the key.
func (c Config) Decode(v any) error {
	raw := bytes.TrimSpace(c.raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return &ConfigError{Msg: "trailing data after the configuration object"}
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		key := typeErr.Field
		return &ConfigError{Key: key, Msg: fmt.Sprintf("wrong type: got %s, want %s", typeErr.Value, typeErr.Type)}
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		return &ConfigError{Key: strings.Trim(strings.TrimPrefix(msg, unknown), `"`), Msg: "unknown key"}
	}
	return &ConfigError{Msg: err.Error()}
}

// ConfigError is a bad configuration value. Key is the dotted path inside
// the plugin's config ("paths.efivars"), empty for the whole object.
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// ConfigErrorf returns a *ConfigError for key.
func ConfigErrorf(key, format string, args ...any) error {
	return &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)}
}
