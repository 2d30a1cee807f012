package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitest"
)

// holder keeps n connections to addr open, each either silent, sending a
// request line and headers very slowly, or idle after one request
// (keep-alive), reopening each one the server closes, until stop.
type holder struct {
	held     atomic.Int64 // connections open right now
	reopened atomic.Int64
	wg       sync.WaitGroup
	stop     chan struct{}
}

func holdConnections(t *testing.T, addr string, n int, sources []string) *holder {
	t.Helper()
	h := &holder{stop: make(chan struct{})}
	kinds := []string{"silent", "slow", "keepalive"}
	for i := 0; i < n; i++ {
		src := sources[i%len(sources)]
		kind := kinds[i%len(kinds)]
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for first := true; ; first = false {
				select {
				case <-h.stop:
					return
				default:
				}
				if !first {
					h.reopened.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue
				}
				h.held.Add(1)
				h.hold(c, kind)
				h.held.Add(-1)
				c.Close()
			}
		}()
	}
	t.Cleanup(func() { close(h.stop); h.wg.Wait() })
	return h
}

// hold uses c as kind until the server closes it or the test stops.
func (h *holder) hold(c net.Conn, kind string) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		switch kind {
		case "keepalive":
			fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		case "slow":
			fmt.Fprintf(c, "GET /health HTTP/1.1\r\n")
			go func() {
				for i := 0; ; i++ {
					select {
					case <-closed:
						return
					case <-h.stop:
						return
					case <-time.After(500 * time.Millisecond):
					}
					if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", i); err != nil {
						return
					}
				}
			}()
		}
		_, _ = io.Copy(io.Discard, c) // until the server closes it
	}()
	select {
	case <-closed:
	case <-h.stop:
	}
}

