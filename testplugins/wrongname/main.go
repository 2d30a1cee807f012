// Command wrongname describes itself under a name that is not its file's:
// core.plugin_protocol.
package main

import (
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() { sdk.Serve(&tp.Check{DescName: "kernel"}) }
