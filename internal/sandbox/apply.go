package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Status says what Apply enforced.
type Status struct {
	// ABI is the Landlock ABI version the kernel offers (0: none).
	ABI int `json:"landlock_abi"`
	// Landlock is true when the Landlock rules are enforced.
	Landlock bool `json:"landlock"`
	// Reason says why Landlock is not enforced ("" when it is).
	Reason string `json:"reason,omitempty"`
	// Seccomp is true when the seccomp filter is installed.
	Seccomp bool `json:"seccomp"`
	// Profile is the seccomp profile installed (or that would have been).
	Profile string `json:"profile"`
	// Skipped lists rule paths that did not exist: they stay denied.
	Skipped []string `json:"skipped,omitempty"`
}

// String is a one-line summary for a log.
func (s Status) String() string {
	ll := "landlock not enforced (" + s.Reason + "): file access not narrowed"
	if s.Landlock {
		ll = fmt.Sprintf("landlock ABI v%d enforced", s.ABI)
	}
	sc := "seccomp unavailable: system calls not filtered"
	if s.Seccomp {
		sc = "seccomp " + s.Profile + " profile installed"
	}
	out := ll + "; " + sc
	if len(s.Skipped) > 0 {
		out += "; missing paths left denied: " + strings.Join(s.Skipped, ", ")
	}
	return out
}

// Apply restricts the calling process, every thread of it and every process
// it starts from now on: first Landlock with r (best effort: a kernel without
// Landlock leaves file access unrestricted and Status.Landlock false), then
// prog, the seccomp program of profile p (filter.Profile assembles it; a
// plugin gets it from its host, HostConfinement). Where the kernel has
// Landlock or seccomp, a failure to apply either is an error, and the
// process may then be partly restricted: treat it as fatal.
//
// Call it after the Go runtime has started (any time in main or later):
// both mechanisms reach every thread, and are inherited by children.
func Apply(r Rules, p Profile, prog Program) (Status, error) {
	if p.Syscalls() == nil {
		return Status{Profile: p.String()}, fmt.Errorf("unknown seccomp profile %d", int(p))
	}
	if len(prog) == 0 {
		return Status{Profile: p.String()}, fmt.Errorf("no seccomp program for the %s profile", p)
	}
	st, err := Landlock(r)
	st.Profile = p.String()
	if err != nil {
		return st, err
	}
	st.Seccomp, err = InstallProgram(prog)
	if err != nil {
		err = fmt.Errorf("seccomp %s profile: %w", p, err)
	}
	return st, err
}

// Landlock applies only the Landlock part of Apply: r, best effort.
func Landlock(r Rules) (Status, error) {
	var st Status
	var err error
	st.ABI, st.Landlock, st.Skipped, st.Reason, err = restrictLandlock(r, systemLDConfig())
	return st, err
}

// PluginProfile is the seccomp profile for a plugin with rules r:
// ProfilePluginExec when it runs commands, ProfilePlugin otherwise.
func PluginProfile(r Rules) Profile {
	if len(r.Exec) > 0 {
		return ProfilePluginExec
	}
	return ProfilePlugin
}

// PluginSocketEnv is the variable through which go-plugin tells a plugin
// the folder to create its Unix socket in (the daemon sets it when its
// plugin.ClientConfig has a UnixSocketConfig).
const PluginSocketEnv = "PLUGIN_UNIX_SOCKET_DIR"

// PluginSocketDir returns the folder in which this plugin process's
// go-plugin Unix socket lives when the daemon chose one
// ($PLUGIN_UNIX_SOCKET_DIR), else "" (the socket is then in the temporary
// folder, which a plugin is not given).
func PluginSocketDir() string {
	if d := os.Getenv(PluginSocketEnv); d != "" && filepath.IsAbs(d) {
		return filepath.Clean(d)
	}
	return ""
}

