// Package tp holds what the test plugins under testplugins/ share: the name
// taken from the executable's file name, and a well-behaved check whose
// Measure, Configure and description each plugin bends into its own fault.
//
// Test plugins take their knobs from their Configure config: the daemon
// starts plugins with a minimal environment, so there is no other channel.
package tp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// Name returns the plugin name the executable was installed under: the part
// of its file name after "attestor-check-". The host starts a plugin with
// argv[0] set to its path in the plugin directory, so copies of one binary
// under different names are distinct plugins.
func Name() string {
	return strings.TrimPrefix(filepath.Base(os.Args[0]), "attestor-check-")
}

// OKCode is the info finding every well-behaved answer carries.
func OKCode() string { return Name() + ".ok" }

// Check is a configurable check. The zero value is well behaved: it fills
// nothing, measures the nonce length and answers one info finding.
type Check struct {
	// DescName overrides the described name (default Name()).
	DescName string
	// Codes are extra finding codes to describe (beside OKCode).
	Codes []string
	// OnConfigure, when set, receives the configuration.
	OnConfigure func(ctx context.Context, cfg sdk.Config) error
	// OnMeasure, when set, replaces the well-behaved measurement.
	OnMeasure func(ctx context.Context, req sdk.Request) (*sdk.Result, error)
}

// Describe describes the plugin under its file name.
func (c *Check) Describe() sdk.Description {
	name := c.DescName
	if name == "" {
		name = Name()
	}
	d := sdk.Description{
		Name:    name,
		Version: "1.0.0",
		Summary: "runtime-attestor test plugin",
		Findings: []sdk.FindingSpec{
			{Code: name + ".ok", DefaultSeverity: sdk.SeverityInfo, Description: "the measurement was taken"},
		},
	}
	for _, code := range c.Codes {
		d.Findings = append(d.Findings, sdk.FindingSpec{Code: code, DefaultSeverity: sdk.SeverityLow, Description: "test finding"})
	}
	return d
}

// Configure hands the configuration to OnConfigure. Without OnConfigure it
// takes one optional key, started_file: a file to which it appends its
// process id (as the daemon's PID namespace sees it), so a test can count
// the plugin's starts.
func (c *Check) Configure(ctx context.Context, cfg sdk.Config) error {
	if c.OnConfigure != nil {
		return c.OnConfigure(ctx, cfg)
	}
	var std struct {
		StartedFile string `json:"started_file"`
	}
	if err := cfg.Decode(&std); err != nil {
		return err
	}
	if std.StartedFile != "" {
		return AppendPID(std.StartedFile)
	}
	return nil
}

// PID returns this process's id as the mounted procfs (the daemon's PID
// namespace) sees it; os.Getpid is the id inside the plugin's own namespace.
func PID() int {
	if s, err := os.Readlink("/proc/self"); err == nil {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	return os.Getpid()
}

// AppendPID appends PID() and a newline to path.
func AppendPID(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, PID())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Measure runs OnMeasure, or answers OK.
func (c *Check) Measure(ctx context.Context, req sdk.Request) (*sdk.Result, error) {
	if c.OnMeasure != nil {
		return c.OnMeasure(ctx, req)
	}
	return OK(req), nil
}

// OK is the well-behaved answer: the nonce length as measurement
// "nonce_len" and one info finding OKCode().
func OK(req sdk.Request) *sdk.Result {
	res := sdk.NewResult()
	res.Set("nonce_len", len(req.Nonce))
	res.Addf(OKCode(), sdk.SeverityInfo, Name(), "measured with a %d-byte nonce", len(req.Nonce))
	return res
}
