// Command badversion speaks only protocol version 99, which no daemon knows:
// the handshake names a version the daemon did not offer, and the daemon
// reports core.plugin_protocol.
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/binding"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	hs := binding.Handshake
	hs.ProtocolVersion = 99
	sets := binding.ServerPluginSets(&tp.Check{}, nil)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: map[int]plugin.PluginSet{99: sets[wire.ProtocolVersion]},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
