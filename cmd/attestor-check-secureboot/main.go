// Command attestor-check-secureboot is the runtime-attestor's built-in secureboot check
// plugin. The daemon starts it; run by hand it explains that and exits 1.
package main

import (
	"github.com/secure-ai/runtime-attestor/plugins/secureboot"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

func main() { plugin.Serve(secureboot.New()) }
