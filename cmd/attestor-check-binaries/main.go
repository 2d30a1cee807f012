// Command attestor-check-binaries is the built-in binaries check plugin:
// SHA-256 of every service binary. The runtime-attestor daemon starts it.
package main

import (
	"github.com/secure-ai/runtime-attestor/plugins/binaries"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

func main() { plugin.Serve(binaries.New()) }
