// Command attestor-check-tpm is the runtime-attestor check plugin for the
// TPM 2.0 (see plugins/tpm). The daemon starts it; it is not run by hand.
package main

import (
	"github.com/secure-ai/runtime-attestor/plugins/tpm"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

func main() { plugin.Serve(tpm.New()) }
