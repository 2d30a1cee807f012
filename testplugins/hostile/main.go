// Command hostile is a plugin that attacks the daemon from inside: with the
// plan in its configuration (package attack) it tries to read the HMAC key,
// the API token, the signing key, the audit MAC key and its seed and the
// policy, append to the audit and verdict logs, create files in the host's
// run folder, connect to another plugin's socket, extend the verdict PCR
// of a TPM, reach the network and run programs, and it claims bundle fields only built-ins may
// fill. It implements no sdk.Sandboxer: it never confines itself, so
// whatever it is refused, the host refused.
package main

import (
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/attack"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&attack.Check{Name: tp.Name()})
}
