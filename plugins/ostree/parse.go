package ostree

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gowebpki/jcs"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// This file holds the pure part of the plugin: the configuration, the
// rpm-ostree status JSON, the ostree= kernel argument, deployment paths,
// origin key files and the deployment digest. Nothing here does I/O.

// Sources of a measurement.
const (
	SourceRPMOStree   = "rpm-ostree"
	SourceOstreeFiles = "ostree-files"
)

// Defaults.
const (
	DefaultRPMOStree       = "rpm-ostree"
	DefaultTimeout         = 20 * time.Second
	DefaultRunOstreeBooted = "/run/ostree-booted"
	DefaultSysroot         = "/sysroot"
	DefaultCmdlinePath     = "/proc/cmdline"
	DefaultRunOstreeDir    = "/run/ostree"
	DefaultBootPath        = "/boot"
	DefaultRootPath        = "/"
	DefaultMaxOutputBytes  = 16 << 20
	maxTimeout             = 10 * time.Minute
	maxOutputLimit         = 1 << 30
	maxSerial              = 1<<31 - 1
	maxExpected            = 4096
)

// Config is the plugin's configuration (plugins.ostree.config).
type Config struct {
	// RPMOStree is the rpm-ostree command: a name looked up on PATH or an
	// absolute path.
	RPMOStree string `json:"rpm_ostree"`
	// Timeout bounds one `rpm-ostree status --json` (Go duration).
	Timeout string `json:"timeout"`
	// ExpectedChecksum pins the booted deployment's ostree checksum.
	ExpectedChecksum string `json:"expected_checksum"`
	// RunOstreeBooted is the file ostree-prepare-root creates on a booted
	// ostree system.
	RunOstreeBooted string `json:"run_ostree_booted"`
	// Sysroot is where the physical root (holding ostree/) is mounted.
	Sysroot string `json:"sysroot"`
	// CmdlinePath is the kernel command line, for the ostree= argument.
	CmdlinePath string `json:"cmdline_path"`
	// MaxOutputBytes bounds rpm-ostree's standard output.
	MaxOutputBytes int64 `json:"max_output_bytes"`
	// ExpectedDeployments lists the deployment_reference values a booted
	// (and a staged or pending) deployment may have; empty: no check.
	ExpectedDeployments []string `json:"expected_deployments"`
	// RunOstreeDir is libostree's run-time state (deployment-state/ holds
	// the unlocked-development and unlocked-transient flags).
	RunOstreeDir string `json:"run_ostree_dir"`
	// BootPath is the boot partition, holding loader/entries/*.conf.
	BootPath string `json:"boot_path"`
	// RootPath is the running root, whose device and inode identify the
	// booted deployment when /run/ostree-booted does not record them.
	RootPath string `json:"root_path"`
}

// DefaultConfig returns the configuration that measures the real system.
func DefaultConfig() Config {
	return Config{
		RPMOStree:       DefaultRPMOStree,
		Timeout:         DefaultTimeout.String(),
		RunOstreeBooted: DefaultRunOstreeBooted,
		Sysroot:         DefaultSysroot,
		CmdlinePath:     DefaultCmdlinePath,
		MaxOutputBytes:  DefaultMaxOutputBytes,
		RunOstreeDir:    DefaultRunOstreeDir,
		BootPath:        DefaultBootPath,
		RootPath:        DefaultRootPath,
	}
}

// Settings is a validated configuration.
type Settings struct {
	RPMOStree        string
	Timeout          time.Duration
	ExpectedChecksum string // lowercase hex or ""
	RunOstreeBooted  string
	Sysroot          string
	CmdlinePath      string
	MaxOutputBytes   int64
	// Expected holds expected_deployments (lowercase hex); nil: no check.
	Expected     map[string]bool
	RunOstreeDir string
	BootPath     string
	RootPath     string
}

// DefaultSettings returns the validated default configuration.
func DefaultSettings() Settings {
	s, err := ParseConfig(sdk.NewConfig(nil))
	if err != nil {
		panic("ostree: default configuration is invalid: " + err.Error())
	}
	return s
}

