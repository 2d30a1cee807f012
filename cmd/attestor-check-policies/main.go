// Command attestor-check-policies is the runtime-attestor's built-in policies check
// plugin. The daemon starts it; run by hand it explains that and exits 1.
package main

import (
	"github.com/secure-ai/runtime-attestor/plugins/policies"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

func main() { plugin.Serve(policies.New()) }