// ForPlugin returns r plus what every plugin process needs on top of its
// own declared needs: read-write on its own go-plugin socket folder
// ($PLUGIN_UNIX_SOCKET_DIR, to remove the socket on exit) when the daemon
// gave it one. The SDK calls it; a vendor applying a sandbox by hand should
// too. (/dev/null, which running a command needs, is added by Apply
// whenever Exec is not empty.)
func ForPlugin(r Rules) Rules {
	if d := PluginSocketDir(); d != "" {
		return r.Merge(Rules{ReadWrite: []string{d}})
	}
	return r.Merge()
}

// ApplyPlugin is Apply(ForPlugin(r), PluginProfile(r), prog).
func ApplyPlugin(r Rules, prog Program) (Status, error) {
	return Apply(ForPlugin(r), PluginProfile(r), prog)
}

// DaemonPaths are the daemon's own needs once its policy is loaded.
type DaemonPaths struct {
	// PolicyFiles are the policy file(s) the daemon (re)loads: read.
	PolicyFiles []string
	// PluginDir is the plugin folder: read and execute (with each
	// plugin's loader and libraries).
	PluginDir string
	// Secrets are the HMAC key and API token files: read.
	Secrets []string
	// AuditLogDir is the audit log's folder: read-write.
	AuditLogDir string
	// RuntimeDir is the runtime folder (/run/secure-ai): read-write.
	RuntimeDir string
	// SocketDir is the folder under which the daemon makes each plugin's
	// socket folder (passed to the plugin as $PLUGIN_UNIX_SOCKET_DIR):
	// read-write.
	SocketDir string
	// ListenPort is the HTTP API's TCP port (bind).
	ListenPort uint16
	// NotifySocket is $NOTIFY_SOCKET ("" when not under systemd).
	NotifySocket string
	// Self is the daemon's own executable: execute, with LauncherName
	// beside it, because the plugin host runs one of the two as the
	// launcher that confines each plugin.
	Self string
}

// LauncherName is the file name of the dedicated launcher
// (cmd/attestor-launcher), installed beside the daemon's executable.
const LauncherName = "attestor-launcher"

// launcherBeside is the launcher's path beside self ("" without self).
func launcherBeside(self string) string {
	if self == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(self), LauncherName)
}

// DaemonRules is the daemon's rule set: its own needs (d) plus the union of
// the rules of every plugin it starts, since its plugins inherit its
// sandbox and can only narrow it. Plugin rules come from each built-in
// check's declared sandbox (sdk.DeclaredSandbox) and from the policy for
// third-party plugins. Empty fields of d are left out.
func DaemonRules(d DaemonPaths, plugins ...Rules) Rules {
	own := Rules{
		ReadOnly:  cleaned(append(append([]string(nil), d.PolicyFiles...), d.Secrets...)...),
		ReadWrite: cleaned(d.AuditLogDir, d.RuntimeDir, d.SocketDir),
		Exec:      cleaned(d.PluginDir, d.Self, launcherBeside(d.Self)),
		BindTCP:   []uint16{d.ListenPort},
	}
	switch {
	case strings.HasPrefix(d.NotifySocket, "@"):
		own.UnixSockets = []string{d.NotifySocket}
	case d.NotifySocket != "":
		own.UnixSockets = cleaned(d.NotifySocket)
	}
	return own.Merge(plugins...)
}

// ApplyDaemon applies DaemonRules(d, plugins...) with ProfileDaemon, whose
// program is prog, and returns the rules it applied (keep them: on a
// policy reload, Rules.Covers tells which new paths the sandbox, fixed at
// start, denies).
func ApplyDaemon(d DaemonPaths, prog Program, plugins ...Rules) (Rules, Status, error) {
	r := DaemonRules(d, plugins...)
	st, err := Apply(r, ProfileDaemon, prog)
	return r, st, err
}

// cleaned returns the non-empty paths, cleaned.
func cleaned(s ...string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, filepath.Clean(v))
		}
	}
	return out
}