// ParseConfig decodes the configuration over the defaults and validates it.
// Its errors are *sdk.ConfigError naming the key.
func ParseConfig(cfg sdk.Config) (Settings, error) {
	c := DefaultConfig()
	if err := cfg.Decode(&c); err != nil {
		return Settings{}, err
	}
	s := Settings{MaxOutputBytes: c.MaxOutputBytes}
	switch {
	case c.RPMOStree == "":
		return Settings{}, sdk.ConfigErrorf("rpm_ostree", "empty command")
	case strings.ContainsRune(c.RPMOStree, 0):
		return Settings{}, sdk.ConfigErrorf("rpm_ostree", "contains a NUL byte")
	case strings.Contains(c.RPMOStree, "/") && !filepath.IsAbs(c.RPMOStree):
		return Settings{}, sdk.ConfigErrorf("rpm_ostree", "%q is neither a command name looked up on PATH nor an absolute path", c.RPMOStree)
	}
	s.RPMOStree = c.RPMOStree
	d, err := time.ParseDuration(c.Timeout)
	if err != nil {
		return Settings{}, sdk.ConfigErrorf("timeout", "not a duration like \"20s\": %q", c.Timeout)
	}
	if d <= 0 || d > maxTimeout {
		return Settings{}, sdk.ConfigErrorf("timeout", "must be positive and at most %s, got %s", maxTimeout, d)
	}
	s.Timeout = d
	sum := strings.ToLower(c.ExpectedChecksum)
	if sum != "" && !ValidChecksum(sum) {
		return Settings{}, sdk.ConfigErrorf("expected_checksum", "not an ostree checksum (64 hex digits): %q", c.ExpectedChecksum)
	}
	s.ExpectedChecksum = sum
	for _, p := range []struct {
		key, val string
		dst      *string
	}{
		{"run_ostree_booted", c.RunOstreeBooted, &s.RunOstreeBooted},
		{"sysroot", c.Sysroot, &s.Sysroot},
		{"cmdline_path", c.CmdlinePath, &s.CmdlinePath},
		{"run_ostree_dir", c.RunOstreeDir, &s.RunOstreeDir},
		{"boot_path", c.BootPath, &s.BootPath},
		{"root_path", c.RootPath, &s.RootPath},
	} {
		if p.val == "" || !filepath.IsAbs(p.val) || strings.ContainsRune(p.val, 0) {
			return Settings{}, sdk.ConfigErrorf(p.key, "must be an absolute path, got %q", p.val)
		}
		*p.dst = filepath.Clean(p.val)
	}
	if c.MaxOutputBytes < 1024 || c.MaxOutputBytes > maxOutputLimit {
		return Settings{}, sdk.ConfigErrorf("max_output_bytes", "must be between 1024 and %d, got %d", maxOutputLimit, c.MaxOutputBytes)
	}
	if len(c.ExpectedDeployments) > maxExpected {
		return Settings{}, sdk.ConfigErrorf("expected_deployments", "%d entries, at most %d", len(c.ExpectedDeployments), maxExpected)
	}
	for i, r := range c.ExpectedDeployments {
		ref := strings.ToLower(r)
		if !ValidChecksum(ref) {
			return Settings{}, sdk.ConfigErrorf("expected_deployments", "entry %d: %q is not a deployment_reference (64 hex digits)", i, clip(r, 80))
		}
		if s.Expected == nil {
			s.Expected = map[string]bool{}
		}
		s.Expected[ref] = true
	}
	return s, nil
}

// ValidChecksum reports whether s is an ostree checksum: 64 lowercase hex
// digits.
func ValidChecksum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Status is the part of `rpm-ostree status --json` that the check reads.
// rpm-ostree prints many more keys; they are ignored.
type Status struct {
	Deployments []Deployment `json:"deployments"`
}

