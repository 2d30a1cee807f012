// Command marker proves whether it was ever started: before anything else,
// even before the handshake, it writes its process id to the file
// "started-<name>" beside its executable in the plugin directory, then
// behaves like good. Pin tests use it to show a refused binary never ran.
package main

import (
	"os"
	"path/filepath"

	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	_ = tp.AppendPID(filepath.Join(filepath.Dir(os.Args[0]), "started-"+tp.Name()))
	plugin.Serve(&tp.Check{})
}
