// Command hostilewide is hostile (package attack) with an sdk.Sandboxer
// that declares the whole file system readable, writable and executable
// and every TCP port: far wider than any policy grants. The SDK applies
// that declaration on top of the host's confinement, which it can only
// narrow, so every attempt is still refused.
package main

import (
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/attack"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

type wide struct{ attack.Check }

// Sandbox declares everything.
func (*wide) Sandbox() sdk.Sandbox {
	return sdk.Sandbox{ReadOnly: []string{"/"}, ReadWrite: []string{"/"}, Exec: []string{"/"}, ConnectTCP: []uint16{22, 80, 443, 8505}}
}

func main() {
	plugin.Serve(&wide{attack.Check{Name: tp.Name()}})
}