// Deployment is one entry of Status.Deployments.
type Deployment struct {
	ID                      string   `json:"id"`
	OSName                  string   `json:"osname"`
	Serial                  int64    `json:"serial"`
	Checksum                string   `json:"checksum"`
	BaseChecksum            string   `json:"base-checksum"`
	Origin                  string   `json:"origin"`
	ContainerImageReference string   `json:"container-image-reference"`
	Version                 string   `json:"version"`
	Timestamp               int64    `json:"timestamp"`
	Booted                  bool     `json:"booted"`
	Staged                  bool     `json:"staged"`
	Pinned                  bool     `json:"pinned"`
	Packages                []string `json:"packages"`
	RequestedPackages       []string `json:"requested-packages"`
	RequestedLocalPackages  []string `json:"requested-local-packages"`
	// ContainerImageReferenceDigest is the image's manifest digest
	// ("sha256:…") for container-image deployments.
	ContainerImageReferenceDigest string `json:"container-image-reference-digest"`
	// Unlocked is none, hotfix, development or transient (absent from
	// older rpm-ostree: none).
	Unlocked string `json:"unlocked"`
	// LiveReplaced is the commit applied live over the deployment
	// (rpm-ostree apply-live); LiveInProgress one being applied.
	LiveReplaced   string `json:"live-replaced"`
	LiveInProgress string `json:"live-inprogress"`
}

// ErrNoBooted is returned by Status.Booted when no deployment is booted.
var ErrNoBooted = errors.New("no deployment is marked booted")

