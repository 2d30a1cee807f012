// Package unaryrpc serves unary gRPC calls over HTTP/2 on a listener: the
// plugin's side of the check protocol, which the daemon calls with
// grpc-go's client through go-plugin.
//
// A check plugin serves five unary methods to one client, its daemon. The
// grpc-go server costs every plugin process its package initialisation
// (grpc-go links net/http, crypto/tls and x509, protobuf's reflection
// registry for its own services) and a transport of several goroutines,
// at each of the plugin's starts; this server is what such a client needs
// of HTTP/2 and no more: the connection preface and settings, HPACK
// (golang.org/x/net/http2/hpack), flow control in both directions, PING,
// RST_STREAM and GOAWAY, grpc-timeout, and the unary framing of one
// uncompressed message each way. Streaming calls are answered
// Unimplemented at their headers, as calls to unknown methods are.
//
// The peer of a plugin's server is its daemon, which is trusted; the
// limits here (frame and header block size, open calls, message size)
// keep a confused or hostile client from growing the plugin's memory
// without bound, and FuzzServeConn holds the reader to them.
package unaryrpc

import (
	"cmp"
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Handler answers one call: its request message, encoded, in; its answer,
// encoded, out. An error answers with its *Status (Unknown for another
// error; Canceled or DeadlineExceeded for the call's context's).
type Handler func(ctx context.Context, req []byte) ([]byte, error)

// DefaultMaxRecvMsgSize is the largest request accepted when
// Server.MaxRecvMsgSize is 0: grpc-go's own default.
const DefaultMaxRecvMsgSize = 4 << 20

// Server serves Methods on each connection it accepts.
type Server struct {
	// Methods are the handlers by full method name ("/package.Service/Method").
	Methods map[string]Handler
	// MaxRecvMsgSize bounds a request message; 0 is DefaultMaxRecvMsgSize.
	MaxRecvMsgSize int
	// Accept, when set, checks each connection before a byte is read; a
	// connection it refuses is closed and reported to Refused.
	Accept func(net.Conn) error
	// Refused, when set, is told of each refused connection.
	Refused func(error)
	// WriteTimeout bounds one write to a client (0: 10 s): a client that
	// reads nothing for that long loses its connection.
	WriteTimeout time.Duration
	// DrainTimeout bounds how long Stop waits for the calls in flight
	// (0: 5 s); then they are cancelled and their connections closed.
	DrainTimeout time.Duration

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*conn]struct{}
	stopped bool
	drained chan struct{}
}

func (s *Server) writeTimeout() time.Duration { return cmp.Or(s.WriteTimeout, defaultWriteTimeout) }

func (s *Server) drainTimeout() time.Duration { return cmp.Or(s.DrainTimeout, defaultDrainTimeout) }

func (s *Server) maxRecv() int {
	if s.MaxRecvMsgSize > 0 {
		return s.MaxRecvMsgSize
	}
	return DefaultMaxRecvMsgSize
}

// Serve accepts connections on l and serves each on a goroutine of its
// own until Stop, after which it returns nil once every call in flight is
// answered; any other end of l is returned.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = l.Close()
		return nil
	}
	s.ln, s.conns, s.drained = l, map[*conn]struct{}{}, make(chan struct{})
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			stopped := s.stopped
			s.mu.Unlock()
			if stopped {
				<-s.drained
				return nil
			}
			// Out of descriptors and the like: try again, as grpc-go does.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if s.Accept != nil {
			if aerr := s.Accept(nc); aerr != nil {
				_ = nc.Close()
				if s.Refused != nil {
					s.Refused(aerr)
				}
				continue
			}
		}
		s.track(nc)
	}
}

// track serves nc unless the server has stopped.
func (s *Server) track(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	go func() {
		_ = c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// ServeConn serves one connection until it ends.
func (s *Server) ServeConn(nc net.Conn) error {
	err := newConn(s, nc).serve()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Stop stops accepting connections, lets the calls in flight finish (their
// answers written), starts no other and closes every connection. It may be
// called from a handler, on a goroutine of its own: it waits for that
// handler's answer too.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	ln, drained := s.ln, s.drained
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if ln == nil {
		return
	}
	_ = ln.Close()
	for _, c := range conns {
		c.drain()
	}
	close(drained)
}
