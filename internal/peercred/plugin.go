package peercred

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// PluginCheck is the check with which a plugin accepts a connection: the
// process connecting must be its daemon.
type PluginCheck struct {
	daemonIno uint64 // the daemon's pidfs inode; 0: check the parent pid
}

// NewPluginCheck returns the plugin's check: from the daemon's pidfs inode
// in DaemonEnv when the host set it, else from the parent pid.
func NewPluginCheck() (PluginCheck, error) {
	v, ok := os.LookupEnv(DaemonEnv)
	if !ok {
		return PluginCheck{}, nil
	}
	ino, err := strconv.ParseUint(v, 10, 64)
	if err != nil || ino == 0 {
		return PluginCheck{}, fmt.Errorf("peercred: %s=%q is not a pidfs inode; the daemon sets it, do not set it by hand", DaemonEnv, v)
	}
	return PluginCheck{daemonIno: ino}, nil
}

// PluginCheckFor returns the check that accepts only the process whose
// pidfs inode is ino (0: only the plugin's parent).
func PluginCheckFor(ino uint64) PluginCheck { return PluginCheck{daemonIno: ino} }

// Check checks that the process at the other end of conn is the daemon.
func (p PluginCheck) Check(conn net.Conn) (Cred, error) {
	c, err := PeerOf(conn)
	if err == nil {
		err = p.check(c)
	}
	if err != nil {
		return Cred{}, fmt.Errorf("peercred: %w", err)
	}
	return c, nil
}

func (p PluginCheck) check(c Cred) error {
	if uid := uint32(os.Getuid()); c.UID != uid {
		return fmt.Errorf("refused a connection from uid %d (pid %d): only the daemon (uid %d) may call this plugin", c.UID, c.PID, uid)
	}
	if p.daemonIno != 0 {
		if c.PidfsIno != p.daemonIno {
			return fmt.Errorf("refused a connection from pid %d (pidfs inode %d): only the daemon (pidfs inode %d) may call this plugin", c.PID, c.PidfsIno, p.daemonIno)
		}
		return nil
	}
	if ppid := os.Getppid(); c.PID != ppid {
		return fmt.Errorf("refused a connection from pid %d: only the daemon, the plugin's parent (pid %d), may call this plugin", c.PID, ppid)
	}
	return nil
}
