// Package ostree is the built-in check that identifies the booted ostree
// deployment and fills deployment_digest.
//
// It runs `rpm-ostree status --json` (bounded in time and output, in a
// process group of its own that is killed on timeout), finds the booted
// deployment and hashes its identity (see RPMOStreeIdentity and Digest).
// Where rpm-ostree is missing or fails on an ostree-booted machine it falls
// back to ostree's own files, as libostree reads them: the deployment
// directory whose device and inode /run/ostree-booted records (the ostree=
// kernel argument only when there is no such record), its .origin file,
// libostree's run-time unlock flags and its commit object (FilesIdentity).
// Beside deployment_digest it reports deployment_reference (Reference), a
// value a release pipeline computes from what it publishes, checks it and
// the next boot's deployment against expected_deployments, and reports an
// unlocked or live-changed /usr, an unverified image origin and the
// composefs= digest. On a machine that is not an ostree system it says so
// in an info finding.
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
const Version = "1.1.0"

// Finding codes.
const (
	CodeNotOstree          = "ostree.not_ostree"
	CodeRPMOStreeMissing   = "ostree.rpm_ostree_missing"
	CodeRPMOStreeFailed    = "ostree.rpm_ostree_failed"
	CodeBadOutput          = "ostree.bad_output"
	CodeNoBootedDeployment = "ostree.no_booted_deployment"
	CodeLayeredPackages    = "ostree.layered_packages"
	CodeChecksumMismatch   = "ostree.checksum_mismatch"
	CodeStaged             = "ostree.staged"
	CodeStagedUnexpected   = "ostree.staged_unexpected"
	CodeFallback           = "ostree.fallback"
	CodeBootedByKarg       = "ostree.booted_by_karg"
	CodeUnlocked           = "ostree.unlocked"
	CodeLiveApplied        = "ostree.live_applied"
	CodeUnverifiedOrigin   = "ostree.unverified_origin"
	CodeUnexpected         = "ostree.unexpected_deployment"
	CodeComposefsMismatch  = "ostree.composefs_mismatch"
)

// Measurement keys.
const (
	KeyDeploymentDigest = "deployment_digest"
	KeyDeployment       = "deployment"
	KeySource           = "source"
	KeyOstreeSystem     = "ostree_system"
	KeyReference        = "deployment_reference"
	KeyReferenceInput   = "reference"
	KeyNextDeployment   = "next_deployment"
	KeyComposefs        = "composefs"
	KeyBootedBy         = "booted_by"
	KeyUnlocked         = "unlocked"
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
	{Code: CodeNoBootedDeployment, DefaultSeverity: sdk.SeverityHigh, Description: "the booted deployment could not be identified (rpm-ostree lists none booted, or ostree's files do not lead to one, or no deployment has the device and inode /run/ostree-booted records)"},
	{Code: CodeLayeredPackages, DefaultSeverity: sdk.SeverityLow, Description: "the booted deployment carries client-side package layering (base-checksum present, or packages requested in the origin)"},
	{Code: CodeChecksumMismatch, DefaultSeverity: sdk.SeverityHigh, Description: "the booted deployment's checksum differs from expected_checksum"},
	{Code: CodeStaged, DefaultSeverity: sdk.SeverityInfo, Description: "a staged or pending deployment becomes the booted one at the next reboot (its deployment_reference is in expected_deployments, or none are set)"},
	{Code: CodeStagedUnexpected, DefaultSeverity: sdk.SeverityHigh, Description: "the staged or pending deployment the next reboot starts has a deployment_reference that expected_deployments does not list"},
	{Code: CodeFallback, DefaultSeverity: sdk.SeverityInfo, Description: "rpm-ostree could not be used; the deployment was measured from ostree's own files (/run/ostree-booted, .origin file, commit object)"},
	{Code: CodeBootedByKarg, DefaultSeverity: sdk.SeverityLow, Description: "the fallback found the booted deployment from the ostree= kernel argument, because /run/ostree-booted records no device and inode: after a deploy without a reboot that path can lead to another deployment"},
	{Code: CodeUnlocked, DefaultSeverity: sdk.SeverityHigh, Description: "the booted deployment is unlocked (hotfix, development or transient): the running /usr is writable or changed, not the commit attested"},
	{Code: CodeLiveApplied, DefaultSeverity: sdk.SeverityMedium, Description: "a commit was applied live over the booted deployment (rpm-ostree apply-live): the running /usr is not the booted commit"},
	{Code: CodeUnverifiedOrigin, DefaultSeverity: sdk.SeverityMedium, Description: "the booted or next deployment comes from an ostree-unverified-registry: or ostree-unverified-image: origin, pulled without any signature check"},
	{Code: CodeUnexpected, DefaultSeverity: sdk.SeverityHigh, Description: "the booted deployment's deployment_reference is not in expected_deployments"},
	{Code: CodeComposefsMismatch, DefaultSeverity: sdk.SeverityHigh, Description: "the composefs= kernel argument does not match the booted deployment's composefs image (.ostree.cfs), or the image cannot be read"},
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
		Summary:  "booted ostree deployment from rpm-ostree status --json (fallback: ostree's own files), its release reference and the next boot's deployment",
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
	dir      deployDir // Dev and Ino unset for rpm-ostree
	layered  string    // what is layered client-side, "" when nothing
	unlocked string    // "" or the unlocked mode
	live     string    // "" or what was applied live
	imageRef string    // the container image reference, "" for refspecs
	ref      Reference // composefs aside
	bootedBy string    // fallback only
	bootArg  string    // fallback by karg only
	next     *next
}

