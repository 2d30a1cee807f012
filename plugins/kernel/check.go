// Package kernel is the built-in check that measures the running kernel:
// its command line, lockdown mode, taint flags and module signature
// enforcement, held against the policy's requirements. It fills
// kernel_cmdline and kernel_lockdown.
package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Version is the plugin's version.
const Version = "1.1.0"

// Finding codes.
const (
	CodeUnreadable           = "kernel.unreadable"
	CodeMalformed            = "kernel.malformed"
	CodeLockdownUnavailable  = "kernel.lockdown_unavailable"
	CodeLockdownBelowMinimum = "kernel.lockdown_below_minimum"
	CodeParamMissing         = "kernel.param_missing"
	CodeParamForbidden       = "kernel.param_forbidden"
	CodeTainted              = "kernel.tainted"
	CodeModuleSigUnavailable = "kernel.module_sig_unavailable"
	CodeModuleSigNotEnforced = "kernel.module_sig_not_enforced"
)

// Measurement keys.
const (
	KeyCmdline                 = "kernel_cmdline"
	KeyLockdown                = "kernel_lockdown"
	KeyTainted                 = "tainted"
	KeyTaintFlags              = "taint_flags"
	KeyModuleSigEnforce        = "module_sig_enforce"
	KeyModuleSigEnforceCmdline = "module_sig_enforce_cmdline"
	KeyModuleSigEnforced       = "module_sig_enforced"
	KeyModuleSigEnforcedReason = "module_sig_enforced_reason"
)

// Reasons in module_sig_enforced_reason.
const (
	// SigEnforcedBySigEnforce: sig_enforce reads Y.
	SigEnforcedBySigEnforce = "sig_enforce"
	// SigEnforcedByLockdown: sig_enforce reads N (or cannot be read) but
	// lockdown is integrity or confidentiality, and the kernel's
	// module_sig_check() refuses a module without a valid signature when
	// security_locked_down(LOCKDOWN_MODULE_SIGNATURE) says so.
	SigEnforcedByLockdown = "lockdown"
	// SigNotEnforced: neither; the kernel loads unsigned modules.
	SigNotEnforced = "none"
)

// LockdownUnavailable is kernel_lockdown when the kernel exposes no
// lockdown file.
const LockdownUnavailable = "unavailable"

// Default paths.
const (
	DefaultCmdlinePath    = "/proc/cmdline"
	DefaultLockdownPath   = "/sys/kernel/security/lockdown"
	DefaultTaintedPath    = "/proc/sys/kernel/tainted"
	DefaultSigEnforcePath = "/sys/module/module/parameters/sig_enforce"
	DefaultModulesPath    = "/proc/modules"
)

// MaxFileBytes bounds every read: /proc/cmdline is at most a few KiB, the
// other files a few bytes.
const MaxFileBytes = 64 << 10

// Config is the plugin's configuration.
type Config struct {
	CmdlinePath    string `json:"cmdline_path"`
	LockdownPath   string `json:"lockdown_path"`
	TaintedPath    string `json:"tainted_path"`
	SigEnforcePath string `json:"sig_enforce_path"`
	// ModulesPath exists when the kernel can load modules at all.
	ModulesPath string `json:"modules_path"`

	// RequiredParams must be on the command line: "name" or "name=value".
	RequiredParams []string `json:"required_params"`
	// ForbiddenParams must not be on the command line: "name" or
	// "name=value".
	ForbiddenParams []string `json:"forbidden_params"`
	// MinLockdown is the weakest acceptable lockdown mode: none (default),
	// integrity or confidentiality.
	MinLockdown string `json:"min_lockdown"`
	// ToleratedTaints are taint flags (letters or names) that are not
	// findings.
	ToleratedTaints []string `json:"tolerated_taints"`
	// RequireModuleSigEnforce requires the kernel to refuse unsigned
	// modules.
	RequireModuleSigEnforce bool `json:"require_module_sig_enforce"`
}

// DefaultConfig returns the configuration that measures the real system
// and requires nothing beyond an untainted kernel.
func DefaultConfig() Config {
	return Config{
		CmdlinePath:    DefaultCmdlinePath,
		LockdownPath:   DefaultLockdownPath,
		TaintedPath:    DefaultTaintedPath,
		SigEnforcePath: DefaultSigEnforcePath,
		ModulesPath:    DefaultModulesPath,
		MinLockdown:    "none",
	}
}

