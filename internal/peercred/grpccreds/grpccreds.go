// Package grpccreds makes gRPC transport credentials of peercred's checks:
// Host, with which the daemon dials a plugin, and Plugin, with which a
// plugin served by grpc-go (go-plugin's own server, in tests) accepts its
// daemon. A check plugin's executable does not link it: its server
// (internal/unaryrpc) calls peercred.PluginCheck itself.
package grpccreds

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"

	"google.golang.org/grpc/credentials"

	"github.com/secure-ai/runtime-attestor/internal/peercred"
)

// authType is what AuthInfo reports.
const authType = "peercred"

// AuthInfo is the gRPC AuthInfo of a checked connection.
type AuthInfo struct {
	credentials.CommonAuthInfo
	Peer peercred.Cred
}

// AuthType implements credentials.AuthInfo.
func (AuthInfo) AuthType() string { return authType }

func authInfo(c peercred.Cred) AuthInfo {
	// The kernel carries the bytes between two processes it named: no one
	// else can read or alter them.
	return AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, Peer: c}
}

// errWrongSide answers the handshake of the side a set of credentials is
// not for.
var errWrongSide = errors.New("peercred: credentials used on the wrong side of the connection")

// base is what both sides' credentials share.
type base struct{}

func (base) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: authType}
}

func (base) OverrideServerName(string) error { return nil }

// hostCreds are the credentials the host dials a plugin with.
type hostCreds struct {
	base
	dir string
	cmd *exec.Cmd
}

// Host returns the transport credentials with which the host dials the
// plugin that cmd starts and that was given dir as its socket folder
// (peercred.CheckHost). Pass it in ClientConfig.GRPCDialOptions, after
// go-plugin's own insecure credentials, which it replaces.
func Host(dir string, cmd *exec.Cmd) credentials.TransportCredentials {
	return &hostCreds{dir: dir, cmd: cmd}
}

// ClientHandshake checks that conn is the plugin's socket, in its folder,
// served by the plugin process.
func (h *hostCreds) ClientHandshake(_ context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, err := peercred.CheckHost(h.dir, h.cmd, conn)
	if err != nil {
		return nil, nil, fmt.Errorf("peercred: %w", err)
	}
	return conn, authInfo(c), nil
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

// pluginCreds are the credentials a grpc-go plugin server serves with.
type pluginCreds struct {
	base
	check peercred.PluginCheck
}

// Plugin returns the transport credentials of peercred.NewPluginCheck.
func Plugin() (credentials.TransportCredentials, error) {
	pc, err := peercred.NewPluginCheck()
	if err != nil {
		return nil, err
	}
	return PluginWith(pc), nil
}

// PluginWith returns the transport credentials of check.
func PluginWith(check peercred.PluginCheck) credentials.TransportCredentials {
	return &pluginCreds{check: check}
}

// ServerHandshake checks that the process connecting is the daemon.
func (p *pluginCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, err := p.check.Check(conn)
	if err != nil {
		return nil, nil, err
	}
	return conn, authInfo(c), nil
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
