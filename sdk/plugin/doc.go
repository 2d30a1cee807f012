// Package plugin turns a check into a runtime-attestor plugin executable:
// Serve is the one call of the plugin's main.
//
//	package main
//
//	import "github.com/secure-ai/runtime-attestor/sdk/plugin"
//
//	func main() { plugin.Serve(acme.New()) }
//
// Serve speaks the plugin protocol (go-plugin over gRPC) on the process's
// standard streams, answers the daemon's declare run with what the check
// declares, applies the check's Sandbox after its first Configure and
// explains, in the check's answers, the permission errors that the sandbox
// caused. Those parts live in the module's internal packages; this package
// is the SDK's only door to them (the compatibility promise of package sdk
// covers it).
package plugin
