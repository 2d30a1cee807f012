package peercred

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"google.golang.org/grpc/credentials"
)

// pluginCreds are the credentials a plugin serves with.
type pluginCreds struct {
	base
	daemonIno uint64 // the daemon's pidfs inode; 0: check the parent pid
}

// Plugin returns the transport credentials with which a plugin serves its
// daemon: from the daemon's pidfs inode in DaemonEnv when the host set it,
// else from the parent pid. Pass it as grpc.Creds after go-plugin's own
// server options.
func Plugin() (credentials.TransportCredentials, error) {
	pc := &pluginCreds{base: base{info: credentials.ProtocolInfo{SecurityProtocol: authType}}}
	if v, ok := os.LookupEnv(DaemonEnv); ok {
		ino, err := strconv.ParseUint(v, 10, 64)
		if err != nil || ino == 0 {
			return nil, fmt.Errorf("peercred: %s=%q is not a pidfs inode; the daemon sets it, do not set it by hand", DaemonEnv, v)
		}
		pc.daemonIno = ino
	}
	return pc, nil
}

// ServerHandshake checks that the process connecting is the daemon.
func (p *pluginCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, err := PeerOf(conn)
	if err == nil {
		err = p.check(c)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("peercred: %w", err)
	}
	return conn, authInfo(c), nil
}

func (p *pluginCreds) check(c Cred) error {
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

// ClientHandshake refuses: these credentials are the plugin's, which
// serves.
func (p *pluginCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errWrongSide
}

// Clone implements credentials.TransportCredentials.
func (p *pluginCreds) Clone() credentials.TransportCredentials {
	c := *p
	return &c
}
