package ostree

import (
	"fmt"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// report adds what is measured beside deployment_digest: the reference,
// the composefs digest, the next boot's deployment, and the findings about
// the booted deployment.
func (c *Check) report(res *sdk.Result, m *measured) error {
	s := c.settings
	id := m.dir.ID()
	m.ref.Composefs = c.bootedComposefs(res, m)
	ref, err := Digest(m.ref)
	if err != nil {
		return err
	}
	res.Set(KeyReference, ref)
	res.Set(KeyReferenceInput, m.ref)
	unlocked := m.unlocked
	if unlocked == "" {
		unlocked = "none"
	}
	res.Set(KeyUnlocked, unlocked)
	if m.bootedBy != "" {
		res.Set(KeyBootedBy, m.bootedBy)
	}
	if m.layered != "" {
		add(res, CodeLayeredPackages, sdk.SeverityLow, m.dir.Checksum, fmt.Sprintf("the booted deployment %s carries client-side layering: %s", m.dir.Checksum, m.layered))
	}
	if s.ExpectedChecksum != "" && m.dir.Checksum != s.ExpectedChecksum {
		add(res, CodeChecksumMismatch, sdk.SeverityHigh, m.dir.Checksum, fmt.Sprintf("the booted deployment's checksum is %s, expected_checksum is %s", m.dir.Checksum, s.ExpectedChecksum))
	}
	if m.unlocked != "" {
		add(res, CodeUnlocked, sdk.SeverityHigh, id, fmt.Sprintf("the booted deployment %s is unlocked (%s): the running /usr is writable or changed, not commit %s; deployment_digest and deployment_reference include unlocked=%s", id, m.unlocked, m.dir.Checksum, m.unlocked))
	}
	if m.live != "" {
		add(res, CodeLiveApplied, sdk.SeverityMedium, id, fmt.Sprintf("on the booted deployment %s, %s: the running /usr is not commit %s; deployment_digest and deployment_reference include it", id, m.live, m.dir.Checksum))
	}
	if UnverifiedOrigin(m.imageRef) {
		add(res, CodeUnverifiedOrigin, sdk.SeverityMedium, id, fmt.Sprintf("the booted deployment %s comes from %s, pulled without any signature check", id, m.imageRef))
	}
	if s.Expected != nil && !s.Expected[ref] {
		add(res, CodeUnexpected, sdk.SeverityHigh, id, fmt.Sprintf("the booted deployment %s has deployment_reference %s (base %s, version %q), which expected_deployments does not list", id, ref, m.ref.Base, m.ref.Version))
	}
	return c.reportNext(res, m.next)
}

// bootedComposefs checks the composefs= kernel argument against the booted
// deployment's composefs image and returns the digest the reference
// carries: the argument's when present (the kernel mounted the image that
// digest names), else the image's.
func (c *Check) bootedComposefs(res *sdk.Result, m *measured) string {
	s := c.settings
	var karg string
	if cmdline, err := readSmall(s.CmdlinePath, maxCmdlineBytes); err == nil {
		if karg, err = ComposefsArg(string(cmdline)); err != nil {
			add(res, CodeComposefsMismatch, sdk.SeverityHigh, s.CmdlinePath, fmt.Sprintf("%s: %v", s.CmdlinePath, err))
		}
	}
	image, err := composefsDigest(s.Sysroot, m.dir.Rel)
	subject := m.dir.ID()
	switch {
	case karg == "" && err != nil:
		add(res, CodeComposefsMismatch, sdk.SeverityHigh, subject, fmt.Sprintf("the booted deployment's composefs image cannot be read: %v", err))
		return ""
	case karg == "":
		return image
	case err != nil:
		add(res, CodeComposefsMismatch, sdk.SeverityHigh, subject, fmt.Sprintf("the kernel command line carries composefs=%s but the booted deployment's composefs image cannot be read: %v", karg, err))
	case image == "":
		add(res, CodeComposefsMismatch, sdk.SeverityHigh, subject, fmt.Sprintf("the kernel command line carries composefs=%s but the booted deployment %s has no composefs image (.ostree.cfs)", karg, subject))
	case image != karg:
		add(res, CodeComposefsMismatch, sdk.SeverityHigh, subject, fmt.Sprintf("the kernel command line carries composefs=%s but the booted deployment's composefs image has fs-verity digest %s", karg, image))
	}
	res.Set(KeyComposefs, karg)
	return karg
}

// reportNext measures the next boot's deployment with its own reference
// and holds it against expected_deployments.
func (c *Check) reportNext(res *sdk.Result, n *next) error {
	if n == nil {
		return nil
	}
	s := c.settings
	cfs, err := composefsDigest(s.Sysroot, n.rel)
	if err != nil {
		add(res, CodeStagedUnexpected, sdk.SeverityHigh, n.ID, fmt.Sprintf("the %s deployment %s cannot be measured: %v", n.Kind, n.ID, err))
		return nil
	}
	n.Input.Composefs = cfs
	if n.Ref, err = Digest(n.Input); err != nil {
		return err
	}
	res.Set(KeyNextDeployment, n)
	if UnverifiedOrigin(n.imageRef) {
		add(res, CodeUnverifiedOrigin, sdk.SeverityMedium, n.ID, fmt.Sprintf("the %s deployment %s comes from %s, pulled without any signature check", n.Kind, n.ID, n.imageRef))
	}
	what := fmt.Sprintf("deployment %s (version %q, checksum %s) is %s and becomes the booted deployment at the next reboot; its deployment_reference is %s", n.ID, n.Version, n.Checksum, n.Kind, n.Ref)
	switch {
	case s.Expected == nil:
		add(res, CodeStaged, sdk.SeverityInfo, n.Checksum, what)
	case s.Expected[n.Ref]:
		add(res, CodeStaged, sdk.SeverityInfo, n.Checksum, what+", which expected_deployments lists")
	default:
		add(res, CodeStagedUnexpected, sdk.SeverityHigh, n.Checksum, what+", which expected_deployments does not list")
	}
	return nil
}
