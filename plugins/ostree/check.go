// Package ostree is the built-in check that identifies the booted ostree
// deployment and fills deployment_digest.
//
// It runs `rpm-ostree status --json` (bounded in time and output, in a
// process group of its own that is killed on timeout), finds the booted
// deployment and hashes its identity (see RPMOStreeIdentity and Digest).
// Where rpm-ostree is missing or fails on an ostree-booted machine it falls
// back to ostree's own files: the ostree= kernel argument, the boot symlink
// under the sysroot and the deployment's .origin file (FilesIdentity). On a
// machine that is not an ostree system it says so in an info finding.
package ostree

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// Version is the plugin's version.
const Version = "1.0.0"

// Finding codes.
const (
	CodeNotOstree          = "ostree.not_ostree"
	CodeRPMOStreeMissing   = "ostree.rpm_ostree_missing"
	CodeRPMOStreeFailed    = "ostree.rpm_ostree_failed"
	CodeBadOutput          = "ostree.bad_output"
	CodeNoBootedDeployment = "ostree.no_booted_deployment"
	CodeLayeredPackages    = "ostree.layered_packages"
	CodeChecksumMismatch   = "ostree.checksum_mismatch"
	CodeStagedDeployment   = "ostree.staged_deployment"
	CodeFallback           = "ostree.fallback"
)

// Measurement keys.
const (
	KeyDeploymentDigest = "deployment_digest"
	KeyDeployment       = "deployment"
	KeySource           = "source"
	KeyOstreeSystem     = "ostree_system"
)

// Protocol limits on finding text (wire.MaxSubjectLen, wire.MaxMessageLen),
// and how much of rpm-ostree's stderr goes into a message.
const (
	maxSubject        = 1024
	maxMessage        = 4096
	maxStderrInMsg    = 1024
	maxStdoutInMsg    = 120
	maxPackagesInMsgs = 1024
)

var findingSpecs = []sdk.FindingSpec{
	{Code: CodeNotOstree, DefaultSeverity: sdk.SeverityInfo, Description: "the machine is not an ostree system (no run_ostree_booted file, no <sysroot>/ostree): there is no deployment to measure"},
	{Code: CodeRPMOStreeMissing, DefaultSeverity: sdk.SeverityMedium, Description: "the machine is ostree-booted but the rpm-ostree command is not installed (the check falls back to ostree's files)"},
	{Code: CodeRPMOStreeFailed, DefaultSeverity: sdk.SeverityMedium, Description: "rpm-ostree status --json exited with an error, could not start or passed its timeout (stderr included, truncated)"},
	{Code: CodeBadOutput, DefaultSeverity: sdk.SeverityMedium, Description: "rpm-ostree status --json printed something that is not its status JSON, or more than max_output_bytes"},
	{Code: CodeNoBootedDeployment, DefaultSeverity: sdk.SeverityHigh, Description: "the booted deployment could not be identified (rpm-ostree lists none booted, or ostree's files do not lead to one)"},
	{Code: CodeLayeredPackages, DefaultSeverity: sdk.SeverityLow, Description: "the booted deployment carries client-side package layering (base-checksum present, or packages requested in the origin)"},
	{Code: CodeChecksumMismatch, DefaultSeverity: sdk.SeverityHigh, Description: "the booted deployment's checksum differs from expected_checksum"},
	{Code: CodeStagedDeployment, DefaultSeverity: sdk.SeverityInfo, Description: "a staged deployment is waiting to become the default at the next reboot"},
	{Code: CodeFallback, DefaultSeverity: sdk.SeverityInfo, Description: "rpm-ostree could not be used; the deployment was measured from ostree's own files (ostree= kernel argument, .origin file)"},
}

// Check is the ostree check.
type Check struct {
	settings Settings
	// rpmOStreePath is rpm_ostree resolved when configured, "" when it
	// was not found then: what Sandbox allows to be executed.
	rpmOStreePath string
}

var (
	_ sdk.Check      = (*Check)(nil)
	_ sdk.Configurer = (*Check)(nil)
)

// New returns the check configured to measure the real system.
func New() sdk.Check {
	s := DefaultSettings()
	return &Check{settings: s, rpmOStreePath: resolveCommand(s.RPMOStree)}
}