// rules is a validated configuration.
type rules struct {
	cfg       Config
	required  []ParamPattern
	forbidden []ParamPattern
	minimum   Lockdown
	tolerated uint64 // bit mask
}

func compile(cfg Config) (rules, error) {
	r := rules{cfg: cfg}
	for _, p := range []struct{ key, path string }{
		{"cmdline_path", cfg.CmdlinePath},
		{"lockdown_path", cfg.LockdownPath},
		{"tainted_path", cfg.TaintedPath},
		{"sig_enforce_path", cfg.SigEnforcePath},
		{"modules_path", cfg.ModulesPath},
	} {
		if !filepath.IsAbs(p.path) {
			return r, sdk.ConfigErrorf(p.key, "must be an absolute path, got %q", p.path)
		}
	}
	for i, s := range cfg.RequiredParams {
		p, err := ParseParamPattern(s)
		if err != nil {
			return r, sdk.ConfigErrorf("required_params", "entry %d: %v", i, err)
		}
		r.required = append(r.required, p)
	}
	for i, s := range cfg.ForbiddenParams {
		p, err := ParseParamPattern(s)
		if err != nil {
			return r, sdk.ConfigErrorf("forbidden_params", "entry %d: %v", i, err)
		}
		for j, req := range r.required {
			if len(p.MatchesAny([]Param{{Name: req.Name, Value: req.Value, HasValue: req.HasValue}})) > 0 {
				return r, sdk.ConfigErrorf("forbidden_params", "entry %d %q forbids what required_params entry %d %q requires", i, s, j, req)
			}
		}
		r.forbidden = append(r.forbidden, p)
	}
	min := cfg.MinLockdown
	if min == "" {
		min = "none"
	}
	m, err := ParseLockdownMode(min)
	if err != nil {
		return r, sdk.ConfigErrorf("min_lockdown", "%v", err)
	}
	r.minimum = m
	for i, s := range cfg.ToleratedTaints {
		f, ok := LookupTaint(s)
		if !ok {
			return r, sdk.ConfigErrorf("tolerated_taints", "entry %d: unknown taint flag %q (want a letter such as \"O\" or a name such as \"oot_module\")", i, s)
		}
		r.tolerated |= 1 << f.Bit
	}
	return r, nil
}

// Check is the kernel check.
type Check struct {
	rules rules
}

var (
	_ sdk.Check      = (*Check)(nil)
	_ sdk.Configurer = (*Check)(nil)
)

// New returns the check with the default configuration.
func New() sdk.Check {
	r, err := compile(DefaultConfig())
	if err != nil {
		panic("kernel: default configuration is invalid: " + err.Error())
	}
	return &Check{rules: r}
}

// Describe implements sdk.Check.
func (c *Check) Describe() sdk.Description {
	return sdk.Description{
		Name:    "kernel",
		Version: Version,
		Summary: "kernel command line, lockdown mode, taint flags and module signature enforcement",
		Fills:   []string{KeyCmdline, KeyLockdown},
		Findings: []sdk.FindingSpec{
			{Code: CodeUnreadable, DefaultSeverity: sdk.SeverityMedium,
				Description: "a kernel file that should exist (command line, taint, sig_enforce, lockdown) is missing or cannot be read"},
			{Code: CodeMalformed, DefaultSeverity: sdk.SeverityMedium,
				Description: "a kernel file's content is not in the kernel's format (empty, garbage, larger than 64 KiB)"},
			{Code: CodeLockdownUnavailable, DefaultSeverity: sdk.SeverityInfo,
				Description: "the kernel exposes no lockdown file (no lockdown LSM, or securityfs not mounted)"},
			{Code: CodeLockdownBelowMinimum, DefaultSeverity: sdk.SeverityHigh,
				Description: "the lockdown mode is weaker than min_lockdown, or cannot be confirmed"},
			{Code: CodeParamMissing, DefaultSeverity: sdk.SeverityHigh,
				Description: "a required_params entry is not in effect on the kernel command line, or cannot be confirmed"},
			{Code: CodeParamForbidden, DefaultSeverity: sdk.SeverityHigh,
				Description: "a forbidden_params entry is on the kernel command line, or its absence cannot be confirmed"},
			{Code: CodeTainted, DefaultSeverity: sdk.SeverityMedium,
				Description: "the kernel carries a taint flag that tolerated_taints does not list (one finding per flag)"},
			{Code: CodeModuleSigUnavailable, DefaultSeverity: sdk.SeverityInfo,
				Description: "the kernel has no module signature checking, or no loadable modules at all"},
			{Code: CodeModuleSigNotEnforced, DefaultSeverity: sdk.SeverityHigh,
				Description: "require_module_sig_enforce is set but the kernel does not refuse unsigned modules (sig_enforce N without lockdown integrity or confidentiality, or no signature checking), or that cannot be confirmed"},
		},
	}
}

