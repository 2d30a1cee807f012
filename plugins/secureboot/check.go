// Package secureboot is the built-in check that reads the UEFI SecureBoot
// and SetupMode variables from efivarfs and fills
// boot_measurements.secure_boot and boot_measurements.setup_mode.
package secureboot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Version is the plugin's version.
const Version = "1.0.0"

// Finding codes.
const (
	CodeUnavailable     = "secureboot.unavailable"
	CodeDisabled        = "secureboot.disabled"
	CodeSetupMode       = "secureboot.setup_mode"
	CodeVariableMissing = "secureboot.variable_missing"
	CodeMalformed       = "secureboot.malformed"
	CodeUnreadable      = "secureboot.unreadable"
)

// Measurement keys.
const (
	KeySecureBoot = "boot_measurements.secure_boot"
	KeySetupMode  = "boot_measurements.setup_mode"
)

// Default paths.
const (
	DefaultEFIDir     = "/sys/firmware/efi"
	DefaultEFIVarsDir = "/sys/firmware/efi/efivars"
)

// maxVariableBytes bounds a variable read: SecureBoot and SetupMode are 5
// bytes; anything near this size is malformed anyway.
const maxVariableBytes = 4096

// Config is the plugin's configuration.
type Config struct {
	// RequireSecureBoot is the policy's top-level require_secure_boot,
	// injected by the daemon.
	RequireSecureBoot bool `json:"require_secure_boot"`
	// EFIDir is where the kernel exposes the EFI firmware interface; its
	// absence means the machine did not boot through UEFI.
	EFIDir string `json:"efi_dir"`
	// EFIVarsDir is where efivarfs is mounted.
	EFIVarsDir string `json:"efivars_dir"`
}

// DefaultConfig returns the configuration that measures the real system.
func DefaultConfig() Config {
	return Config{EFIDir: DefaultEFIDir, EFIVarsDir: DefaultEFIVarsDir}
}

// Check is the secureboot check.
type Check struct {
	cfg Config
}

var (
	_ sdk.Check      = (*Check)(nil)
	_ sdk.Configurer = (*Check)(nil)
)

// New returns the check with the default configuration.
func New() sdk.Check { return &Check{cfg: DefaultConfig()} }

// Describe implements sdk.Check.
func (c *Check) Describe() sdk.Description {
	return sdk.Description{
		Name:    "secureboot",
		Version: Version,
		Summary: "UEFI Secure Boot and Setup Mode state from the SecureBoot and SetupMode EFI variables",
		Fills:   []string{KeySecureBoot, KeySetupMode},
		Findings: []sdk.FindingSpec{
			{Code: CodeUnavailable, DefaultSeverity: sdk.SeverityInfo,
				Description: "no EFI variables to read: the machine did not boot through UEFI, or efivarfs is not mounted"},
			{Code: CodeDisabled, DefaultSeverity: sdk.SeverityInfo,
				Description: "Secure Boot is not on (off, unsupported by the firmware, no UEFI, or unverifiable); critical when require_secure_boot is set"},
			{Code: CodeSetupMode, DefaultSeverity: sdk.SeverityInfo,
				Description: "the firmware is in Setup Mode (no Platform Key enrolled: anyone can enroll keys); high when require_secure_boot is set"},
			{Code: CodeVariableMissing, DefaultSeverity: sdk.SeverityInfo,
				Description: "efivarfs is mounted but the SecureBoot or SetupMode variable does not exist"},
			{Code: CodeMalformed, DefaultSeverity: sdk.SeverityMedium,
				Description: "a variable's bytes are not a valid EFI boolean variable (truncated, empty, too large, bad value or attributes)"},
			{Code: CodeUnreadable, DefaultSeverity: sdk.SeverityMedium,
				Description: "a variable or the efivarfs directory exists but cannot be read"},
		},
	}
}

// Configure implements sdk.Configurer.
func (c *Check) Configure(_ context.Context, raw sdk.Config) error {
	cfg := DefaultConfig()
	if err := raw.Decode(&cfg); err != nil {
		return err
	}
	for _, p := range []struct{ key, path string }{{"efi_dir", cfg.EFIDir}, {"efivars_dir", cfg.EFIVarsDir}} {
		if !filepath.IsAbs(p.path) {
			return sdk.ConfigErrorf(p.key, "must be an absolute path, got %q", p.path)
		}
	}
	c.cfg = cfg
	return nil
}

// boolState is what is known about one boolean variable.
type boolState int

const (
	stateUnknown boolState = iota // unreadable or malformed
	stateAbsent                   // no such variable, or no UEFI at all
	stateOff
	stateOn
)

