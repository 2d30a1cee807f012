// Command attestor-check-template is a template for a runtime-attestor check
// plugin. Copy this folder, rename the check (name in check.go, the finding
// codes, this command), and build it as attestor-check-<name>.
//
// main does one thing: serve the check. plugin.Serve speaks the plugin
// protocol on stdout and logs hclog JSON on stderr; never print to stdout
// yourself. Run by hand, it explains that the daemon starts it and exits 1.
package main

import "github.com/secure-ai/runtime-attestor/sdk/plugin"

func main() { plugin.Serve(New()) }
