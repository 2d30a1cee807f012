// Command hostiledeclared is hostile (package attack) with an
// sdk.Sandboxer that declares one file to read: a policy that grants it
// exactly that makes the host's launcher impose the declaration itself, so
// the SDK narrows only the system calls, with the program the host
// assembled; what a plugin needs only to narrow itself is then refused.
package main

import (
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/attack"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

// Declared is what it declares.
var Declared = sdk.Sandbox{ReadOnly: []string{"/etc/os-release"}}

type declared struct{ attack.Check }

// Sandbox declares one file.
func (*declared) Sandbox() sdk.Sandbox { return Declared }

func main() {
	plugin.Serve(&declared{attack.Check{Name: tp.Name()}})
}
