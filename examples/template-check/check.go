package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// name is the plugin's name: lowercase letters, digits and '_'. The
// executable must be called attestor-check-<name>, and every finding code
// starts with name + ".". The daemon refuses a plugin that breaks either
// rule (core.plugin_protocol).
const name = "template"

// The finding codes this check can emit. They are part of the plugin's
// contract: operators key severity overrides and alerts on them, so keep a
// code's meaning once it is released.
const (
	codeMissing  = name + ".missing"
	codeWritable = name + ".writable"
)

// Check inspects a list of files: each must exist and must not be writable
// by group or others; it measures their SHA-256.
type Check struct {
	cfg config
}

// config is the plugin's configuration: plugins.template.config in the
// policy. Every path the check reads comes from here (with a default), so
// tests run it against fixture files.
type config struct {
	Paths []string `json:"paths"`
}

// Interface guards: the compiler checks that Check is a check plugin that
// takes configuration and declares its sandbox.
var (
	_ sdk.Check      = (*Check)(nil)
	_ sdk.Configurer = (*Check)(nil)
	_ sdk.Sandboxer  = (*Check)(nil)
)

// New returns the check with its default configuration.
func New() *Check { return &Check{cfg: config{Paths: []string{"/etc/os-release"}}} }

// Describe names the plugin, its version and every finding code with its
// default severity. It is called once, must be cheap and constant.
func (c *Check) Describe() sdk.Description {
	return sdk.Description{
		Name:    name,
		Version: "1.0.0",
		Summary: "configured files exist, are not group/world-writable, and their SHA-256",
		Findings: []sdk.FindingSpec{
			{Code: codeMissing, DefaultSeverity: sdk.SeverityMedium, Description: "a configured file is missing or unreadable"},
			{Code: codeWritable, DefaultSeverity: sdk.SeverityHigh, Description: "a configured file is writable by group or others"},
		},
	}
}

// Configure receives the policy's config once, before the first Measure.
// Decode refuses unknown keys and wrong types; a *sdk.ConfigError names the
// key, and the daemon then refuses the policy.
func (c *Check) Configure(_ context.Context, cfg sdk.Config) error {
	if err := cfg.Decode(&c.cfg); err != nil {
		return err
	}
	for i, p := range c.cfg.Paths {
		if !filepath.IsAbs(p) {
			return sdk.ConfigErrorf(fmt.Sprintf("paths[%d]", i), "%q is not an absolute path", p)
		}
		c.cfg.Paths[i] = filepath.Clean(p)
	}
	return nil
}

// Sandbox declares exactly what Measure touches: the configured files, to
// read. The plugin runs in a sandbox from its first instruction: the
// daemon grants a third-party plugin only what the policy lists under
// plugins.template.sandbox, and right after Configure the SDK narrows the
// process further to this declaration. A file neither lists cannot be
// opened ("permission denied"); the README gives operators the policy
// lines, and sdktest.Start runs the plugin under both layers in go test.
func (c *Check) Sandbox() sdk.Sandbox {
	return sdk.Sandbox{ReadOnly: c.cfg.Paths}
}

// Measure takes one measurement. What is wrong becomes a finding; an error
// is only for "could not measure at all" (reported as core.plugin_failed).
// Return promptly when ctx is done: the daemon kills a plugin that overruns
// its timeout.
func (c *Check) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	res := sdk.NewResult()
	digests := map[string]string{}
	for _, p := range c.cfg.Paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, err := os.Stat(p)
		if err != nil {
			res.Addf(codeMissing, sdk.SeverityMedium, p, "cannot stat %s: %v", p, err)
			continue
		}
		if perm := info.Mode().Perm(); perm&0o022 != 0 {
			res.Addf(codeWritable, sdk.SeverityHigh, p, "%s is writable by group or others (mode %04o)", p, perm)
		}
		sum, err := sha256File(p)
		if err != nil {
			res.Addf(codeMissing, sdk.SeverityMedium, p, "cannot read %s: %v", p, err)
			continue
		}
		digests[p] = sum
	}
	res.Set("digests", digests)
	return res, nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
