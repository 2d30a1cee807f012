package binaries

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// This file holds the pure part of the plugin: decoding and validating the
// configuration, and the path arithmetic of the symlink policy. Nothing here
// touches the file system.

// Limits on the configuration.
const (
	// MaxServices bounds service_binaries. Each service yields at most one
	// finding, so this keeps a measurement well under the protocol's limit
	// on findings.
	MaxServices = 2048
	// MaxParallelLimit bounds max_parallel.
	MaxParallelLimit = 64
	// DefaultMaxParallel is max_parallel when it is not set.
	DefaultMaxParallel = 2
	maxNameLen         = 128
	maxPathLen         = 4096
)

// DefaultSymlinkRoot is the directory, besides the binary's own directory
// tree, that a symlinked binary may resolve into by default.
const DefaultSymlinkRoot = "/usr"

// Config is the plugin's configuration as the daemon sends it.
type Config struct {
	// ServiceBinaries is the policy's top-level service_binaries, injected
	// by the daemon: service name → binary path and optional pinned digest.
	ServiceBinaries map[string]ServiceBinary `json:"service_binaries"`
	// MaxParallel bounds how many files are hashed at once (default 2).
	MaxParallel *int `json:"max_parallel"`
	// AllowedSymlinkRoots lists the absolute directories a symlinked binary
	// may resolve into. Unset: the binary's own directory tree and /usr. Set
	// (even to []): exactly these.
	AllowedSymlinkRoots *[]string `json:"allowed_symlink_roots"`
	// MaxFileBytes, when set, refuses to hash a binary larger than this.
	MaxFileBytes *int64 `json:"max_file_bytes"`
}

// ServiceBinary is one entry of service_binaries.
type ServiceBinary struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Service is a validated service_binaries entry.
type Service struct {
	Name   string
	Path   string // absolute and clean
	SHA256 string // lowercase hex, "" when not pinned
}

// Settings is a validated configuration.
type Settings struct {
	Services []Service // sorted by name
	Options  Options
}

// ParseConfig decodes and validates the plugin's configuration. Its errors
// are *sdk.ConfigError naming the offending key.
func ParseConfig(cfg sdk.Config) (Settings, error) {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return Settings{}, err
	}
	s := Settings{Options: Options{Parallel: DefaultMaxParallel}}
	if c.MaxParallel != nil {
		if p := *c.MaxParallel; p < 1 || p > MaxParallelLimit {
			return Settings{}, sdk.ConfigErrorf("max_parallel", "must be between 1 and %d, got %d", MaxParallelLimit, p)
		}
		s.Options.Parallel = *c.MaxParallel
	}
	if c.MaxFileBytes != nil {
		if *c.MaxFileBytes < 1 {
			return Settings{}, sdk.ConfigErrorf("max_file_bytes", "must be a positive number of bytes, got %d", *c.MaxFileBytes)
		}
		s.Options.MaxFileBytes = *c.MaxFileBytes
	}
	if c.AllowedSymlinkRoots != nil {
		roots := make([]string, 0, len(*c.AllowedSymlinkRoots))
		for i, r := range *c.AllowedSymlinkRoots {
			key := fmt.Sprintf("allowed_symlink_roots[%d]", i)
			if err := checkAbsPath(key, r); err != nil {
				return Settings{}, err
			}
			roots = append(roots, filepath.Clean(r))
		}
		s.Options.AllowedRoots = roots
	}
	if len(c.ServiceBinaries) > MaxServices {
		return Settings{}, sdk.ConfigErrorf("service_binaries", "%d services, more than the limit of %d", len(c.ServiceBinaries), MaxServices)
	}
	// In name order, so that the first problem reported is the same at
	// every run.
	for _, name := range slices.Sorted(maps.Keys(c.ServiceBinaries)) {
		b := c.ServiceBinaries[name]
		key := "service_binaries." + name
		if err := checkName(name); err != nil {
			return Settings{}, sdk.ConfigErrorf("service_binaries", "service name %q: %v", clip(name, 64), err)
		}
		if err := checkAbsPath(key+".path", b.Path); err != nil {
			return Settings{}, err
		}
		sum := strings.ToLower(b.SHA256)
		if sum != "" && !ValidSHA256(sum) {
			return Settings{}, sdk.ConfigErrorf(key+".sha256", "not a SHA-256 (64 hex digits) nor empty: %q", clip(b.SHA256, 80))
		}
		s.Services = append(s.Services, Service{Name: name, Path: filepath.Clean(b.Path), SHA256: sum})
	}
	sort.Slice(s.Services, func(i, j int) bool { return s.Services[i].Name < s.Services[j].Name })
	return s, nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("not valid UTF-8")
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("contains a space or control character")
		}
	}
	return nil
}

func checkAbsPath(key, p string) error {
	switch {
	case p == "":
		return sdk.ConfigErrorf(key, "empty path")
	case len(p) > maxPathLen:
		return sdk.ConfigErrorf(key, "path longer than %d bytes", maxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return sdk.ConfigErrorf(key, "path contains a NUL byte")
	case !filepath.IsAbs(p):
		return sdk.ConfigErrorf(key, "path %q is not absolute", clip(p, 256))
	}
	return nil
}

// ValidSHA256 reports whether s is 64 lowercase hex digits.
func ValidSHA256(s string) bool {
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

// Within reports whether the clean absolute path p is root or inside it.
func Within(root, p string) bool {
	root = filepath.Clean(root)
	p = filepath.Clean(p)
	if !filepath.IsAbs(root) || !filepath.IsAbs(p) {
		return false
	}
	if root == "/" || p == root {
		return true
	}
	return strings.HasPrefix(p, root+"/")
}

// clip shortens s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