// next is the deployment the next boot starts, when it is not the booted
// one.
type next struct {
	Kind     string    `json:"kind"` // "staged" or "pending"
	ID       string    `json:"id"`
	OSName   string    `json:"osname"`
	Checksum string    `json:"checksum"`
	Serial   int64     `json:"serial"`
	Version  string    `json:"version"`
	Ref      string    `json:"deployment_reference"`
	Input    Reference `json:"reference"`
	imageRef string
	rel      string
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
	m, fallbackWhy, missing := c.fromRPMOStree(ctx, res)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("measure the booted deployment: %w", err)
	}
	if fallbackWhy != "" {
		m = c.fromFiles(res, fallbackWhy)
	}
	if missing != "" {
		// Missing rpm-ostree costs nothing when ostree's own files
		// measured everything.
		sev := sdk.SeverityMedium
		if m != nil {
			sev = sdk.SeverityInfo
		}
		add(res, CodeRPMOStreeMissing, sev, s.RPMOStree, missing)
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
	if err := c.report(res, m); err != nil {
		return nil, err
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
// says why there is no deployment). missing is the message of
// ostree.rpm_ostree_missing when rpm-ostree is not installed; its severity
// depends on whether the fallback succeeds.
func (c *Check) fromRPMOStree(ctx context.Context, res *sdk.Result) (m *measured, fallbackWhy, missing string) {
	s := c.settings
	path, err := c.lookPath()
	if err != nil {
		return nil, "rpm-ostree is not available", fmt.Sprintf("this machine is ostree-booted but rpm-ostree is not available: %v", err)
	}
	cmdText := path + " status --json"
	limit := commandTimeout(ctx, s.Timeout)
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	out, err := run(rctx, path, []string{"status", "--json"}, s.MaxOutputBytes)
	if ctx.Err() != nil {
		return nil, "", ""
	}
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		add(res, CodeRPMOStreeFailed, sdk.SeverityMedium, path, fmt.Sprintf("%s did not finish within %s; it and its process group were killed%s", cmdText, limit, stderrText(out)))
		return nil, "rpm-ostree timed out", ""
	case errors.Is(err, errOutputTooLarge):
		add(res, CodeBadOutput, sdk.SeverityMedium, path, fmt.Sprintf("%s printed more than max_output_bytes (%d bytes); it was killed and its output discarded", cmdText, s.MaxOutputBytes))
		return nil, "rpm-ostree printed too much", ""
	default:
		add(res, CodeRPMOStreeFailed, sdk.SeverityMedium, path, fmt.Sprintf("%s failed: %v%s", cmdText, err, stderrText(out)))
		return nil, "rpm-ostree failed", ""
	}
	st, err := ParseStatus(out.Stdout)
	if err != nil {
		add(res, CodeBadOutput, sdk.SeverityMedium, path, fmt.Sprintf("%s printed output that is not rpm-ostree status JSON: %v (output begins %q)", cmdText, err, clip(string(out.Stdout), maxStdoutInMsg)))
		return nil, "rpm-ostree's output is unusable", ""
	}
	d, err := st.Booted()
	if err != nil {
		add(res, CodeNoBootedDeployment, sdk.SeverityHigh, path, fmt.Sprintf("%s lists %d deployments and none is booted", cmdText, len(st.Deployments)))
		return nil, "", ""
	}
	return measuredFromStatus(st, d), "", ""
}

// measuredFromStatus is the booted deployment d of rpm-ostree's status.
func measuredFromStatus(st *Status, d *Deployment) *measured {
	m := &measured{source: SourceRPMOStree, identity: IdentityOf(d), dir: statusDir(d),
		unlocked: UnlockedMode(d.Unlocked), imageRef: d.ContainerImageReference, ref: ReferenceOf(d)}
	switch {
	case d.LiveReplaced != "":
		m.live = "commit " + d.LiveReplaced + " was applied live (live-replaced)"
	case d.LiveInProgress != "":
		m.live = "commit " + d.LiveInProgress + " is being applied live (live-inprogress)"
	}
	if d.BaseChecksum != "" {
		m.layered = fmt.Sprintf("base %s; layered packages [%s]; local packages [%s]", d.BaseChecksum,
			clip(strings.Join(d.Packages, ", "), maxPackagesInMsgs), clip(strings.Join(d.RequestedLocalPackages, ", "), maxPackagesInMsgs))
	}
	if n, staged := st.Next(); n != nil {
		kind := "pending"
		if staged {
			kind = "staged"
		}
		dir := statusDir(n)
		m.next = &next{Kind: kind, ID: dir.ID(), OSName: n.OSName, Checksum: n.Checksum, Serial: n.Serial, Version: n.Version,
			Input: ReferenceOf(n), imageRef: n.ContainerImageReference, rel: dir.Rel}
	}
	return m
}

// statusDir is where a deployment rpm-ostree reports lives in the sysroot.
func statusDir(d *Deployment) deployDir {
	return deployDir{Rel: fmt.Sprintf("ostree/deploy/%s/deploy/%s.%d", d.OSName, d.Checksum, d.Serial), OSName: d.OSName, Checksum: d.Checksum, Serial: d.Serial}
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
	fail := func(err error) *measured {
		add(res, CodeNoBootedDeployment, sdk.SeverityHigh, s.Sysroot, fmt.Sprintf("%s, and the booted deployment could not be found from ostree's own files either: %v", why, err))
		return nil
	}
	all, err := listDeployments(s.Sysroot)
	if err != nil {
		return fail(err)
	}
	d, by, arg, err := findBooted(s, all)
	if err != nil {
		return fail(err)
	}
	fd, err := readDeployment(s, d)
	if err != nil {
		return fail(err)
	}
	ref, err := fd.reference()
	if err != nil {
		return fail(err)
	}
	how := fmt.Sprintf("the deployment directory with the device and inode %s records (%s)", s.RunOstreeBooted, BootedByRecord)
	switch by {
	case BootedByRoot:
		how = fmt.Sprintf("the deployment directory with the device and inode of %s", s.RootPath)
	case BootedByKarg:
		how = fmt.Sprintf("ostree=%s", arg)
		add(res, CodeBootedByKarg, sdk.SeverityLow, fd.Dir, fmt.Sprintf(
			"%s records no device and inode of the booted deployment and %s is none of the deployments, so the booted deployment was taken from the kernel argument ostree=%s; libostree swaps boot.0 and boot.1 on every deploy, so after a deploy without a reboot that path can lead to another deployment than the one running",
			s.RunOstreeBooted, s.RootPath, arg))
	}
	add(res, CodeFallback, sdk.SeverityInfo, fd.Dir, fmt.Sprintf(
		"%s: measured from ostree's own files instead (the booted deployment is %s, found as %s); deployment_digest covers osname, checksum, serial and the origin file only, so it differs from the rpm-ostree digest of the same deployment",
		why, fd.Dir, how))
	m := &measured{source: SourceOstreeFiles, identity: NewFilesIdentity(fd.OSName, fd.Checksum, fd.Serial, fd.Origin, fd.Unlocked), dir: d,
		unlocked: fd.Unlocked, imageRef: fd.Origin["origin"]["container-image-reference"], ref: ref, bootedBy: by, bootArg: arg}
	pk := fd.Origin["packages"]
	req, local := ListValue(pk["requested"]), ListValue(pk["requested-local"])
	if len(req)+len(local) > 0 {
		m.layered = fmt.Sprintf("origin requests packages [%s]; local packages [%s]",
			clip(strings.Join(req, ", "), maxPackagesInMsgs), clip(strings.Join(local, ", "), maxPackagesInMsgs))
	}
	m.next = c.pendingFromFiles(res, d)
	return m
}

// pendingFromFiles finds the deployment the next boot starts when it is
// not the booted one: the staged deployment, else the bootloader's
// default. What cannot be read is a finding about the next boot, not about
// the booted deployment.
func (c *Check) pendingFromFiles(res *sdk.Result, booted deployDir) *next {
	s := c.settings
	kind := "staged"
	p, err := readStaged(s)
	if err == nil && p == nil {
		kind = "pending"
		p, err = findPending(s, booted)
	}
	if err == nil && p == nil {
		return nil
	}
	var fd *filesDeployment
	var ref Reference
	if err == nil {
		if fd, err = readDeployment(s, *p); err == nil {
			ref, err = fd.reference()
		}
	}
	if err != nil {
		add(res, CodeStagedUnexpected, sdk.SeverityHigh, s.BootPath, fmt.Sprintf("the deployment the next boot starts cannot be measured: %v", err))
		return nil
	}
	version, _ := fd.Commit.MetaString("version")
	return &next{Kind: kind, ID: p.ID(), OSName: p.OSName, Checksum: p.Checksum, Serial: p.Serial, Version: version,
		Input: ref, imageRef: fd.Origin["origin"]["container-image-reference"], rel: p.Rel}
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
