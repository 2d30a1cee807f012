// Command badcookie expects a different magic cookie than the daemon sends,
// as a plugin built for another program would: go-plugin refuses to serve
// and exits before the handshake. The daemon reports core.plugin_protocol.
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/secure-ai/runtime-attestor/internal/wire/binding"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	hs := binding.Handshake
	hs.MagicCookieValue = "not-the-runtime-attestor-cookie"
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: binding.ServerPluginSets(&tp.Check{}, nil),
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
