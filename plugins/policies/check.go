// Package policies is the built-in check that hashes the policy files, in
// order, into policy_digest, and the registry manifest into
// registry_manifest_hash.
package policies

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// Version is the plugin's version.
const Version = "1.0.0"

// Finding codes.
const (
	CodeNoPolicyFiles      = "policies.no_policy_files"
	CodeFileMissing        = "policies.file_missing"
	CodeFileUnreadable     = "policies.file_unreadable"
	CodeManifestMissing    = "policies.manifest_missing"
	CodeManifestUnreadable = "policies.manifest_unreadable"
)

// Measurement keys.
const (
	KeyPolicyDigest         = "policy_digest"
	KeyRegistryManifestHash = "registry_manifest_hash"
	KeyPolicyFiles          = "policy_files"
	KeyRegistryManifestPath = "registry_manifest_path"
)

// Defaults.
const (
	DefaultRegistryManifestPath = "/var/lib/secure-ai/registry/manifest.json"
	DefaultMaxFileBytes         = 64 << 20
)

// DefaultPolicyFiles are the appliance's default policy files; the daemon
// normally injects the policy's own list.
var DefaultPolicyFiles = []string{"/etc/secure-ai/policy/policy.yaml", "/etc/secure-ai/policy/agent.yaml"}

// Config is the plugin's configuration.
type Config struct {
	// PolicyFiles is the policy's top-level policy_files, injected by the
	// daemon: absolute paths, hashed in this order.
	PolicyFiles []string `json:"policy_files"`
	// RegistryManifestPath is the registry manifest to hash.
	RegistryManifestPath string `json:"registry_manifest_path"`
	// MaxFileBytes refuses any file larger than this (a policy pointed at
	// a device or a runaway file must not hash forever).
	MaxFileBytes int64 `json:"max_file_bytes"`
}

// DefaultConfig returns the configuration that measures the real system.
func DefaultConfig() Config {
	return Config{
		PolicyFiles:          append([]string(nil), DefaultPolicyFiles...),
		RegistryManifestPath: DefaultRegistryManifestPath,
		MaxFileBytes:         DefaultMaxFileBytes,
	}
}

func validate(cfg Config) error {
	seen := map[string]int{}
	for i, p := range cfg.PolicyFiles {
		if err := checkPath(p); err != nil {
			return sdk.ConfigErrorf("policy_files", "entry %d: %v", i, err)
		}
		if j, dup := seen[p]; dup {
			return sdk.ConfigErrorf("policy_files", "entry %d: %s is already entry %d", i, p, j)
		}
		seen[p] = i
	}
	if err := checkPath(cfg.RegistryManifestPath); err != nil {
		return sdk.ConfigErrorf("registry_manifest_path", "%v", err)
	}
	if cfg.MaxFileBytes <= 0 {
		return sdk.ConfigErrorf("max_file_bytes", "must be positive, got %d", cfg.MaxFileBytes)
	}
	return nil
}

// checkPath accepts an absolute, clean path: the digest covers the path as
// written, so one file has one spelling.
func checkPath(p string) error {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %q contains a NUL byte", p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("must be an absolute path, got %q", p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (want %q)", p, filepath.Clean(p))
	}
	return nil
}

// Check is the policies check.
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
		Name:    "policies",
		Version: Version,
		Summary: "SHA-256 over the policy files in order (policy_digest) and of the registry manifest",
		Fills:   []string{KeyPolicyDigest, KeyRegistryManifestHash},
		Findings: []sdk.FindingSpec{
			{Code: CodeNoPolicyFiles, DefaultSeverity: sdk.SeverityInfo,
				Description: "policy_files is empty: there is no policy digest"},
			{Code: CodeFileMissing, DefaultSeverity: sdk.SeverityMedium,
				Description: "a policy file does not exist; policy_digest is absent"},
			{Code: CodeFileUnreadable, DefaultSeverity: sdk.SeverityMedium,
				Description: "a policy file cannot be read (permissions, not a regular file, larger than max_file_bytes, changed while read); policy_digest is absent"},
			{Code: CodeManifestMissing, DefaultSeverity: sdk.SeverityLow,
				Description: "the registry manifest does not exist (the registry starts after the attestor and may not have written it yet); registry_manifest_hash is absent"},
			{Code: CodeManifestUnreadable, DefaultSeverity: sdk.SeverityMedium,
				Description: "the registry manifest cannot be read; registry_manifest_hash is absent"},
		},
	}
}

