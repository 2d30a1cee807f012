// Command good is a well-behaved test plugin: it measures the nonce length
// and answers one info finding, <name>.ok.
package main

import (
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() { plugin.Serve(&tp.Check{}) }
