// Package reliability is runtime-attestor's reliability and security suite.
// It holds tests only: every test runs the real daemon (internal/daemontest)
// with the real plugins and the misbehaving ones (testplugins/) as
// subprocesses and talks to it over a real socket.
//
// `go test ./reliability` (part of `make test`) runs a short variant of each
// test; ATTESTOR_STRESS=1 (`make stress`, scripts/stress.sh) runs the long
// variants (50 rounds of each fault, 100 SIGKILLs). docs/reliability.md says what is tested and
// gives the figures.
package reliability