// Describe implements sdk.Check.
func (c *Check) Describe() sdk.Description {
	return sdk.Description{
		Name:     "ostree",
		Version:  Version,
		Summary:  "booted ostree deployment from rpm-ostree status --json (fallback: ostree's own files)",
		Fills:    []string{KeyDeploymentDigest},
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
	c.rpmOStreePath = resolveCommand(s.RPMOStree)
	return nil
}

// measured is the booted deployment, from either source.
type measured struct {
	source   string
	identity any
	checksum string
	layered  string      // what is layered client-side, "" when nothing
	staged   *Deployment // rpm-ostree only
}

// Measure implements sdk.Check.
func (c *Check) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	s := c.settings
	res := sdk.NewResult()
	ostreeDir := filepath.Join(s.Sysroot, "ostree")
	if !exists(s.RunOstreeBooted) && !isDir(ostreeDir) {
		res.Set(KeyOstreeSystem, false)
		add(res, CodeNotOstree, sdk.SeverityInfo, s.RunOstreeBooted, fmt.Sprintf(
			"not an ostree system: %s does not exist and %s is not a directory; there is no deployment to measure, so deployment_digest is left out",
			s.RunOstreeBooted, ostreeDir))
		return res, nil
	}
	res.Set(KeyOstreeSystem, true)
	m, fallbackWhy := c.fromRPMOStree(ctx, res)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("measure the booted deployment: %w", err)
	}
	if fallbackWhy != "" {
		m = c.fromFiles(res, fallbackWhy)
	}
	if m == nil {
		return res, nil
	}
	digest, err := Digest(m.identity)
	if err != nil {
		return nil, err
	}
	res.Set(KeyDeploymentDigest, digest)
	res.Set(KeyDeployment, m.identity)
	res.Set(KeySource, m.source)
	if m.layered != "" {
		add(res, CodeLayeredPackages, sdk.SeverityLow, m.checksum, fmt.Sprintf("the booted deployment %s carries client-side layering: %s", m.checksum, m.layered))
	}
	if s.ExpectedChecksum != "" && m.checksum != s.ExpectedChecksum {
		add(res, CodeChecksumMismatch, sdk.SeverityHigh, m.checksum, fmt.Sprintf("the booted deployment's checksum is %s, expected_checksum is %s", m.checksum, s.ExpectedChecksum))
	}
	if d := m.staged; d != nil {
		add(res, CodeStagedDeployment, sdk.SeverityInfo, d.Checksum, fmt.Sprintf("deployment %s (version %q, checksum %s) is staged and becomes the default at the next reboot", d.ID, d.Version, d.Checksum))
	}
	return res, nil
}

// commandTimeout is the configured timeout of rpm-ostree, cut short so that
// it ends before the daemon's deadline for this measurement, with a reserve
// (a tenth of what is left, at most one second) for the plugin to report
// that rpm-ostree timed out instead of being killed itself.
func commandTimeout(ctx context.Context, configured time.Duration) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return configured
	}
	left := time.Until(dl)
	reserve := min(left/10, time.Second)
	if left-reserve < configured {
		return max(left-reserve, time.Millisecond)
	}
	return configured
}

