// Package binding ties the check protocol (package wire) to
// hashicorp/go-plugin: the handshake configuration, the plugin set the
// daemon's go-plugin client dispenses a *wire.Client from, and the plugin
// set go-plugin's own server serves a check with (the sdktest harness and
// test plugins that play a foreign plugin). A check plugin's executable
// does not link it: sdk/plugin serves with wire.Serve, which speaks the
// plugin's side of go-plugin's protocol without go-plugin's dependencies.
package binding

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Handshake is the go-plugin handshake every check plugin and the daemon
// share.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  wire.ProtocolVersion,
	MagicCookieKey:   wire.CookieKey,
	MagicCookieValue: wire.CookieValue,
}

// ClientPluginSets returns the versioned plugin sets the daemon accepts.
func ClientPluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		wire.ProtocolVersion: {wire.PluginName: &clientPlugin{}},
	}
}

type clientPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (p *clientPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the daemon side serves no check")
}

// GRPCClient returns a *checkrpc.Client.
func (p *clientPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return checkrpc.NewClient(c), nil
}

// ServerPluginSets returns the versioned go-plugin sets that serve c with
// go-plugin's server.
func ServerPluginSets(c sdk.Check, logger hclog.Logger) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		wire.ProtocolVersion: {wire.PluginName: &serverPlugin{impl: c, logger: logger}},
	}
}

type serverPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl   sdk.Check
	logger hclog.Logger
}

func (p *serverPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	checkrpc.Register(s, p.impl, p.logger)
	return nil
}

func (p *serverPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("the plugin side has no client")
}
