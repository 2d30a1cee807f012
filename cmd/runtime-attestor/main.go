// Command runtime-attestor is the attestation daemon. See the README.
package main

import (
	"os"

	"github.com/secure-ai/runtime-attestor/core/daemon"
)

func main() {
	os.Exit(daemon.Main(os.Args[1:], os.Stdout, os.Stderr))
}
