package api

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Peer is who is at the other end of a connection: on TCP the address, on
// a Unix socket the process's credentials as the kernel gives them
// (SO_PEERCRED), which the peer cannot fake.
type Peer struct {
	// Addr is the remote address ("127.0.0.1:51234"); "unix" on a Unix
	// socket.
	Addr string
	// UID and PID of a Unix-socket peer; -1 on TCP.
	UID, PID int
	// Loopback: the connection arrived on a loopback address (or a Unix
	// socket), so its Host header must name the loopback too.
	Loopback bool
	unix     bool
}

// Key is what the per-peer limits count by: the uid on a Unix socket, the
// IP address on TCP (its ports are free for the taking).
//
// Every local process reaches a loopback port from the same 127.0.0.1 (or
// picks any other address in 127/8), so on the loopback an address tells
// nobody apart, and a cap per address would give an attacker the share of
// the very clients it wants to lock out: loopback TCP peers are therefore
// held only by the total cap (see fairListener), and the Unix socket, where
// the kernel names the uid, is where a local caller gets its own share.
func (p Peer) Key() string {
	if p.unix {
		return "uid:" + strconv.Itoa(p.UID)
	}
	if host, _, err := net.SplitHostPort(p.Addr); err == nil {
		return "ip:" + host
	}
	return "addr:" + p.Addr
}

// String names the peer for logs and audit records.
func (p Peer) String() string {
	if p.unix {
		return "unix:uid=" + strconv.Itoa(p.UID) + ",pid=" + strconv.Itoa(p.PID)
	}
	return p.Addr
}

// sharedAddr: a loopback TCP peer, whose address every local process
// shares (see Key).
func (p Peer) sharedAddr() bool { return !p.unix && p.Loopback }

// coalesced names the peer across its connections: the IP address on TCP
// (the port differs on each), the credentials on a Unix socket.
func (p Peer) coalesced() string {
	if host, _, err := net.SplitHostPort(p.Addr); err == nil && !p.unix {
		return host
	}
	return p.String()
}

// peerOf reads the peer of a freshly accepted connection.
func peerOf(c net.Conn) Peer {
	if uc, ok := c.(*net.UnixConn); ok {
		p := Peer{Addr: "unix", UID: -1, PID: -1, Loopback: true, unix: true}
		if rc, err := uc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					p.UID, p.PID = int(cred.Uid), int(cred.Pid)
				}
			})
		}
		return p
	}
	p := Peer{Addr: c.RemoteAddr().String(), UID: -1, PID: -1}
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
		p.Loopback = la.IP.IsLoopback()
	}
	return p
}

// fairListener admits connections so that nobody can starve the API by
// holding connections: at most max at once and perPeer per peer
// (Peer.Key). When a new connection would pass a limit, a held connection
// is closed to make room, first among the same peer's, else among
// everyone's, the cheapest first: one idle between keep-alive requests,
// then one that sent nothing for slowAfter, then one that has been sending its
// request line and headers for longer than slowAfter (a slow client that
// the header timeout would cut anyway) or whose answer it has not read for
// longer than slowAfter (a write blocked that long: a local client reads
// an answer as fast as it is written). Never closed: a connection whose
// handler runs and is not stuck writing, one whose request waits unread in
// the socket, one that began its request less than slowAfter ago. When none can go, the
// newcomer is admitted anyway up to twice the limit, and refused past it.
// So a client that connects and asks at once is served however many idle
// or slow connections others hold, and the file descriptors stay bounded.
type fairListener struct {
	net.Listener
	max, perPeer int
	slowAfter    time.Duration
	now          func() time.Time

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	byPeer map[string]int
}

// slowAfter: a local client sends its whole request within a few
// milliseconds.
// Long enough that a client starved of CPU for a moment between connect and
// write is not taken for a silent one, short against the header timeout.
const defaultSlowAfter = time.Second

func newFairListener(ln net.Listener, max, perPeer int) *fairListener {
	return &fairListener{
		Listener: ln, max: max, perPeer: perPeer, slowAfter: defaultSlowAfter, now: time.Now,
		conns: map[*trackedConn]struct{}{}, byPeer: map[string]int{},
	}
}

// trackedConn is an admitted connection. Its fields after once are
// guarded by l.mu, but writing.
type trackedConn struct {
	net.Conn
	l        *fairListener
	peer     Peer
	key      string
	accepted time.Time
	once     sync.Once

	state http.ConnState
	since time.Time // of the state
	busy  int       // handlers running on it
	// writing is when the Write under way began (Unix nanoseconds of
	// l.now), 0 when none is: atomic, so that a write takes no lock.
	writing atomic.Int64
}

