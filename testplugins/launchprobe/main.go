// Command launchprobe is what a launcher executes in the launcher contract
// tests (core/pluginhost): not a plugin, a program that prints the state
// it started in (internal/launchprobe) as one JSON object on stdout.
package main

import (
	"encoding/json"
	"os"

	"github.com/secure-ai/runtime-attestor/internal/launchprobe"
)

func main() { _ = json.NewEncoder(os.Stdout).Encode(launchprobe.Read()) }
