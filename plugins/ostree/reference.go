package ostree

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// This file holds the pure part of deployment_reference, unlocked modes,
// origin transports and the composefs= kernel argument.

// Reference is what deployment_reference covers: only what a release
// publishes, so that a release pipeline computes the value a machine
// running that release reports. deployment_reference is the lowercase hex
// SHA-256 of its RFC 8785 (JCS) canonical JSON (see Digest).
type Reference struct {
	// Base is the base commit's checksum (64 hex; base-checksum when
	// packages are layered on it), or for a container-image deployment the
	// image's manifest digest ("sha256:<64 hex>").
	Base string `json:"base"`
	// Version is the base's version ("" when it has none).
	Version string `json:"version"`
	// Packages are the client-side layered packages (names) and local
	// packages (NEVRAs), sorted, deduplicated; empty when nothing is
	// layered.
	Packages []string `json:"packages"`
	// Composefs is the fs-verity digest (64 hex) of the deployment's
	// composefs image (the composefs= kernel argument for the booted
	// deployment when present), "" when it has none.
	Composefs string `json:"composefs"`
	// Unlocked and LiveReplaced are set only when the running /usr is not
	// the release (unlocked, or changed live): no release carries them, so
	// such a deployment matches no expected reference.
	Unlocked     string `json:"unlocked,omitempty"`
	LiveReplaced string `json:"live_replaced,omitempty"`
}

// NewReference builds a reference with its packages sorted and
// deduplicated (never nil, so that it encodes as []).
func NewReference(base, version string, packages ...[]string) Reference {
	all := []string{}
	for _, p := range packages {
		all = append(all, p...)
	}
	slices.Sort(all)
	return Reference{Base: base, Version: version, Packages: slices.Compact(all)}
}

// ReferenceOf returns the reference of a deployment rpm-ostree reports,
// composefs digest aside.
func ReferenceOf(d *Deployment) Reference {
	base := d.Checksum
	switch {
	case d.ContainerImageReference != "" && d.ContainerImageReferenceDigest != "":
		base = d.ContainerImageReferenceDigest
	case d.BaseChecksum != "":
		base = d.BaseChecksum
	}
	r := NewReference(base, d.Version, d.Packages, d.RequestedLocalPackages)
	r.Unlocked = UnlockedMode(d.Unlocked)
	r.LiveReplaced = d.LiveReplaced
	if r.LiveReplaced == "" && d.LiveInProgress != "" {
		r.LiveReplaced = d.LiveInProgress
	}
	return r
}

// UnlockedMode returns the unlocked mode when the deployment is unlocked,
// "" when it is not ("" or "none").
func UnlockedMode(s string) string {
	if s == "none" {
		return ""
	}
	return s
}

// Unverified image transports: ostree-ext pulls such an image without
// checking any signature.
var unverifiedTransports = []string{"ostree-unverified-registry:", "ostree-unverified-image:"}

// UnverifiedOrigin reports whether an image reference was pulled without
// signature verification.
func UnverifiedOrigin(ref string) bool {
	for _, p := range unverifiedTransports {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	return false
}

// ValidManifestDigest reports whether s is "sha256:<64 lowercase hex>".
func ValidManifestDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	return ok && ValidChecksum(h)
}

// ComposefsArg returns the composefs= kernel argument's digest, "" when
// there is none. Its value must be 64 hex digits (a SHA-256 fs-verity
// digest); two different values are refused as ambiguous.
func ComposefsArg(cmdline string) (string, error) {
	var found string
	for _, w := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(w, "composefs=")
		if !ok {
			continue
		}
		v = strings.ToLower(strings.TrimPrefix(v, "sha256:"))
		if !ValidChecksum(v) {
			return "", fmt.Errorf("composefs=%s is not a SHA-256 digest (64 hex digits)", clip(v, 100))
		}
		if found != "" && v != found {
			return "", fmt.Errorf("ambiguous kernel command line: composefs=%s and composefs=%s", found, v)
		}
		found = v
	}
	return found, nil
}

// BootEntry is the part of a Boot Loader Specification entry
// (loader/entries/*.conf) that says which deployment it boots.
type BootEntry struct {
	Version int64
	Options string
}

// ErrNotBootEntry is returned for a boot entry without version or options.
var ErrNotBootEntry = errors.New("no version or no options line")

// ParseBootEntry parses a BLS entry as ostree writes it: "key value"
// lines; ostree numbers its entries with "version N", the highest being
// the default.
func ParseBootEntry(data []byte) (BootEntry, error) {
	var e BootEntry
	var haveVersion, haveOptions bool
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		k, v, _ := strings.Cut(line, " ")
		v = strings.TrimSpace(v)
		switch k {
		case "version":
			var n int64
			if _, err := fmt.Sscan(v, &n); err != nil || n < 0 || fmt.Sprint(n) != v {
				return BootEntry{}, fmt.Errorf("version %q is not a number", clip(v, 40))
			}
			e.Version, haveVersion = n, true
		case "options":
			e.Options, haveOptions = v, true
		}
	}
	if !haveVersion || !haveOptions {
		return BootEntry{}, ErrNotBootEntry
	}
	return e, nil
}