// fromRPMOStree measures through rpm-ostree. It returns the deployment, or
// a reason to fall back to ostree's files, or neither (the finding added
// says why there is no deployment).
func (c *Check) fromRPMOStree(ctx context.Context, res *sdk.Result) (*measured, string) {
	s := c.settings
	path, err := c.lookPath()
	if err != nil {
		add(res, CodeRPMOStreeMissing, sdk.SeverityMedium, s.RPMOStree, fmt.Sprintf("this machine is ostree-booted but rpm-ostree is not available: %v", err))
		return nil, "rpm-ostree is not available"
	}
	cmdText := path + " status --json"
	limit := commandTimeout(ctx, s.Timeout)
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	out, err := run(rctx, path, []string{"status", "--json"}, s.MaxOutputBytes)
	if ctx.Err() != nil {
		return nil, ""
	}
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		add(res, CodeRPMOStreeFailed, sdk.SeverityMedium, path, fmt.Sprintf("%s did not finish within %s; it and its process group were killed%s", cmdText, limit, stderrText(out)))
		return nil, "rpm-ostree timed out"
	case errors.Is(err, errOutputTooLarge):
		add(res, CodeBadOutput, sdk.SeverityMedium, path, fmt.Sprintf("%s printed more than max_output_bytes (%d bytes); it was killed and its output discarded", cmdText, s.MaxOutputBytes))
		return nil, "rpm-ostree printed too much"
	default:
		add(res, CodeRPMOStreeFailed, sdk.SeverityMedium, path, fmt.Sprintf("%s failed: %v%s", cmdText, err, stderrText(out)))
		return nil, "rpm-ostree failed"
	}
	st, err := ParseStatus(out.Stdout)
	if err != nil {
		add(res, CodeBadOutput, sdk.SeverityMedium, path, fmt.Sprintf("%s printed output that is not rpm-ostree status JSON: %v (output begins %q)", cmdText, err, clip(string(out.Stdout), maxStdoutInMsg)))
		return nil, "rpm-ostree's output is unusable"
	}
	d, err := st.Booted()
	if err != nil {
		add(res, CodeNoBootedDeployment, sdk.SeverityHigh, path, fmt.Sprintf("%s lists %d deployments and none is booted", cmdText, len(st.Deployments)))
		return nil, ""
	}
	m := &measured{source: SourceRPMOStree, identity: IdentityOf(d), checksum: d.Checksum, staged: st.StagedDeployment()}
	if d.BaseChecksum != "" {
		m.layered = fmt.Sprintf("base %s; layered packages [%s]; local packages [%s]", d.BaseChecksum,
			clip(strings.Join(d.Packages, ", "), maxPackagesInMsgs), clip(strings.Join(d.RequestedLocalPackages, ", "), maxPackagesInMsgs))
	}
	return m, ""
}

// lookPath finds the rpm-ostree executable.
func (c *Check) lookPath() (string, error) {
	name := c.settings.RPMOStree
	if !filepath.IsAbs(name) {
		return exec.LookPath(name)
	}
	if _, err := os.Stat(name); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s does not exist", name)
	}
	return name, nil
}

// fromFiles measures from ostree's own files, after rpm-ostree could not be
// used for the reason why.
func (c *Check) fromFiles(res *sdk.Result, why string) *measured {
	s := c.settings
	fd, err := readDeploymentFiles(s.Sysroot, s.CmdlinePath)
	if err != nil {
		add(res, CodeNoBootedDeployment, sdk.SeverityHigh, s.Sysroot, fmt.Sprintf("%s, and the booted deployment could not be found from ostree's own files either: %v", why, err))
		return nil
	}
	add(res, CodeFallback, sdk.SeverityInfo, fd.Dir, fmt.Sprintf(
		"%s: measured from ostree's own files instead (ostree=%s resolves to %s); deployment_digest covers osname, checksum, serial and the origin file only, so it differs from the rpm-ostree digest of the same deployment",
		why, fd.BootArg, fd.Dir))
	m := &measured{source: SourceOstreeFiles, identity: NewFilesIdentity(fd.OSName, fd.Checksum, fd.Serial, fd.Origin), checksum: fd.Checksum}
	pk := fd.Origin["packages"]
	req, local := ListValue(pk["requested"]), ListValue(pk["requested-local"])
	if len(req)+len(local) > 0 {
		m.layered = fmt.Sprintf("origin requests packages [%s]; local packages [%s]",
			clip(strings.Join(req, ", "), maxPackagesInMsgs), clip(strings.Join(local, ", "), maxPackagesInMsgs))
	}
	return m
}

// stderrText renders captured stderr for a finding message.
func stderrText(o runOutput) string {
	e := printable(string(o.Stderr))
	if e == "" {
		return "; no stderr"
	}
	t := clip(e, maxStderrInMsg)
	if o.StderrTruncated || t != e {
		t += " (truncated)"
	}
	return "; stderr: " + t
}

// add appends a finding with its text clipped to the protocol's limits.
func add(res *sdk.Result, code string, sev sdk.Severity, subject, msg string) {
	res.Add(sdk.Finding{Code: code, Severity: sev, Subject: clip(subject, maxSubject), Message: clip(msg, maxMessage)})
}