// TestHeldConnectionsDoNotBlockVerify: 1,000 connections held open
// (silent, slow or idle keep-alive, reopened as soon as closed) from one
// address or from many leave /health and /api/v1/verify answering a client
// that connects and asks.
func TestHeldConnectionsDoNotBlockVerify(t *testing.T) {
	t.Parallel()
	many := make([]string, 200)
	for i := range many {
		many[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	for i, tc := range []struct {
		name    string
		sources []string
	}{
		{"one address", []string{"127.0.0.1"}},
		{"200 addresses, past the total cap", many},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Below the default limit (1024) 1,000 connections would
			// simply fit: 512 makes them overflow it, so that eviction
			// is what keeps the API answering.
			s := start(t, nil, api.Options{MaxConns: 512})
			addr := strings.TrimPrefix(s.url, "http://")
			h := holdConnections(t, addr, 1000, tc.sources)
			deadline := time.Now().Add(60 * time.Second)
			for h.held.Load() < 1000 && h.reopened.Load() < 1000 {
				if time.Now().After(deadline) {
					t.Fatalf("Test %d: only %d connections held", i, h.held.Load())
				}
				time.Sleep(10 * time.Millisecond)
			}
			var took []time.Duration
			for j := 0; j < 10; j++ {
				path := []string{"/api/v1/verify", "/health"}[j%2]
				begin := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
				c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err := c.Do(req)
				cancel()
				if err != nil {
					t.Fatalf("Test %d: GET %s with %d connections held: %v", i, path, h.held.Load(), err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("Test %d: GET %s: %d", i, path, resp.StatusCode)
				}
				took = append(took, time.Since(begin))
			}
			sort.Slice(took, func(a, b int) bool { return took[a] < took[b] })
			t.Logf("%s: %d held, %d reopened; /verify and /health: median %s, max %s", tc.name,
				h.held.Load(), h.reopened.Load(), took[len(took)/2], took[len(took)-1])
		})
	}
}

// TestBusyConnectionsAreNotEvicted: a connection whose handler runs (a
// refresh waiting on its attestation) is never closed to make room.
func TestBusyConnectionsAreNotEvicted(t *testing.T) {
	t.Parallel()
	s := start(t, nil, api.Options{Token: []byte(goodToken), MaxConns: 2, MaxConnsPerPeer: 2})
	release := s.att.Hold()
	done := make(chan response, 1)
	go func() { done <- do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, bearer(goodToken)) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !s.att.WaitFor(ctx, func(_, _, waiting int) bool { return waiting == 1 }) {
		t.Fatal("the refresh never started waiting")
	}
	// Two newcomers, each asking at once: each may close an idle
	// connection, never the refresh.
	for j := 0; j < 5; j++ {
		if r := get(t, s.url+"/api/v1/verify"); r.code != 200 {
			t.Fatalf("GET /api/v1/verify: %d", r.code)
		}
	}
	release()
	if r := <-done; r.code != 200 {
		t.Fatalf("the held refresh: %d %s, want 200", r.code, r.body)
	}
}

// TestMisdirectedHost: a request on the loopback whose Host names another
// host (DNS rebinding) is refused with 421; loopback names pass.
func TestMisdirectedHost(t *testing.T) {
	t.Parallel()
	s := start(t, nil, api.Options{})
	addr := strings.TrimPrefix(s.url, "http://")
	for i, tc := range []struct {
		host string
		code int
	}{
		{"127.0.0.1", 200}, {addr, 200}, {"localhost", 200}, {"LOCALHOST:8505", 200}, {"[::1]:8505", 200},
		{"127.1.2.3", 200}, {"attestor.localhost", 200}, {"localhost.", 200},
		{"evil.example", 421}, {"evil.example:8505", 421}, {"10.0.0.1", 421}, {"localhost.evil.example", 421},
		{"127.0.0.1.nip.io", 421},
	} {
		for _, path := range []string{"/api/v1/attest", "/health", "/nowhere"} {
			req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
			req.Host = tc.host
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := tc.code
			if want == 200 && path == "/nowhere" {
				want = 404
			}
			if resp.StatusCode != want {
				t.Errorf("Test %d: Host %q %s: %d %s, want %d", i, tc.host, path, resp.StatusCode, body, want)
			}
		}
	}
}

// TestUnreadAnswersDoNotBlockVerify: a local process without the token
// opens twice the connection limit, asks each for the bundle (made large,
// as a plugin's answers can make it) and never reads: every handler blocks
// writing. /api/v1/verify is still answered, each newcomer taking the place
// of a connection whose answer has waited unread past the slow threshold.
func TestUnreadAnswersDoNotBlockVerify(t *testing.T) {
	t.Parallel()
	snap := attestedSnapshot(t)
	snap.Bundle = []byte(`{"pad":"` + strings.Repeat("x", 4<<20) + `"}`)
	const limit = 16
	s := start(t, apitest.New(snap), api.Options{MaxConns: limit})
	addr := strings.TrimPrefix(s.url, "http://")
	small := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
	}}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2*limit + 4 {
		c, err := small.Dial("tcp", addr)
		if err != nil {
			continue
		}
		if _, err := c.Write([]byte("GET /api/v1/attest HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err == nil {
			held = append(held, c)
		}
	}
	// Each handler has begun its answer (the first byte is here: it is
	// writing, and blocks once the small buffers are full), however slow
	// a loaded race build is to get there; then past the slow threshold
	// (1 s). The connections refused for the limit end at once.
	one := make([]byte, 1)
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _ = c.Read(one)
	}
	time.Sleep(1500 * time.Millisecond)
	// Answered at all, not how fast: unfixed, every handler stays blocked
	// for the write timeout (100 s).
	cl := http.Client{Timeout: 15 * time.Second}
	for i := range 5 {
		r, err := cl.Get(s.url + "/api/v1/verify")
		if err != nil {
			t.Fatalf("verify %d while %d connections leave their answers unread: %v", i, len(held), err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("verify %d: status %d", i, r.StatusCode)
		}
	}
}