// Configure implements sdk.Configurer.
func (c *Check) Configure(_ context.Context, raw sdk.Config) error {
	cfg := DefaultConfig()
	if err := raw.Decode(&cfg); err != nil {
		return err
	}
	r, err := compile(cfg)
	if err != nil {
		return err
	}
	c.rules = r
	return nil
}

// Measure implements sdk.Check.
func (c *Check) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("measure kernel: %w", err)
	}
	res := sdk.NewResult()
	cmdline := c.measureCmdline(ctx, res)
	lockdown := c.measureLockdown(ctx, res)
	c.measureTaint(ctx, res)
	c.measureModuleSig(ctx, res, cmdline, lockdown)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("measure kernel: %w", err)
	}
	return res, nil
}

// read reads one file, adding kernel.unreadable or kernel.malformed when it
// cannot be used. what names the file for a human.
func read(ctx context.Context, res *sdk.Result, path, what string) ([]byte, bool) {
	data, err := regfile.ReadContext(ctx, path, MaxFileBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Addf(CodeUnreadable, sdk.SeverityMedium, path, "%s %s does not exist", what, path)
		return nil, false
	case errors.Is(err, regfile.ErrTooLarge):
		res.Addf(CodeMalformed, sdk.SeverityMedium, path, "%s %s is too large: more than %d bytes", what, path, MaxFileBytes)
		return nil, false
	case err != nil:
		res.Addf(CodeUnreadable, sdk.SeverityMedium, path, "cannot read %s: %v", what, err)
		return nil, false
	}
	return data, true
}

// measureCmdline reads and checks the command line; it returns nil when the
// command line is unknown.
func (c *Check) measureCmdline(ctx context.Context, res *sdk.Result) *Cmdline {
	r := c.rules
	path := r.cfg.CmdlinePath
	var cmdline *Cmdline
	if data, ok := read(ctx, res, path, "kernel command line"); ok {
		parsed, err := ParseCmdline(data)
		if err != nil {
			res.Addf(CodeMalformed, sdk.SeverityMedium, path, "kernel command line %s is malformed: %v", path, err)
		} else {
			cmdline = &parsed
			res.Set(KeyCmdline, parsed.Raw)
		}
	}
	if cmdline == nil {
		for _, p := range r.required {
			res.Addf(CodeParamMissing, sdk.SeverityHigh, p.String(), "required kernel parameter %q cannot be confirmed: the kernel command line could not be read", p)
		}
		for _, p := range r.forbidden {
			res.Addf(CodeParamForbidden, sdk.SeverityHigh, p.String(), "forbidden kernel parameter %q cannot be confirmed absent: the kernel command line could not be read", p)
		}
		return nil
	}
	for _, p := range r.required {
		ok, last := p.SatisfiedBy(cmdline.Params)
		switch {
		case ok:
		case last == nil:
			res.Addf(CodeParamMissing, sdk.SeverityHigh, p.String(), "required kernel parameter %q is not on the kernel command line", p)
		default:
			res.Addf(CodeParamMissing, sdk.SeverityHigh, p.String(), "required kernel parameter %q is not in effect: the last %s on the kernel command line is %q", p, p.Name, last)
		}
	}
	for _, p := range r.forbidden {
		if hits := p.MatchesAny(cmdline.Params); len(hits) > 0 {
			quoted := make([]string, len(hits))
			for i, h := range hits {
				quoted[i] = fmt.Sprintf("%q", h)
			}
			res.Addf(CodeParamForbidden, sdk.SeverityHigh, p.String(), "forbidden kernel parameter %q is on the kernel command line: %s", p, strings.Join(quoted, ", "))
		}
	}
	return cmdline
}

