package wire

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// deniedRE matches what Go prints for a file operation the kernel refused
// with EACCES (an *os.PathError, an *exec.Error): "open /etc/x: permission
// denied", "fork/exec /usr/bin/x: permission denied". Only operations
// Landlock restricts are listed: stat, readlink, chmod and chown are not.
// It is compiled at its first use, not at each plugin start.
var deniedRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\b(open|openat|mkdir|mkdirat|remove|unlinkat|rename|renameat|link|linkat|symlink|truncate|fork/exec|exec) (/[^\s:"']*): permission denied`)
})

// maxMessageLen is the daemon's limit on a finding message.
const maxMessageLen = 4096

// denials explains permission errors that the plugin's sandbox caused. It
// knows the two layers a plugin process runs under: the host's grant
// (sandbox.HostGrant, imposed by the launcher before the plugin's first
// instruction) and the check's own declaration (applied after Configure).
// It names a denial "the sandbox" only when a layer that is enforced does
// not cover the path: a permission error on a path both layers allow is a
// different problem (file modes, another security module) and is left as
// it is.
type denials struct {
	check sdk.Check

	once     sync.Once
	name     string // the plugin's name, for the policy line
	grant    sandbox.Rules
	hasGrant bool // started by the host's launcher, with Landlock

	declared    sandbox.Rules
	hasDeclared bool // the check's own sandbox is enforced with Landlock
}

// declare records the check's own sandbox once it is enforced.
func (d *denials) declare(r sandbox.Rules) { d.declared, d.hasDeclared = r, true }

// explain returns msg with every sandbox denial in it explained.
func (d *denials) explain(msg string) string {
	if !strings.Contains(msg, ": permission denied") {
		return msg
	}
	d.once.Do(func() {
		d.name = d.check.Describe().Name
		// Announced only where Landlock enforces it (the launcher
		// checks; the plugin's seccomp filter may no longer let it ask).
		d.grant, d.hasGrant = sandbox.HostGrant()
	})
	if !d.hasGrant && !d.hasDeclared {
		return msg
	}
	re := deniedRE()
	out := re.ReplaceAllStringFunc(msg, func(m string) string {
		sub := re.FindStringSubmatch(m)
		return m + d.hint(sub[1], sub[2])
	})
	if len(out) > maxMessageLen {
		return msg
	}
	return out
}

// hint is what to add after a denial of op on path, "" when the sandbox
// allows the path.
func (d *denials) hint(op, path string) string {
	path = filepath.Clean(path)
	// An open that read is allowed for may have asked to write, or may
	// have met file modes: it is not named the sandbox's.
	a, field := access(op, path)
	undeclared := d.hasDeclared && !covered(d.declared, path, a)
	ungranted := d.hasGrant && !covered(d.grant, path, a)
	line := fmt.Sprintf("plugins.%s.sandbox.%s: [%q]", d.name, field, path)
	const denied = " — the plugin's sandbox does not allow it; "
	switch {
	case undeclared && ungranted:
		return denied + "declare it in Sandbox() and grant it in the policy: " + line
	case ungranted:
		return denied + "grant it in the policy: " + line
	case undeclared && d.hasGrant:
		return denied + "declare it in Sandbox() (the policy grants it)"
	case undeclared:
		return denied + "declare it in Sandbox() or grant it in the policy: " + line
	}
	return ""
}

// covered reports whether r grants a on path, by its name or by the file
// it leads to (Landlock follows symbolic links, in rules and in opens).
func covered(r sandbox.Rules, path string, a sandbox.Access) bool {
	if r.Covers(path, a) {
		return true
	}
	real, err := filepath.EvalSymlinks(path)
	return err == nil && real != path && r.Covers(real, a)
}

// access is the access a denied op needed and the sandbox field that
// grants it.
func access(op, path string) (sandbox.Access, string) {
	switch {
	case op == "fork/exec" || op == "exec":
		return sandbox.Execute, "exec"
	case strings.HasPrefix(path, "/dev/"):
		return sandbox.Write, "devices"
	case op == "open" || op == "openat":
		return sandbox.Read, "read_only"
	}
	return sandbox.Write, "read_write"
}