// Write notes how long a write waits on the peer (see class).
func (c *trackedConn) Write(p []byte) (int, error) {
	c.writing.Store(c.l.now().UnixNano())
	defer c.writing.Store(0)
	return c.Conn.Write(p)
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.forget(c) })
	return err
}

// Accept returns the next admitted connection.
func (l *fairListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		now := l.now()
		tc := &trackedConn{Conn: c, l: l, peer: peerOf(c), accepted: now, state: http.StateNew, since: now}
		tc.key = tc.peer.Key()
		victim, ok := l.admit(tc)
		if victim != nil {
			_ = victim.Close()
		}
		if ok {
			return tc, nil
		}
		_ = c.Close()
	}
}

// admit registers c, returning a connection to close to make room, and
// false when c itself must be refused.
func (l *fairListener) admit(c *trackedConn) (*trackedConn, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var victim *trackedConn
	switch {
	case l.perPeer > 0 && !c.peer.sharedAddr() && l.byPeer[c.key] >= l.perPeer:
		victim = l.cheapest(c.key)
		if victim == nil && l.byPeer[c.key] >= 2*l.perPeer {
			return nil, false
		}
	case len(l.conns) >= l.max:
		victim = l.cheapest("")
		if victim == nil && len(l.conns) >= 2*l.max {
			return nil, false
		}
	}
	if victim != nil {
		l.remove(victim) // counted out now, so the newcomer fits
	}
	l.conns[c] = struct{}{}
	l.byPeer[c.key]++
	return victim, true
}

func (l *fairListener) remove(c *trackedConn) {
	if _, ok := l.conns[c]; !ok {
		return
	}
	delete(l.conns, c)
	if l.byPeer[c.key]--; l.byPeer[c.key] <= 0 {
		delete(l.byPeer, c.key)
	}
}

func (l *fairListener) forget(c *trackedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remove(c)
}

// cheapest is the connection (of peer key, or of anyone when key is "")
// that costs least to close, nil when each must stay. Caller holds mu.
func (l *fairListener) cheapest(key string) *trackedConn {
	now := l.now()
	var best *trackedConn
	bestClass := 3
	for c := range l.conns {
		if key != "" && c.key != key {
			continue
		}
		class := l.class(c, now)
		if class < bestClass || (class == bestClass && best != nil && c.since.Before(best.since)) {
			best, bestClass = c, class
		}
	}
	return best
}

// class ranks c for closing: 0 idle keep-alive, 1 silent (for slowAfter:
// a client sends its request a moment after connect returns), 2 slow (to
// send its request, or to read its answer), 3 must stay. Caller holds mu.
func (l *fairListener) class(c *trackedConn, now time.Time) int {
	w := c.writing.Load()
	switch {
	case w != 0 && now.Sub(time.Unix(0, w)) >= l.slowAfter:
		return 2
	case c.busy > 0:
		return 3
	case c.state == http.StateIdle && !pending(c.Conn):
		return 0
	case c.state == http.StateNew && now.Sub(c.since) >= l.slowAfter && !pending(c.Conn):
		return 1
	case c.state == http.StateActive && now.Sub(c.since) >= l.slowAfter:
		return 2
	}
	return 3
}

// pending reports whether bytes wait unread in c's socket: a request that
// arrived and is about to be served.
func pending(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n > 0
}

// connState is http.Server.ConnState: it follows each connection.
func (l *fairListener) connState(c *trackedConn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.state != st {
		c.state, c.since = st, l.now()
	}
}

// connStateHook routes http.Server.ConnState to the connection's listener.
func connStateHook(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*trackedConn); ok {
		tc.l.connState(tc, st)
	}
}

// setBusy marks a handler starting (+1) or ending (-1) on c.
func (l *fairListener) setBusy(c *trackedConn, d int) {
	l.mu.Lock()
	c.busy += d
	l.mu.Unlock()
}

type connKey struct{}

// withConn is http.Server.ConnContext: it makes the tracked connection
// reachable from each request on it.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*trackedConn); ok {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// connOf returns the tracked connection of a request, nil when the request
// did not come through a fairListener (Handler() served by someone else).
func connOf(ctx context.Context) *trackedConn {
	tc, _ := ctx.Value(connKey{}).(*trackedConn)
	return tc
}
