package peercred

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"

	"google.golang.org/grpc/credentials"
)

// hostCreds are the credentials the host dials a plugin with.
type hostCreds struct {
	base
	dir string
	cmd *exec.Cmd
}

// Host returns the transport credentials with which the host dials the
// plugin that cmd starts (the launcher executes the plugin in place, so
// the process keeps cmd's pid) and that was given dir as its socket
// folder. Pass it in ClientConfig.GRPCDialOptions, after go-plugin's own
// insecure credentials, which it replaces.
func Host(dir string, cmd *exec.Cmd) credentials.TransportCredentials {
	return &hostCreds{base: base{info: credentials.ProtocolInfo{SecurityProtocol: authType}}, dir: dir, cmd: cmd}
}

// ClientHandshake checks that conn is the plugin's socket, in its folder,
// served by the plugin process.
func (h *hostCreds) ClientHandshake(_ context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, err := h.check(conn)
	if err != nil {
		return nil, nil, fmt.Errorf("peercred: %w", err)
	}
	return conn, authInfo(c), nil
}

func (h *hostCreds) check(conn net.Conn) (Cred, error) {
	if h.cmd.Process == nil {
		return Cred{}, fmt.Errorf("the plugin process has not started")
	}
	if _, ok := conn.(*net.UnixConn); !ok {
		return Cred{}, fmt.Errorf("the plugin's connection is a %T, not its Unix socket: refusing to talk to it", conn)
	}
	if err := inDir(conn.RemoteAddr().String(), h.dir); err != nil {
		return Cred{}, err
	}
	if err := checkDir(h.dir); err != nil {
		return Cred{}, err
	}
	c, err := PeerOf(conn)
	if err != nil {
		return Cred{}, err
	}
	if want := h.cmd.Process.Pid; c.PID != want {
		return Cred{}, fmt.Errorf("the socket %s is served by pid %d, not by the plugin process (pid %d): refusing to talk to it", conn.RemoteAddr(), c.PID, want)
	}
	if uid := uint32(os.Geteuid()); c.UID != uid {
		return Cred{}, fmt.Errorf("the plugin process runs as uid %d, not the daemon's uid %d", c.UID, uid)
	}
	return c, nil
}

// ServerHandshake refuses: these credentials are the host's, which dials.
func (h *hostCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errWrongSide
}

// Clone implements credentials.TransportCredentials.
func (h *hostCreds) Clone() credentials.TransportCredentials {
	c := *h
	return &c
}
