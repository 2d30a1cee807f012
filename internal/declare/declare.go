// Package declare is the declare run: how the plugin host learns, from a
// plugin executable itself, what the plugin needs from the system (its
// sandbox) under one configuration, and what it describes (name, version,
// bundle fields, finding codes), before the plugin's real start.
//
// The host starts the verified plugin file the way it starts every plugin
// (through its launcher, from the descriptor it hashed), but confined to
// nothing: Landlock grants no file, seccomp's plugin profile forbids
// execve and every socket but a Unix one, and no socket folder is made. It
// sets Env to EnvValue beside the handshake cookie and gives the plugin's
// configuration (a JSON object) on stdin, a sealed memory file. The SDK's
// Serve, seeing that, configures the check, writes one Declaration as JSON
// on stdout and exits 0, without go-plugin, gRPC or TLS.
//
// Everything a plugin writes is untrusted: Decode bounds and checks it.
package declare

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// Env names the variable that asks a plugin for a declare run; its value
// is EnvValue.
const (
	Env      = "RUNTIME_ATTESTOR_DECLARE"
	EnvValue = "1"
)

// Protocol is the declare protocol's version: what the host sets (Env),
// what it gives on stdin and what a Declaration means. It is part of the
// key of every declaration the host keeps across restarts, so a host that
// speaks another version runs the plugins again instead of reading their
// old declarations; change it with any change of that meaning.
const Protocol = 1

// Bounds of a declare run.
const (
	// MaxConfig bounds the configuration the plugin reads on stdin (a
	// policy that lists thousands of service binaries stays far below).
	MaxConfig = 16 << 20
	// MaxOutput bounds the declaration the host reads on stdout.
	MaxOutput = 1 << 20
	// MaxPaths bounds the entries of a declared sandbox, all lists
	// together, and MaxPathLen each entry (PATH_MAX).
	MaxPaths   = 16384
	MaxPathLen = 4096
)

// Finding is one finding code the plugin can emit.
type Finding struct {
	Code        string `json:"code"`
	Severity    string `json:"severity"` // info, low, medium, high, critical
	Description string `json:"description"`
}

// Declaration is what a declare run prints.
type Declaration struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Summary  string    `json:"summary,omitempty"`
	Fills    []string  `json:"fills,omitempty"`
	Findings []Finding `json:"findings,omitempty"`
	// Sandbox is what the check declares under the configuration; nil when
	// it declares nothing (it is not a Sandboxer).
	Sandbox *sandbox.Rules `json:"sandbox,omitempty"`
	// ConfigError is the check's refusal of the configuration; Sandbox is
	// then nil.
	ConfigError string `json:"config_error,omitempty"`
}

// Encode writes d as one line of JSON.
func Encode(w io.Writer, d Declaration) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("write the declaration: %w", err)
	}
	return nil
}

// Decode parses what a declare run printed: exactly one JSON object of the
// Declaration's shape (no unknown member, nothing after it), at most
// MaxOutput bytes, whose sandbox passes CheckRules. It does not check the
// description beyond its shape; the host does.
func Decode(raw []byte) (Declaration, error) {
	if len(raw) > MaxOutput {
		return Declaration{}, fmt.Errorf("declaration of %d bytes, over the %d-byte limit", len(raw), MaxOutput)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return Declaration{}, errors.New("no declaration on stdout")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d Declaration
	if err := dec.Decode(&d); err != nil {
		return Declaration{}, fmt.Errorf("declaration is not the expected JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Declaration{}, errors.New("declaration is followed by more output")
	}
	if d.Sandbox != nil && d.ConfigError != "" {
		return Declaration{}, errors.New("declaration has both a sandbox and a configuration error")
	}
	if d.Sandbox != nil {
		if err := CheckRules(*d.Sandbox); err != nil {
			return Declaration{}, fmt.Errorf("declared sandbox: %w", err)
		}
	}
	return d, nil
}

// CheckRules refuses a declared sandbox the host would never grant as
// written: more than MaxPaths entries, an entry longer than MaxPathLen, a
// path that is empty, relative, not clean or holds a NUL byte, or the root
// folder itself (a rule on "/" would grant the whole file system).
func CheckRules(r sandbox.Rules) error {
	if err := r.Validate(); err != nil {
		return err
	}
	lists := []struct {
		name  string
		paths []string
	}{{"read_only", r.ReadOnly}, {"read_write", r.ReadWrite}, {"exec", r.Exec}, {"devices", r.Devices}, {"unix_sockets", r.UnixSockets}}
	n := len(r.BindTCP) + len(r.ConnectTCP)
	for _, l := range lists {
		n += len(l.paths)
		for i, p := range l.paths {
			switch {
			case len(p) > MaxPathLen:
				return fmt.Errorf("%s[%d]: path of %d bytes, over %d", l.name, i, len(p), MaxPathLen)
			case p == "/":
				return fmt.Errorf("%s[%d]: the root folder \"/\" (the whole file system) is never granted", l.name, i)
			}
		}
	}
	if n > MaxPaths {
		return fmt.Errorf("%d entries, over the limit of %d", n, MaxPaths)
	}
	return nil
}
