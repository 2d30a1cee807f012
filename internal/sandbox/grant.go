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
// kernel has no Landlock (nothing then enforces the rules), or the
// descriptor cannot be read. It reads at offset 0 and leaves the
// descriptor open.
func HostGrant() (Rules, bool) {
	c, ok := HostConfinement()
	return c.Rules, ok && c.Landlock
}

// Confinement is what the host's launcher tells the plugin it started
// about its confinement, in the sealed grant.
type Confinement struct {
	// Rules are the rules the launcher confined the plugin to.
	Rules Rules `json:"rules"`
	// Landlock says whether the kernel enforces Rules (it has Landlock).
	Landlock bool `json:"landlock"`
	// Programs are the seccomp programs the host assembled for the plugin
	// to narrow itself with, one per plugin profile.
	Programs PluginPrograms `json:"plugin_programs,omitempty"`
}

// HostConfinement returns the grant of the host's launcher, and false
// when the process was not started by one or the grant cannot be read.
func HostConfinement() (Confinement, bool) {
	v := os.Getenv(GrantFDEnv)
	fd, err := strconv.Atoi(v)
	if v == "" || err != nil || fd < 3 {
		return Confinement{}, false
	}
	g, err := readGrant(fd)
	if err != nil {
		return Confinement{}, false
	}
	return g, true
}

func readGrant(fd int) (Confinement, error) {
	// A File of our own would close the descriptor when collected: read
	// through a duplicate instead.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return Confinement{}, err
	}
	f := os.NewFile(uintptr(dup), "grant")
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, maxGrant+1), maxGrant+1))
	if err != nil {
		return Confinement{}, err
	}
	if len(raw) > maxGrant {
		return Confinement{}, fmt.Errorf("grant over %d bytes", maxGrant)
	}
	var g Confinement
	if err := json.Unmarshal(raw, &g); err != nil {
		return Confinement{}, err
	}
	return g, g.Rules.Validate()
}
