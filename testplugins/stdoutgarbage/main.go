// Command stdoutgarbage prints a line to stdout before the handshake, so the
// first line the daemon reads is not a handshake: core.plugin_protocol.
package main

import (
	"fmt"

	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	fmt.Println("hello from a plugin that does not know stdout is the protocol")
	plugin.Serve(&tp.Check{})
}
