package sdnotify_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/core/sdnotify"
)

// listen opens a real notification socket (unixgram) in a temporary folder
// and points NOTIFY_SOCKET at it.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	t.Setenv(sdnotify.SocketEnv, path)
	return conn
}

// next reads one datagram, failing the test after a generous timeout.
func next(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

// drain returns every datagram already queued on conn, without waiting.
// Datagrams on a local socket are queued when the sender's write returns,
// so once the sender is done this sees all of them.
func drain(t *testing.T, conn *net.UnixConn) []string {
	t.Helper()
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	buf := make([]byte, 4096)
	for {
		var n int
		var rerr error
		if err := raw.Control(func(fd uintptr) {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		}); err != nil {
			t.Fatal(err)
		}
		if errors.Is(rerr, unix.EAGAIN) {
			return out
		}
		if rerr != nil {
			t.Fatalf("drain: %v", rerr)
		}
		out = append(out, string(buf[:n]))
	}
}

func TestMessages(t *testing.T) {
	conn := listen(t)
	n := sdnotify.New(nil)
	if !n.Enabled() || n.Socket() == "" {
		t.Fatal("notifier disabled with NOTIFY_SOCKET set")
	}
	for i, tc := range []struct {
		send func() error
		want string
	}{
		{func() error { return n.Status("pending: first attestation running") }, "STATUS=pending: first attestation running"},
		{func() error { return n.Ready("attested (score 0)") }, "READY=1\nSTATUS=attested (score 0)"},
		{func() error { return n.Status("degraded\nREADY=1") }, "STATUS=degraded READY=1"},
		{func() error { return n.Stopping() }, "STOPPING=1"},
	} {
		if err := tc.send(); err != nil {
			t.Fatalf("Test %d: send: %v", i, err)
		}
		if got := next(t, conn); got != tc.want {
			t.Errorf("Test %d: got %q, want %q", i, got, tc.want)
		}
	}
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	got := next(t, conn)
	if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reloading sent %q", got)
	}
}

func TestDisabledWithoutSocket(t *testing.T) {
	t.Setenv(sdnotify.SocketEnv, "")
	os.Unsetenv(sdnotify.SocketEnv)
	n := sdnotify.New(nil)
	if n.Enabled() {
		t.Fatal("enabled without NOTIFY_SOCKET")
	}
	if err := n.Ready("attested"); err != nil {
		t.Fatalf("Ready without a socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.Watchdog(ctx, func() bool { t.Fatal("healthy polled without a socket"); return true })
}

func TestUnreachableSocketIsAnError(t *testing.T) {
	t.Setenv(sdnotify.SocketEnv, filepath.Join(t.TempDir(), "nobody-listens"))
	err := sdnotify.New(nil).Ready("attested")
	if err == nil || !strings.Contains(err.Error(), "nobody-listens") {
		t.Fatalf("got %v, want an error naming the socket", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for i, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"20000000", pid, 10 * time.Second, false},
		{"20000000", "", 10 * time.Second, false},
		{"20000000", "1", 0, false}, // meant for another process
		{"abc", pid, 0, true},
		{"-5", pid, 0, true},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, err := sdnotify.WatchdogInterval()
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Test %d: WATCHDOG_USEC=%q WATCHDOG_PID=%q: got %v, %v; want %v, error %v", i, tc.usec, tc.pid, got, err, tc.want, tc.err)
		}
	}
}

// TestWatchdogFollowsHealth: a keep-alive goes out exactly for each poll
// that found the engine healthy, none while it is unhealthy.
func TestWatchdogFollowsHealth(t *testing.T) {
	conn := listen(t)
	t.Setenv("WATCHDOG_USEC", "2000") // pings every 1ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	// The engine is healthy for 5 polls, unhealthy for 5, healthy for 3.
	script := []bool{true, true, true, true, true, false, false, false, false, false, true, true, true}
	var mu sync.Mutex
	polls := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	healthy := func() bool {
		mu.Lock()
		defer mu.Unlock()
		i := polls
		polls++
		if i >= len(script)-1 {
			cancel() // last scripted poll: stop after it
		}
		if i >= len(script) {
			return false
		}
		return script[i]
	}
	done := make(chan struct{})
	go func() {
		sdnotify.New(nil).Watchdog(ctx, healthy)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("watchdog did not stop after its context was cancelled")
	}
	mu.Lock()
	n := polls
	mu.Unlock()
	wantPings := 0
	for i := 0; i < n && i < len(script); i++ {
		if script[i] {
			wantPings++
		}
	}
	got := drain(t, conn)
	for _, d := range got {
		if d != "WATCHDOG=1" {
			t.Errorf("unexpected notification %q", d)
		}
	}
	if len(got) != wantPings {
		t.Errorf("%d keep-alives for %d healthy polls (of %d polls)", len(got), wantPings, n)
	}
	if wantPings != 8 {
		t.Errorf("the script ran %d polls (%d healthy), want all %d (8 healthy)", n, wantPings, len(script))
	}
}
