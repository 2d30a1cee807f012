// Command wrongname describes itself under a name that is not its file's:
// core.plugin_protocol.
package main

import (
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() { plugin.Serve(&tp.Check{DescName: "kernel"}) }
