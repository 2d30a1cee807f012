// Command attestor-check-kernel is the runtime-attestor's built-in kernel check
// plugin. The daemon starts it; run by hand it explains that and exits 1.
package main

import (
	"github.com/secure-ai/runtime-attestor/plugins/kernel"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

func main() { plugin.Serve(kernel.New()) }