// Configure implements sdk.Configurer.
func (c *Check) Configure(_ context.Context, raw sdk.Config) error {
	cfg := DefaultConfig()
	if err := raw.Decode(&cfg); err != nil {
		return err
	}
	if err := validate(cfg); err != nil {
		return err
	}
	c.cfg = cfg
	return nil
}

// FileDigest is one entry of the policy_files measurement.
type FileDigest struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
	Size   *int64 `json:"size,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Measure implements sdk.Check.
func (c *Check) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("measure policies: %w", err)
	}
	res := sdk.NewResult()
	cfg := c.cfg

	if len(cfg.PolicyFiles) == 0 {
		res.Addf(CodeNoPolicyFiles, sdk.SeverityInfo, "policy_files", "policy_files is empty: no policy digest is computed")
	}
	digest := NewPolicyDigest()
	digestOK := len(cfg.PolicyFiles) > 0
	files := make([]FileDigest, 0, len(cfg.PolicyFiles))
	for _, path := range cfg.PolicyFiles {
		entry := FileDigest{Path: path}
		var extra io.Writer
		begin := func(int64) error { return nil }
		if digestOK {
			extra = digest
			begin = func(size int64) error { return digest.BeginFile(path, size) }
		}
		sum, size, err := hashFile(ctx, path, cfg.MaxFileBytes, begin, extra)
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("hash policy file %s: %w", path, cerr)
		}
		if err != nil {
			digestOK = false
			entry.Error = err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				res.Addf(CodeFileMissing, sdk.SeverityMedium, path, "policy file %s does not exist; policy_digest is not computed", path)
			} else {
				res.Addf(CodeFileUnreadable, sdk.SeverityMedium, path, "policy file %s cannot be hashed: %v; policy_digest is not computed", path, err)
			}
		} else {
			entry.SHA256, entry.Size = sum, &size
		}
		files = append(files, entry)
	}
	res.Set(KeyPolicyFiles, files)
	if digestOK {
		sum, err := digest.Sum()
		if err != nil {
			return nil, fmt.Errorf("policy digest: %w", err)
		}
		res.Set(KeyPolicyDigest, sum)
	}

	path := cfg.RegistryManifestPath
	res.Set(KeyRegistryManifestPath, path)
	sum, _, err := hashFile(ctx, path, cfg.MaxFileBytes, func(int64) error { return nil }, nil)
	if cerr := ctx.Err(); cerr != nil {
		return nil, fmt.Errorf("hash registry manifest %s: %w", path, cerr)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Addf(CodeManifestMissing, sdk.SeverityLow, path, "registry manifest %s does not exist; registry_manifest_hash is not computed", path)
	case err != nil:
		res.Addf(CodeManifestUnreadable, sdk.SeverityMedium, path, "registry manifest %s cannot be hashed: %v; registry_manifest_hash is not computed", path, err)
	default:
		res.Set(KeyRegistryManifestHash, sum)
	}
	return res, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// hashFile streams the regular file at path through SHA-256 (and extra,
// when not nil) in constant memory. begin is called with the file's size
// before any content is written. It refuses non-regular files and files
// larger than max, opens without blocking (a FIFO cannot hang it), and
// fails when the file's length differs from its size at open (changed
// while read). A missing file's error matches fs.ErrNotExist.
func hashFile(ctx context.Context, path string, max int64, begin func(size int64) error, extra io.Writer) (string, int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	size := fi.Size()
	if size > max {
		return "", 0, fmt.Errorf("%d bytes, larger than max_file_bytes (%d)", size, max)
	}
	if err := begin(size); err != nil {
		return "", 0, err
	}
	h := sha256.New()
	w := io.Writer(h)
	if extra != nil {
		w = io.MultiWriter(h, extra)
	}
	// Read one byte past the size to notice a file that grew.
	n, err := io.CopyBuffer(w, ctxReader{ctx, io.LimitReader(f, size+1)}, make([]byte, 64<<10))
	switch {
	case errors.Is(err, ErrContentLength) || (err == nil && n > size):
		return "", 0, fmt.Errorf("changed while being read: more than the %d bytes it had when opened", size)
	case err != nil:
		return "", 0, fmt.Errorf("read: %w", err)
	case n < size:
		return "", 0, fmt.Errorf("changed while being read: %d bytes, %d when opened", n, size)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}