// measureLockdown reads and checks the lockdown mode; it returns the mode,
// LockdownNone when it is unknown or unavailable.
func (c *Check) measureLockdown(ctx context.Context, res *sdk.Result) Lockdown {
	r := c.rules
	path := r.cfg.LockdownPath
	data, err := regfile.ReadContext(ctx, path, MaxFileBytes)
	var mode Lockdown
	known := false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Set(KeyLockdown, LockdownUnavailable)
		res.Addf(CodeLockdownUnavailable, sdk.SeverityInfo, path, "kernel lockdown is unavailable: %s does not exist (lockdown LSM not built or not enabled, or securityfs not mounted)", path)
		if r.minimum > LockdownNone {
			res.Addf(CodeLockdownBelowMinimum, sdk.SeverityHigh, path, "kernel lockdown must be at least %s but the kernel exposes no lockdown state", r.minimum)
		}
		return LockdownNone
	case errors.Is(err, regfile.ErrTooLarge):
		res.Addf(CodeMalformed, sdk.SeverityMedium, path, "lockdown file %s is too large: more than %d bytes", path, MaxFileBytes)
	case err != nil:
		res.Addf(CodeUnreadable, sdk.SeverityMedium, path, "cannot read the lockdown file: %v", err)
	default:
		if mode, err = ParseLockdown(data); err != nil {
			res.Addf(CodeMalformed, sdk.SeverityMedium, path, "lockdown file %s is malformed: %v", path, err)
		} else {
			known = true
		}
	}
	if !known {
		if r.minimum > LockdownNone {
			res.Addf(CodeLockdownBelowMinimum, sdk.SeverityHigh, path, "kernel lockdown must be at least %s but the lockdown mode cannot be confirmed", r.minimum)
		}
		return LockdownNone
	}
	res.Set(KeyLockdown, mode.String())
	if mode < r.minimum {
		res.Addf(CodeLockdownBelowMinimum, sdk.SeverityHigh, path, "kernel lockdown is %s, below the minimum %s", mode, r.minimum)
	}
	return mode
}

func (c *Check) measureTaint(ctx context.Context, res *sdk.Result) {
	r := c.rules
	path := r.cfg.TaintedPath
	data, ok := read(ctx, res, path, "kernel taint file")
	if !ok {
		return
	}
	v, err := ParseTainted(data)
	if err != nil {
		res.Addf(CodeMalformed, sdk.SeverityMedium, path, "kernel taint file %s is malformed: %v", path, err)
		return
	}
	flags, unknown := DecodeTaint(v)
	list := make([]TaintFlag, 0, len(flags)+len(unknown))
	list = append(list, flags...)
	for _, bit := range unknown {
		list = append(list, TaintFlag{Bit: bit, Letter: "?", Name: fmt.Sprintf("unknown_bit_%d", bit)})
	}
	res.Set(KeyTainted, v)
	res.Set(KeyTaintFlags, list)
	for _, f := range flags {
		if r.tolerated&(1<<f.Bit) != 0 {
			continue
		}
		res.Addf(CodeTainted, sdk.SeverityMedium, f.Name, "the kernel is tainted: %s (%s, bit %d): %s", f.Letter, f.Name, f.Bit, f.Description)
	}
	for _, bit := range unknown {
		res.Addf(CodeTainted, sdk.SeverityMedium, fmt.Sprintf("unknown_bit_%d", bit), "the kernel is tainted with bit %d, which this plugin does not know (a newer kernel's flag)", bit)
	}
}

