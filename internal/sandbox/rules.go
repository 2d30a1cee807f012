package sandbox

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// Rules is what a process may still touch once it restricts itself with
// Landlock: the fields of a check's declared sdk.Sandbox (which see), with
// the methods the confinement needs. Paths are absolute; a rule on a folder
// covers everything below it, a rule on a file covers that file. A path
// missing when the rules are applied is skipped (Status.Skipped) and stays
// denied if it appears later. The zero Rules denies every file access and
// every TCP bind and connect. Landlock restricts UnixSockets from ABI v9
// on, where an abstract entry ("@...") keeps abstract Unix sockets outside
// the Landlock IPC scope; BindTCP and ConnectTCP from ABI v4 on, and only
// plain TCP, not Multipath TCP (Go's default for net.Listen).
type Rules sdk.Sandbox

// Access is a kind of file access, for Rules.Covers.
type Access int

// The kinds of file access Covers answers for.
const (
	Read Access = iota
	Write
	Execute
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case Execute:
		return "execute"
	}
	return fmt.Sprintf("access(%d)", int(a))
}

// Validate reports the first path that is not absolute or not clean, or an
// empty or NUL-bearing entry, naming the field and index.
func (r Rules) Validate() error {
	for _, f := range r.pathFields() {
		for i, p := range f.paths {
			if f.name == "unix_sockets" && strings.HasPrefix(p, "@") && len(p) > 1 && !strings.ContainsRune(p, 0) {
				continue
			}
			if err := checkPath(p); err != nil {
				return fmt.Errorf("%s[%d]: %w", f.name, i, err)
			}
		}
	}
	return nil
}

func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains a NUL byte", p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("path %q is not absolute", p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (want %q)", p, filepath.Clean(p))
	}
	return nil
}

type pathField struct {
	name  string
	paths []string
}

func (r Rules) pathFields() []pathField {
	return []pathField{
		{"read_only", r.ReadOnly},
		{"read_write", r.ReadWrite},
		{"exec", r.Exec},
		{"devices", r.Devices},
		{"unix_sockets", r.UnixSockets},
	}
}

// Merge returns the union of r and others, each list sorted and without
// duplicates (sdk.Sandbox.Merge). The daemon merges its own rules with
// every plugin's.
func (r Rules) Merge(others ...Rules) Rules {
	o := make([]sdk.Sandbox, len(others))
	for i, other := range others {
		o[i] = sdk.Sandbox(other)
	}
	return Rules(sdk.Sandbox(r).Merge(o...))
}

func sortUnique[T interface{ ~string | ~uint16 }](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// Covers reports whether the rules grant access a to path (absolute, clean)
// by name, without touching the file system: a path equal to or below a
// listed one. The daemon uses it on a policy reload to find paths its
// sandbox, fixed at start, does not cover. Libraries that Apply grants for
// an executable are not listed here, and neither are symbolic links'
// targets: Covers answers for the names in the rules.
func (r Rules) Covers(path string, a Access) bool {
	var lists [][]string
	switch a {
	case Read:
		lists = [][]string{r.ReadOnly, r.ReadWrite, r.Exec, r.Devices}
	case Write:
		lists = [][]string{r.ReadWrite, r.Devices}
	case Execute:
		lists = [][]string{r.Exec}
	}
	for _, l := range lists {
		for _, p := range l {
			if within(path, p) {
				return true
			}
		}
	}
	return false
}

// Within reports whether the clean absolute path is root or below it.
func Within(path, root string) bool { return within(path, root) }

// within reports whether path is root or below it.
func within(path, root string) bool {
	if path == root || root == "/" {
		return true
	}
	return strings.HasPrefix(path, root) && path[len(root)] == '/'
}