// ParseStatus parses the standard output of `rpm-ostree status --json`.
// It refuses empty, truncated or non-JSON output, a missing deployments
// array, malformed checksums and more than one booted or staged deployment.
func ParseStatus(data []byte) (*Status, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty output")
	}
	var probe struct {
		Deployments *json.RawMessage `json:"deployments"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if probe.Deployments == nil || bytes.Equal(bytes.TrimSpace(*probe.Deployments), []byte("null")) {
		return nil, errors.New("no \"deployments\" array")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var st Status
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON object")
	}
	booted, staged := 0, 0
	for i, d := range st.Deployments {
		if !ValidChecksum(d.Checksum) {
			return nil, fmt.Errorf("deployment %d: checksum %q is not 64 lowercase hex digits", i, clip(d.Checksum, 80))
		}
		if d.BaseChecksum != "" && !ValidChecksum(d.BaseChecksum) {
			return nil, fmt.Errorf("deployment %d: base-checksum %q is not 64 lowercase hex digits", i, clip(d.BaseChecksum, 80))
		}
		if err := checkOSName(d.OSName); err != nil {
			return nil, fmt.Errorf("deployment %d: osname: %w", i, err)
		}
		if d.Serial < 0 || d.Serial > maxSerial {
			return nil, fmt.Errorf("deployment %d: serial %d out of range", i, d.Serial)
		}
		if d.Booted {
			booted++
		}
		if d.Staged {
			staged++
		}
	}
	if booted > 1 {
		return nil, fmt.Errorf("%d deployments are marked booted", booted)
	}
	if staged > 1 {
		return nil, fmt.Errorf("%d deployments are marked staged", staged)
	}
	return &st, nil
}

// Booted returns the booted deployment, or ErrNoBooted.
func (s *Status) Booted() (*Deployment, error) {
	for i := range s.Deployments {
		if s.Deployments[i].Booted {
			return &s.Deployments[i], nil
		}
	}
	return nil, ErrNoBooted
}

// Next returns the deployment the next boot starts when it is not the
// booted one, and whether it is staged (finalized at shutdown) rather than
// pending (already the bootloader's default). rpm-ostree lists deployments
// in boot order, so that is the first one. It returns nil when the next
// boot is the booted deployment again.
func (s *Status) Next() (*Deployment, bool) {
	for i := range s.Deployments {
		if s.Deployments[i].Staged && !s.Deployments[i].Booted {
			return &s.Deployments[i], true
		}
	}
	if len(s.Deployments) > 0 && !s.Deployments[0].Booted {
		return &s.Deployments[0], false
	}
	return nil, false
}

func checkOSName(n string) error {
	switch {
	case n == "":
		return errors.New("empty")
	case n == "." || n == ".." || strings.ContainsAny(n, "/\x00"):
		return fmt.Errorf("%q is not a stateroot name", clip(n, 80))
	case len(n) > 255:
		return errors.New("longer than 255 bytes")
	case !utf8.ValidString(n):
		return errors.New("not valid UTF-8")
	}
	return nil
}

// RPMOStreeIdentity is what deployment_digest covers when rpm-ostree
// measured the booted deployment. Every field is always present (empty
// strings and empty arrays included) and the package lists are sorted, so
// the same deployment always gives the same canonical JSON.
type RPMOStreeIdentity struct {
	Source                  string   `json:"source"` // "rpm-ostree"
	OSName                  string   `json:"osname"`
	Checksum                string   `json:"checksum"`
	Serial                  int64    `json:"serial"`
	BaseChecksum            string   `json:"base_checksum"`
	Origin                  string   `json:"origin"`
	ContainerImageReference string   `json:"container_image_reference"`
	Version                 string   `json:"version"`
	Packages                []string `json:"packages"`
	RequestedPackages       []string `json:"requested_packages"`
	RequestedLocalPackages  []string `json:"requested_local_packages"`
	// Unlocked, LiveReplaced and LiveInProgress appear only when the
	// running /usr is not the commit (unlocked other than none, a live
	// apply): the digest of a pristine deployment is unchanged by them.
	Unlocked       string `json:"unlocked,omitempty"`
	LiveReplaced   string `json:"live_replaced,omitempty"`
	LiveInProgress string `json:"live_inprogress,omitempty"`
}

// IdentityOf returns the identity of a deployment reported by rpm-ostree.
func IdentityOf(d *Deployment) RPMOStreeIdentity {
	return RPMOStreeIdentity{
		Source:                  SourceRPMOStree,
		OSName:                  d.OSName,
		Checksum:                d.Checksum,
		Serial:                  d.Serial,
		BaseChecksum:            d.BaseChecksum,
		Origin:                  d.Origin,
		ContainerImageReference: d.ContainerImageReference,
		Version:                 d.Version,
		Packages:                sortedCopy(d.Packages),
		RequestedPackages:       sortedCopy(d.RequestedPackages),
		RequestedLocalPackages:  sortedCopy(d.RequestedLocalPackages),
		Unlocked:                UnlockedMode(d.Unlocked),
		LiveReplaced:            d.LiveReplaced,
		LiveInProgress:          d.LiveInProgress,
	}
}

// FilesIdentity is what deployment_digest covers when the booted deployment
// was found from ostree's own files (the fallback): the stateroot, the
// checksum and serial from the deployment directory's name, and the
// deployment's origin file as group → key → value, without the
// libostree-transient group (where ostree keeps the pinned flag, which
// changes without a new deployment).
type FilesIdentity struct {
	Source   string                       `json:"source"` // "ostree-files"
	OSName   string                       `json:"osname"`
	Checksum string                       `json:"checksum"`
	Serial   int64                        `json:"serial"`
	Origin   map[string]map[string]string `json:"origin"`
	// Unlocked appears only when the deployment is unlocked (the origin's
	// unlocked=, or libostree's development or transient run-time flag).
	Unlocked string `json:"unlocked,omitempty"`
}

// TransientGroup is the origin key-file group ostree rewrites in place.
const TransientGroup = "libostree-transient"

// NewFilesIdentity builds the fallback identity.
func NewFilesIdentity(osname, checksum string, serial int64, origin KeyFile, unlocked string) FilesIdentity {
	o := make(map[string]map[string]string, len(origin))
	for g, kv := range origin {
		if g == TransientGroup {
			continue
		}
		o[g] = kv
	}
	return FilesIdentity{Source: SourceOstreeFiles, OSName: osname, Checksum: checksum, Serial: serial, Origin: o, Unlocked: UnlockedMode(unlocked)}
}

// Digest is the lowercase hex SHA-256 of the RFC 8785 (JCS) canonical JSON
// of an identity: anyone can recompute deployment_digest from the
// deployment measurement.
func Digest(identity any) (string, error) {
	raw, err := json.Marshal(identity)
	if err != nil {
		return "", fmt.Errorf("encode deployment identity: %w", err)
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		return "", fmt.Errorf("canonicalize deployment identity: %w", err)
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), nil
}

func sortedCopy(in []string) []string {
	out := make([]string, len(in))
	copy(out, in)
	slices.Sort(out)
	return out
}

// OstreeArg returns the value of the ostree= kernel argument, found the way
// ostree-prepare-root finds it (space-separated words, first match). Two
// ostree= arguments with different values are refused as ambiguous.
func OstreeArg(cmdline string) (string, error) {
	var found string
	for _, w := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(w, "ostree=")
		if !ok {
			continue
		}
		if found != "" && v != found {
			return "", fmt.Errorf("ambiguous kernel command line: ostree=%s and ostree=%s", clip(found, 200), clip(v, 200))
		}
		found = v
	}
	switch {
	case found == "":
		return "", errors.New("no ostree= argument on the kernel command line")
	case !strings.HasPrefix(found, "/ostree/") || filepath.Clean(found) != found:
		return "", fmt.Errorf("ostree=%s is not a clean path under /ostree/", clip(found, 200))
	}
	return found, nil
}

// ParseDeployPath parses a deployment directory's path relative to the
// sysroot, "ostree/deploy/<osname>/deploy/<checksum>.<serial>".
func ParseDeployPath(rel string) (osname, checksum string, serial int64, err error) {
	parts := strings.Split(rel, "/")
	if len(parts) != 5 || parts[0] != "ostree" || parts[1] != "deploy" || parts[3] != "deploy" {
		return "", "", 0, fmt.Errorf("%q is not ostree/deploy/<osname>/deploy/<checksum>.<serial>", clip(rel, 300))
	}
	osname = parts[2]
	if err := checkOSName(osname); err != nil {
		return "", "", 0, fmt.Errorf("stateroot in %q: %w", clip(rel, 300), err)
	}
	checksum, s, ok := strings.Cut(parts[4], ".")
	if !ok || !ValidChecksum(checksum) {
		return "", "", 0, fmt.Errorf("deployment %q is not <checksum>.<serial>", clip(parts[4], 100))
	}
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return "", "", 0, fmt.Errorf("deployment %q has a malformed serial", clip(parts[4], 100))
	}
	serial, err = strconv.ParseInt(s, 10, 64)
	if err != nil || serial > maxSerial {
		return "", "", 0, fmt.Errorf("deployment %q has a serial out of range", clip(parts[4], 100))
	}
	return osname, checksum, serial, nil
}

// KeyFile is a parsed GLib key file: group → key → value.
type KeyFile map[string]map[string]string

// ParseKeyFile parses a GLib key file such as a deployment's .origin:
// "[group]" headers, "key=value" lines, "#" comments and blank lines. As in
// GLib, whitespace around the key and before the value is dropped and a
// repeated key keeps its last value. Values are kept as written (escapes
// are not expanded), which is what the digest needs. A key before any
// group, a malformed line or invalid UTF-8 is refused.
func ParseKeyFile(data []byte) (KeyFile, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	kf := KeyFile{}
	group := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimLeft(line, " \t")
		switch {
		case trimmed == "" || trimmed[0] == '#':
			continue
		case trimmed[0] == '[':
			end := strings.IndexByte(trimmed, ']')
			if end < 0 || strings.TrimRight(trimmed[end+1:], " \t") != "" {
				return nil, fmt.Errorf("line %d: malformed group header %q", i+1, clip(line, 100))
			}
			group = trimmed[1:end]
			if group == "" || strings.ContainsAny(group, "[]") || hasControl(group) {
				return nil, fmt.Errorf("line %d: invalid group name %q", i+1, clip(group, 100))
			}
			if kf[group] == nil {
				kf[group] = map[string]string{}
			}
		default:
			if group == "" {
				return nil, fmt.Errorf("line %d: key outside any group", i+1)
			}
			k, v, ok := strings.Cut(trimmed, "=")
			k = strings.TrimRight(k, " \t")
			if !ok || k == "" || (strings.ContainsAny(k, "[]") && !validLocaleKey(k)) || hasControl(k) {
				return nil, fmt.Errorf("line %d: not a key=value line: %q", i+1, clip(line, 100))
			}
			kf[group][k] = strings.TrimLeft(v, " \t")
		}
	}
	return kf, nil
}

// validLocaleKey accepts GLib's localized keys, "name[locale]".
func validLocaleKey(k string) bool {
	open := strings.IndexByte(k, '[')
	return open > 0 && strings.HasSuffix(k, "]") && !strings.ContainsAny(k[open+1:len(k)-1], "[]") && len(k) > open+2
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// ListValue splits a GLib string list ("a;b;c;").
func ListValue(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// clip shortens s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// printable replaces control characters (but not newlines and tabs, which
// become spaces) so that a command's stderr reads well in one message.
func printable(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n' || r == '\t' || r == '\r':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}
