package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// GrantFDEnv names the variable through which the host's launcher tells a
// plugin which of its descriptors holds, read-only and sealed, the rules
// the launcher confined it to (its grant: the policy's
// plugins.<name>.sandbox, a built-in's declaration, its socket folder).
// The plugin side of the SDK reads it to tell a denial by the sandbox from
// any other permission error.
const GrantFDEnv = "RUNTIME_ATTESTOR_PLUGIN_GRANT_FD"

// maxGrant bounds the grant a plugin reads, as the launcher bounds it.
const maxGrant = 16 << 20

// HostGrant returns the rules the host's launcher imposed on this process
// with Landlock, and false when it was not started by a launcher, the
// kernel has no Landlock (the launcher then announces no grant), or the
// descriptor cannot be read. It reads at offset 0 and leaves the descriptor open.
func HostGrant() (Rules, bool) {
	g, ok := hostGrant()
	return g.Rules, ok
}

// HostConfinement is HostGrant with, beside the rules, the seccomp
// program the host assembled for this plugin to narrow itself with
// (Profile.Filter of its grant's profile, to install with InstallProgram;
// nil when the grant carries none).
func HostConfinement() (Rules, Program, bool) {
	g, ok := hostGrant()
	return g.Rules, g.Plugin, ok
}

// grantFile is the launcher's encoding of the grant (package launch,
// Spec), the fields a plugin reads.
type grantFile struct {
	Rules  Rules   `json:"rules"`
	Plugin Program `json:"plugin_seccomp,omitempty"`
}

func hostGrant() (grantFile, bool) {
	v := os.Getenv(GrantFDEnv)
	fd, err := strconv.Atoi(v)
	if v == "" || err != nil || fd < 3 {
		return grantFile{}, false
	}
	g, err := readGrant(fd)
	if err != nil {
		return grantFile{}, false
	}
	return g, true
}

func readGrant(fd int) (grantFile, error) {
	// A File of our own would close the descriptor when collected: read
	// through a duplicate instead.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return grantFile{}, err
	}
	f := os.NewFile(uintptr(dup), "grant")
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, maxGrant+1), maxGrant+1))
	if err != nil {
		return grantFile{}, err
	}
	if len(raw) > maxGrant {
		return grantFile{}, fmt.Errorf("grant over %d bytes", maxGrant)
	}
	var g grantFile
	if err := json.Unmarshal(raw, &g); err != nil {
		return grantFile{}, err
	}
	return g, g.Rules.Validate()
}
