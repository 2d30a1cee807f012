// Command runtime-attestor is the attestation daemon. See the README.
package main

import (
	"os"

	"github.com/secure-ai/runtime-attestor/core/daemon"
	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
)

func main() {
	// The plugin host re-executes this binary to confine and start each
	// plugin; in that mode Main never returns.
	launch.Main()
	os.Exit(daemon.Main(os.Args[1:], os.Stdout, os.Stderr))
}
