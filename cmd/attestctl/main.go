// Command attestctl is the operator's and downstream services' client of
// runtime-attestor: it shows the attestation status, asks for a refresh,
// verifies a bundle's HMAC, gates a unit's start on the attestation state,
// verifies the audit log's hash chain and writes a production policy that
// pins what a known-good machine measures (baseline).
//
//	attestctl [--addr URL] [--timeout D] <command> [flags] [args]
//
// Commands: status, refresh, verify-bundle, verify-evidence, gate, keygen,
// baseline, audit verify, help. Exit
// codes: 0 success, 1 the check failed (bad signature, broken chain, gate
// not reached, refused or failed request, attestor unreachable), 2 usage or
// local I/O error. See docs/attestctl.md.
package main

import (
	"os"
)

func main() {
	os.Exit(newApp(os.Stdin, os.Stdout, os.Stderr, os.Getenv).run(os.Args[1:]))
}