// Measure implements sdk.Check.
func (c *Check) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("measure secure boot: %w", err)
	}
	res := sdk.NewResult()
	cfg := c.cfg
	disabledSev, setupSev := sdk.SeverityInfo, sdk.SeverityInfo
	if cfg.RequireSecureBoot {
		disabledSev, setupSev = sdk.SeverityCritical, sdk.SeverityHigh
	}
	required := ""
	if cfg.RequireSecureBoot {
		required = " (require_secure_boot is set)"
	}

	fi, err := os.Stat(cfg.EFIVarsDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.noEFIVars(res, disabledSev, required)
		return res, nil
	case err != nil:
		res.Addf(CodeUnreadable, sdk.SeverityMedium, cfg.EFIVarsDir, "cannot inspect the efivarfs directory: %v", err)
		if cfg.RequireSecureBoot {
			res.Addf(CodeDisabled, disabledSev, cfg.EFIVarsDir, "Secure Boot cannot be confirmed on%s: the efivarfs directory %s cannot be inspected", required, cfg.EFIVarsDir)
		}
		return res, nil
	case !fi.IsDir():
		res.Addf(CodeUnreadable, sdk.SeverityMedium, cfg.EFIVarsDir, "efivarfs path %s is not a directory (%s)", cfg.EFIVarsDir, fi.Mode().Type())
		if cfg.RequireSecureBoot {
			res.Addf(CodeDisabled, disabledSev, cfg.EFIVarsDir, "Secure Boot cannot be confirmed on%s: %s is not a directory", required, cfg.EFIVarsDir)
		}
		return res, nil
	}

	sbPath := filepath.Join(cfg.EFIVarsDir, SecureBootFile)
	sb := c.readBool(ctx, res, sbPath, "SecureBoot")
	switch sb {
	case stateOn:
		res.Set(KeySecureBoot, true)
	case stateOff:
		res.Set(KeySecureBoot, false)
		res.Addf(CodeDisabled, disabledSev, sbPath, "Secure Boot is off: the SecureBoot variable is 0%s", required)
	case stateAbsent:
		res.Set(KeySecureBoot, false)
		res.Addf(CodeDisabled, disabledSev, sbPath, "Secure Boot is not supported by this firmware: the SecureBoot variable does not exist%s", required)
	case stateUnknown:
		if cfg.RequireSecureBoot {
			res.Addf(CodeDisabled, disabledSev, sbPath, "Secure Boot cannot be confirmed on%s: the SecureBoot variable is unreadable or malformed", required)
		}
	}

	smPath := filepath.Join(cfg.EFIVarsDir, SetupModeFile)
	switch c.readBool(ctx, res, smPath, "SetupMode") {
	case stateOn:
		res.Set(KeySetupMode, true)
		res.Addf(CodeSetupMode, setupSev, smPath, "the firmware is in Setup Mode: no Platform Key is enrolled, so Secure Boot keys can be replaced by anyone with access to the firmware%s", required)
	case stateOff:
		res.Set(KeySetupMode, false)
	case stateAbsent, stateUnknown:
		// Reported by readBool; setup_mode stays absent (unknown).
	}
	return res, nil
}

// noEFIVars reports a machine without an efivarfs directory: either no UEFI
// at all (Secure Boot is certainly off) or UEFI with efivarfs not mounted
// (Secure Boot unknown).
func (c *Check) noEFIVars(res *sdk.Result, disabledSev sdk.Severity, required string) {
	cfg := c.cfg
	_, err := os.Stat(cfg.EFIDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Set(KeySecureBoot, false)
		res.Addf(CodeUnavailable, sdk.SeverityInfo, cfg.EFIDir, "no EFI firmware interface: %s does not exist (booted in legacy BIOS mode, or not a UEFI machine)", cfg.EFIDir)
		res.Addf(CodeDisabled, disabledSev, cfg.EFIDir, "Secure Boot is not on: the machine did not boot through UEFI%s", required)
	case err != nil:
		res.Addf(CodeUnavailable, sdk.SeverityInfo, cfg.EFIVarsDir, "no EFI variables: %s does not exist and %s cannot be inspected: %v", cfg.EFIVarsDir, cfg.EFIDir, err)
		if c.cfg.RequireSecureBoot {
			res.Addf(CodeDisabled, disabledSev, cfg.EFIVarsDir, "Secure Boot cannot be confirmed on%s: no EFI variables at %s", required, cfg.EFIVarsDir)
		}
	default:
		res.Addf(CodeUnavailable, sdk.SeverityInfo, cfg.EFIVarsDir, "the machine booted through UEFI (%s exists) but efivarfs is not mounted at %s: Secure Boot state unknown", cfg.EFIDir, cfg.EFIVarsDir)
		if c.cfg.RequireSecureBoot {
			res.Addf(CodeDisabled, disabledSev, cfg.EFIVarsDir, "Secure Boot cannot be confirmed on%s: efivarfs is not mounted at %s", required, cfg.EFIVarsDir)
		}
	}
}

// readBool reads and parses one boolean variable, adding a finding for
// anything but a well-formed value.
func (c *Check) readBool(ctx context.Context, res *sdk.Result, path, name string) boolState {
	data, err := regfile.ReadContext(ctx, path, maxVariableBytes) // a FIFO put in place of a variable cannot hang the check
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Addf(CodeVariableMissing, sdk.SeverityInfo, path, "the %s EFI variable does not exist (%s)", name, path)
		return stateAbsent
	case errors.Is(err, regfile.ErrTooLarge):
		res.Addf(CodeMalformed, sdk.SeverityMedium, path, "the %s EFI variable is malformed: larger than %d bytes", name, maxVariableBytes)
		return stateUnknown
	case err != nil:
		res.Addf(CodeUnreadable, sdk.SeverityMedium, path, "cannot read the %s EFI variable: %v", name, err)
		return stateUnknown
	}
	on, _, err := ParseBool(data)
	if err != nil {
		res.Addf(CodeMalformed, sdk.SeverityMedium, path, "the %s EFI variable is malformed: %v", name, err)
		return stateUnknown
	}
	if on {
		return stateOn
	}
	return stateOff
}
