package api

import (
	"net"
	"strings"
	"testing"
)

// FuzzLoopbackHost: a Host header (attacker-chosen) passes only when it
// names the loopback: localhost, a *.localhost name, or a loopback IP, with
// or without a port.
func FuzzLoopbackHost(f *testing.F) {
	for _, s := range []string{"", "127.0.0.1", "127.0.0.1:8505", "[::1]:8505", "::1", "localhost", "LOCALHOST.", "a.localhost",
		"evil.example", "127.0.0.1.nip.io", "localhost.evil", "[::ffff:127.0.0.1]", "0x7f.1", "2130706433", "[fe80::1%lo]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if !loopbackHost(host) || host == "" {
			return
		}
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
		if h == "localhost" || strings.HasSuffix(h, ".localhost") {
			return
		}
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			t.Fatalf("Host %q passed but does not name the loopback", host)
		}
	})
}
