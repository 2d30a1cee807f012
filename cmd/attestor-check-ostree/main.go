// Command attestor-check-ostree is the built-in ostree check plugin: the
// booted deployment's digest. The runtime-attestor daemon starts it.
package main

import (
	"github.com/secure-ai/runtime-attestor/plugins/ostree"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

func main() { plugin.Serve(ostree.New()) }
