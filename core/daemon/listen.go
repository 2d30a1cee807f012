package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/policy"
)

// listeners returns the API's listening sockets: those systemd passed
// (socket activation: LISTEN_FDS for this very process, from
// secure-ai-runtime-attestor.socket, which holds the port from boot so that
// no other process can take it), or else one bound to the policy's listen
// address (make run, a daemon started by hand). It returns whether the
// sockets were inherited.
//
// Every TCP socket must be on the loopback unless allow_remote_listen is
// true, whoever made it; a remote one is warned about at every start.
func listeners(pol *policy.Policy, logger hclog.Logger) ([]net.Listener, bool, error) {
	inherited := os.Getenv("LISTEN_FDS") != ""
	var lns []net.Listener
	if inherited {
		got, err := activation.Listeners() // unsets LISTEN_*: plugins inherit nothing
		if err != nil {
			return nil, true, fmt.Errorf("socket activation: %w", err)
		}
		for i, ln := range got {
			if ln == nil {
				closeAll(lns)
				return nil, true, fmt.Errorf("socket activation: passed file descriptor %d is not a listening stream socket; use ListenStream= in the socket unit", 3+i)
			}
			lns = append(lns, ln)
		}
		if len(lns) == 0 {
			return nil, true, errors.New("socket activation: LISTEN_FDS is set but no socket was passed to this process (LISTEN_PID is another process's?)")
		}
	} else {
		ln, err := net.Listen("tcp", pol.Listen)
		if err != nil {
			return nil, false, fmt.Errorf("listen: %w", err)
		}
		lns = []net.Listener{ln}
	}
	for _, ln := range lns {
		addr := ln.Addr()
		tcp, ok := addr.(*net.TCPAddr)
		if !ok || tcp.IP.IsLoopback() {
			continue
		}
		if !pol.AllowRemoteListen {
			closeAll(lns)
			return nil, inherited, fmt.Errorf("listen: %s is not a loopback address: other machines could reach the API and the bearer token would cross the network in clear; listen on 127.0.0.1 (ListenStream=127.0.0.1:8505 in the socket unit), or set allow_remote_listen: true in the policy if you mean it", addr)
		}
		logger.Warn("the API listens on a non-loopback address (allow_remote_listen: true): other machines can reach it and the refresh token crosses the network in clear", "listen", addr.String())
	}
	return lns, inherited, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

func addrs(lns []net.Listener) []string {
	out := make([]string, 0, len(lns))
	for _, ln := range lns {
		out = append(out, ln.Addr().Network()+":"+ln.Addr().String())
	}
	return out
}