// measureModuleSig measures whether the kernel refuses unsigned modules.
// That is sig_enforce, or lockdown: the kernel's module_sig_check() ends
// with security_locked_down(LOCKDOWN_MODULE_SIGNATURE), which refuses a
// module without a valid signature under lockdown integrity or
// confidentiality whatever sig_enforce says. Both need the kernel's
// signature checking (CONFIG_MODULE_SIG), of which sig_enforce's existence
// is the sign.
func (c *Check) measureModuleSig(ctx context.Context, res *sdk.Result, cmdline *Cmdline, lockdown Lockdown) {
	r := c.rules
	path := r.cfg.SigEnforcePath
	cmdlineWants := false
	if cmdline != nil {
		// module.sig_enforce is a bool_enable_only parameter: a bare
		// "module.sig_enforce" or any true spelling turns it on, and
		// nothing later turns it off again.
		for _, p := range (ParamPattern{Name: "module.sig_enforce"}).MatchesAny(cmdline.Params) {
			if !p.HasValue || isTrue(p.Value) {
				cmdlineWants = true
			}
		}
		res.Set(KeyModuleSigEnforceCmdline, cmdlineWants)
	}
	effective := func(reason string) {
		res.Set(KeyModuleSigEnforced, reason != SigNotEnforced)
		res.Set(KeyModuleSigEnforcedReason, reason)
	}
	notEnforced := func(format string, args ...any) {
		if r.cfg.RequireModuleSigEnforce {
			res.Addf(CodeModuleSigNotEnforced, sdk.SeverityHigh, path, format, args...)
		}
	}
	// unknown handles a sig_enforce that exists but cannot be used: under
	// lockdown, enforcement holds all the same.
	unknown := func(why string) {
		if lockdown >= LockdownIntegrity {
			effective(SigEnforcedByLockdown)
			return
		}
		notEnforced("module signature enforcement is required but cannot be confirmed: %s %s and lockdown is %s", path, why, lockdown)
	}

	data, err := regfile.ReadContext(ctx, path, MaxFileBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if c.noModuleSigning(res, path, notEnforced) {
			effective(SigNotEnforced)
		}
		return
	case errors.Is(err, regfile.ErrTooLarge):
		res.Addf(CodeMalformed, sdk.SeverityMedium, path, "sig_enforce file %s is too large: more than %d bytes", path, MaxFileBytes)
		unknown("is malformed")
		return
	case err != nil:
		res.Addf(CodeUnreadable, sdk.SeverityMedium, path, "cannot read the sig_enforce file: %v", err)
		unknown("cannot be read")
		return
	}
	on, err := ParseBoolParam(data)
	if err != nil {
		res.Addf(CodeMalformed, sdk.SeverityMedium, path, "sig_enforce file %s is malformed: %v", path, err)
		unknown("is malformed")
		return
	}
	res.Set(KeyModuleSigEnforce, on)
	switch {
	case on:
		effective(SigEnforcedBySigEnforce)
	case lockdown >= LockdownIntegrity:
		effective(SigEnforcedByLockdown)
	default:
		effective(SigNotEnforced)
		hint := "module.sig_enforce=1 is not on the kernel command line"
		if cmdlineWants {
			hint = "module.sig_enforce=1 is on the kernel command line but the kernel reports N"
		}
		notEnforced("module signature enforcement is required but %s is N and lockdown is %s: the kernel loads unsigned modules (%s)", path, lockdown, hint)
	}
}

// noModuleSigning reports a kernel without sig_enforce: one that loads no
// modules at all, or one that loads them unchecked (then it returns true:
// unsigned modules load, lockdown or not).
func (c *Check) noModuleSigning(res *sdk.Result, path string, notEnforced func(string, ...any)) bool {
	modules := c.rules.cfg.ModulesPath
	_, err := os.Stat(modules)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Addf(CodeModuleSigUnavailable, sdk.SeverityInfo, modules, "the kernel has no loadable module support (%s does not exist): no module can be loaded, so module signature enforcement does not apply", modules)
		return false
	case err != nil:
		res.Addf(CodeUnreadable, sdk.SeverityMedium, modules, "cannot inspect %s: %v", modules, err)
		notEnforced("module signature enforcement is required but cannot be confirmed: %s does not exist and %s cannot be inspected", path, modules)
		return false
	}
	res.Set(KeyModuleSigEnforce, false)
	res.Addf(CodeModuleSigUnavailable, sdk.SeverityInfo, path, "the kernel loads modules but does not check their signatures: %s does not exist (built without CONFIG_MODULE_SIG)", path)
	notEnforced("module signature enforcement is required but the kernel does not check module signatures (%s does not exist)", path)
	return true
}

// isTrue reports whether the kernel's kstrtobool reads s as true: it looks
// at the first characters only ("1", "y", "t", "on", any case).
func isTrue(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '1', 'y', 'Y', 't', 'T':
		return true
	case 'o', 'O':
		return len(s) > 1 && (s[1] == 'n' || s[1] == 'N')
	}
	return false
}
