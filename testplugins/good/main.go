// Command good is a well-behaved test plugin: it measures the nonce length
// and answers one info finding, <name>.ok.
package main

import (
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() { sdk.Serve(&tp.Check{}) }
