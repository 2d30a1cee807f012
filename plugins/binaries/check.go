// Package binaries is the built-in check that hashes every configured
// service binary with SHA-256, compares each digest with the one pinned in
// the policy, and fills service_digests.
//
// Files are streamed through a reused buffer (constant memory whatever their
// size) and hashed in parallel across files up to max_parallel. A binary
// reached through a symlink is followed only into allowed roots; the file
// that was checked is the file that is hashed (openat2 without symlinks,
// fstat of the opened descriptor). HashFiles is exported for the benchmark
// harness.
package binaries

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// Version is the plugin's version.
const Version = "1.0.0"

// Finding codes.
const (
	CodeMissing            = "binaries.missing"
	CodeDigestMismatch     = "binaries.digest_mismatch"
	CodeNotRegular         = "binaries.not_regular"
	CodeSymlinkOutOfPolicy = "binaries.symlink_out_of_policy"
	CodeUnreadable         = "binaries.unreadable"
	CodeTooLarge           = "binaries.too_large"
	CodeNoneConfigured     = "binaries.none_configured"
)

// Measurement keys.
const (
	KeyServiceDigests = "service_digests"
	KeyServices       = "services"
)

// Protocol limits on finding text (wire.MaxSubjectLen, wire.MaxMessageLen).
const (
	maxSubject = 1024
	maxMessage = 4096
)

var findingSpecs = []sdk.FindingSpec{
	{Code: CodeMissing, DefaultSeverity: sdk.SeverityMedium, Description: "a configured service binary does not exist (or is a dangling symlink)"},
	{Code: CodeDigestMismatch, DefaultSeverity: sdk.SeverityHigh, Description: "a service binary's SHA-256 differs from the digest pinned in service_binaries"},
	{Code: CodeNotRegular, DefaultSeverity: sdk.SeverityMedium, Description: "a configured service binary is not a regular file (directory, device, FIFO, socket)"},
	{Code: CodeSymlinkOutOfPolicy, DefaultSeverity: sdk.SeverityHigh, Description: "a service binary path goes through a symlink that resolves outside allowed_symlink_roots; it is not followed"},
	{Code: CodeUnreadable, DefaultSeverity: sdk.SeverityMedium, Description: "a service binary exists but could not be opened or read"},
	{Code: CodeTooLarge, DefaultSeverity: sdk.SeverityMedium, Description: "a service binary is larger than max_file_bytes and was not hashed"},
	{Code: CodeNoneConfigured, DefaultSeverity: sdk.SeverityInfo, Description: "service_binaries is empty: there is nothing to hash"},
}

var kindSeverity = map[Kind]sdk.Severity{
	KindMissing:            sdk.SeverityMedium,
	KindNotRegular:         sdk.SeverityMedium,
	KindSymlinkOutOfPolicy: sdk.SeverityHigh,
	KindUnreadable:         sdk.SeverityMedium,
	KindTooLarge:           sdk.SeverityMedium,
}

// Check is the binaries check.
type Check struct {
	settings Settings
}

var (
	_ sdk.Check      = (*Check)(nil)
	_ sdk.Configurer = (*Check)(nil)
)

// New returns the check with the default configuration (no services until
// the daemon sends service_binaries).
func New() sdk.Check {
	return &Check{settings: Settings{Options: Options{Parallel: DefaultMaxParallel}}}
}

// Describe implements sdk.Check.
func (c *Check) Describe() sdk.Description {
	return sdk.Description{
		Name:     "binaries",
		Version:  Version,
		Summary:  "SHA-256 of every service binary in service_binaries, against pinned digests",
		Fills:    []string{KeyServiceDigests},
		Findings: slices.Clone(findingSpecs),
	}
}

// Configure implements sdk.Configurer.
func (c *Check) Configure(_ context.Context, cfg sdk.Config) error {
	s, err := ParseConfig(cfg)
	if err != nil {
		return err
	}
	c.settings = s
	return nil
}

// ServiceReport is one entry of the services measurement. Its fields are
// in the order of their JSON names, RFC 8785's order: encoding/json then
// writes the measurement in canonical form, which the daemon recognises
// in one pass instead of canonicalising it again (with thousands of
// service binaries, most of the daemon's CPU for an attestation).
type ServiceReport struct {
	ExpectedSHA256 string `json:"expected_sha256,omitempty"`
	Name           string `json:"name"`
	Path           string `json:"path"`
	ResolvedPath   string `json:"resolved_path,omitempty"`
	SHA256         string `json:"sha256,omitempty"`
	Size           int64  `json:"size"`
	// Status is "ok", "digest_mismatch", or the kind of failure (missing,
	// not_regular, symlink_out_of_policy, unreadable, too_large).
	Status string `json:"status"`
}

// Measure implements sdk.Check.
func (c *Check) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	res := sdk.NewResult()
	svcs := c.settings.Services
	targets := make([]Target, len(svcs))
	for i, s := range svcs {
		targets[i] = Target{Name: s.Name, Path: s.Path}
	}
	digests, err := Hash(ctx, targets, c.settings.Options)
	if err != nil {
		return nil, fmt.Errorf("hash service binaries: %w", err)
	}
	sums := make(map[string]string, len(svcs))
	reports := make([]ServiceReport, 0, len(svcs))
	for i, s := range svcs {
		d := digests[i]
		rep := ServiceReport{Name: s.Name, Path: s.Path, ResolvedPath: d.ResolvedPath, Size: d.Size, ExpectedSHA256: s.SHA256}
		if d.Err != nil {
			fe := asFileError(d.Err)
			rep.Status = string(fe.Kind)
			rep.Size = 0
			add(res, "binaries."+string(fe.Kind), kindSeverity[fe.Kind], s.Path, fmt.Sprintf("service %s: %s", s.Name, fe.Error()))
			reports = append(reports, rep)
			continue
		}
		rep.SHA256 = d.SHA256
		rep.Status = "ok"
		sums[s.Name] = d.SHA256
		if s.SHA256 != "" && s.SHA256 != d.SHA256 {
			rep.Status = "digest_mismatch"
			msg := fmt.Sprintf("service %s: %s has SHA-256 %s, pinned %s", s.Name, s.Path, d.SHA256, s.SHA256)
			if d.ResolvedPath != s.Path {
				msg += " (resolved to " + d.ResolvedPath + ")"
			}
			add(res, CodeDigestMismatch, sdk.SeverityHigh, s.Path, msg)
		}
		reports = append(reports, rep)
	}
	if len(svcs) == 0 {
		res.Addf(CodeNoneConfigured, sdk.SeverityInfo, "service_binaries", "no service binaries are configured; service_digests is empty")
	}
	res.Set(KeyServiceDigests, sums)
	res.Set(KeyServices, reports)
	return res, nil
}

func asFileError(err error) *FileError {
	var fe *FileError
	if errors.As(err, &fe) {
		return fe
	}
	return &FileError{Kind: KindUnreadable, Msg: "hash", Err: err}
}

// add appends a finding with its text clipped to the protocol's limits.
func add(res *sdk.Result, code string, sev sdk.Severity, subject, msg string) {
	res.Add(sdk.Finding{Code: code, Severity: sev, Subject: clip(subject, maxSubject), Message: clip(msg, maxMessage)})
}
