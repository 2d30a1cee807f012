// Package api serves the attestor's HTTP API with echo: the five status
// endpoints (/health, /api/v1/attest, /api/v1/verify, /api/v1/refresh,
// /api/security/status) and a Prometheus /metrics.
//
// Every read is answered from Attestor.Snapshot and never waits on a running
// attestation. POST /api/v1/refresh needs the bearer token given in Options or
// SetToken, compared in constant time; with no token configured refresh is
// refused (403), never open. Every refresh request, authorized or refused, is
// written to the audit log with the peer's address and never the token.
//
// The server exposes whatever address the listener given to Serve is bound
// to; the daemon binds loopback by default, which keeps /metrics and the
// rest of the API local. See docs/api.md for the endpoints and their JSON.
package api
