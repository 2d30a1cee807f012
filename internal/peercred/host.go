package peercred

import (
	"fmt"
	"net"
	"os"
	"os/exec"
)

// CheckHost checks, for the host, that conn is the socket of the plugin
// that cmd started (the launcher executes the plugin in place, so the
// process keeps cmd's pid), in dir, the socket folder the host gave it,
// served by the plugin process under the host's user.
func CheckHost(dir string, cmd *exec.Cmd, conn net.Conn) (Cred, error) {
	if cmd.Process == nil {
		return Cred{}, fmt.Errorf("the plugin process has not started")
	}
	if _, ok := conn.(*net.UnixConn); !ok {
		return Cred{}, fmt.Errorf("the plugin's connection is a %T, not its Unix socket: refusing to talk to it", conn)
	}
	if err := inDir(conn.RemoteAddr().String(), dir); err != nil {
		return Cred{}, err
	}
	if err := checkDir(dir); err != nil {
		return Cred{}, err
	}
	c, err := PeerOf(conn)
	if err != nil {
		return Cred{}, err
	}
	if want := cmd.Process.Pid; c.PID != want {
		return Cred{}, fmt.Errorf("the socket %s is served by pid %d, not by the plugin process (pid %d): refusing to talk to it", conn.RemoteAddr(), c.PID, want)
	}
	if uid := uint32(os.Geteuid()); c.UID != uid {
		return Cred{}, fmt.Errorf("the plugin process runs as uid %d, not the daemon's uid %d", c.UID, uid)
	}
	return c, nil
}
