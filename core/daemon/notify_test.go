package daemon_test

import (
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// notifySocket is a real unixgram socket standing in for systemd's.
type notifySocket struct {
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) (*notifySocket, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{conn: conn}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n, path
}

func (n *notifySocket) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

func (n *notifySocket) waitFor(t *testing.T, d time.Duration, what string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, m := range n.all() {
			if strings.Contains(m, what) {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q on the notify socket within %s; got %q", what, d, n.all())
	return ""
}

// TestSystemdNotify runs the real daemon under a real notify socket:
// READY=1 comes only with the first verdict and carries the state in
// STATUS=, WATCHDOG=1 pings follow, RELOADING=1 then READY=1 frame a
// SIGHUP (sent the moment READY=1 arrives), and STOPPING=1 ends it.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	n, path := listenNotify(t)
	env.ExtraEnv = []string{"NOTIFY_SOCKET=" + path, "WATCHDOG_USEC=400000"}
	p := env.StartNoWait()

	ready := n.waitFor(t, 60*time.Second, "READY=1")
	if s := env.State(); s == "pending" || s == "" {
		t.Fatalf("READY=1 sent while the state is %q", s)
	}
	if !strings.Contains(ready, "STATUS=attested") {
		t.Errorf("READY=1 without the state in STATUS=: %q", ready)
	}
	// A reload the moment READY=1 is out (systemctl reload right after
	// start): SIGHUP is already caught, not its default action.
	before := len(n.all())
	p.Signal(syscall.SIGHUP)
	n.waitFor(t, 10*time.Second, "WATCHDOG=1")
	n.waitFor(t, 30*time.Second, "RELOADING=1")
	deadline := time.Now().Add(30 * time.Second)
	for {
		msgs := n.all()[before:]
		reloaded := false
		for i, m := range msgs {
			if strings.Contains(m, "RELOADING=1") {
				for _, later := range msgs[i+1:] {
					reloaded = reloaded || strings.Contains(later, "READY=1")
				}
			}
		}
		if reloaded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no READY=1 after RELOADING=1: %q", msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Stop()
	n.waitFor(t, 5*time.Second, "STOPPING=1")
}

// TestSignalsDuringStart: a SIGHUP or SIGTERM sent the moment the API's
// port opens, long before the first verdict, is caught, not the signal's
// default action (the end of the process). The reload waits for READY=1,
// which comes first and carries the first verdict; the stop comes once
// the start is done, cleanly.
func TestSignalsDuringStart(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGHUP", syscall.SIGHUP}, {"SIGTERM", syscall.SIGTERM}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := daemontest.New(t, daemontest.Options{})
			n, path := listenNotify(t)
			env.ExtraEnv = []string{"NOTIFY_SOCKET=" + path}
			p := env.StartNoWait()
			deadline := time.Now().Add(60 * time.Second)
			for {
				if c, err := net.DialTimeout("tcp", env.Addr, time.Second); err == nil {
					c.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the API never listened: %s", p.Stderr())
				}
				time.Sleep(time.Millisecond)
			}
			p.Signal(tt.sig)
			if tt.sig == syscall.SIGTERM {
				if code := p.Wait(60 * time.Second); code != 0 {
					t.Fatalf("SIGTERM during the start: exit status %d, want 0; stderr:\n%s", code, p.Stderr())
				}
				return
			}
			for !slices.ContainsFunc(n.all(), func(m string) bool { return strings.Contains(m, "RELOADING=1") }) {
				if !p.Alive() || time.Now().After(deadline) {
					t.Fatalf("no RELOADING=1 (alive %v): %q; stderr:\n%s", p.Alive(), n.all(), p.Stderr())
				}
				time.Sleep(20 * time.Millisecond)
			}
			msgs := n.all()
			first := slices.IndexFunc(msgs, func(m string) bool { return strings.Contains(m, "READY=1") })
			reload := slices.IndexFunc(msgs, func(m string) bool { return strings.Contains(m, "RELOADING=1") })
			if first < 0 || first > reload || strings.Contains(msgs[first], "STATUS=pending") {
				t.Fatalf("RELOADING=1 before READY=1 with the first verdict: %q", msgs)
			}
			deadline = time.Now().Add(30 * time.Second)
			for !slices.ContainsFunc(n.all()[reload+1:], func(m string) bool { return strings.Contains(m, "READY=1") }) {
				if time.Now().After(deadline) || !p.Alive() {
					t.Fatalf("no READY=1 after the reload (alive %v): %q; stderr:\n%s", p.Alive(), n.all(), p.Stderr())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
