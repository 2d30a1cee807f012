package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// Self is the launcher a host falls back to: its own executable, which
// calls Main first thing (the daemon does). Every plugin start then pays
// for the whole daemon's runtime start and package inits once more.
const Self = "/proc/self/exe"

// Installed returns the dedicated launcher (cmd/attestor-launcher) installed
// beside the host's executable self, when it is trusted as the daemon
// itself is: a regular, executable file owned by root or by the host's
// user euid, writable by neither group nor others, in a folder that is the
// daemon's own and equally protected. Whoever could replace it could
// replace the daemon too. An error says why it is not used; the caller
// then uses Self.
func Installed(self string, euid int) (string, error) {
	real, err := filepath.EvalSymlinks(self)
	if err != nil {
		return "", fmt.Errorf("resolve the daemon's executable %s: %w", self, err)
	}
	dir := filepath.Dir(real)
	if err := trusted(dir, euid, true); err != nil {
		return "", err
	}
	p := filepath.Join(dir, sandbox.LauncherName)
	if err := trusted(p, euid, false); err != nil {
		return "", err
	}
	return p, nil
}

// trusted checks the owner and mode of p without following a symlink.
func trusted(p string, euid int, dir bool) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fmt.Errorf("launcher %s: %w", p, err)
	}
	perm := st.Mode & 0o7777
	switch {
	case dir && st.Mode&syscall.S_IFMT != syscall.S_IFDIR:
		return fmt.Errorf("launcher folder %s is not a folder", p)
	case !dir && st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return fmt.Errorf("launcher %s is not a regular file (mode %#o): install attestor-launcher beside the daemon", p, st.Mode)
	case perm&0o022 != 0:
		return fmt.Errorf("launcher %s is group- or world-writable (mode %04o): chmod go-w it", p, perm)
	case st.Uid != 0 && int(st.Uid) != euid:
		return fmt.Errorf("launcher %s is owned by uid %d, neither root nor the daemon's user (uid %d)", p, st.Uid, euid)
	case !dir && perm&0o111 == 0:
		return fmt.Errorf("launcher %s is not executable (mode %04o)", p, perm)
	}
	return nil
}

// Default returns the launcher a host uses when none is configured: the
// installed attestor-launcher when trusted (Installed), else Self, with
// the reason the dedicated one is not used ("" when it is).
func Default() (launcher, why string) {
	self, err := os.Executable()
	if err != nil {
		return Self, fmt.Sprintf("the host's executable is unknown: %v", err)
	}
	p, err := Installed(self, os.Geteuid())
	if err != nil {
		return Self, err.Error()
	}
	return p, ""
}
