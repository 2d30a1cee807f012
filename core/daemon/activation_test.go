package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// execAsSystemd marks the test binary started as the last step of a
// socket-activated start: like systemd's forked child, it sets LISTEN_PID
// to its own pid and execs the daemon (os.Args[1:]) in place, keeping the
// listening sockets at file descriptors 3 and up.
const execAsSystemd = "ATTESTOR_TEST_EXEC_AS_SYSTEMD"

func execWithListenPID() {
	env := []string{"LISTEN_PID=" + strconv.Itoa(os.Getpid())}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, execAsSystemd+"=") && !strings.HasPrefix(kv, "LISTEN_PID=") {
			env = append(env, kv)
		}
	}
	err := syscall.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", os.Args[1], err)
	os.Exit(127)
}

// socketHolder is the service manager's part: it owns the listening
// sockets for the whole test, whether a daemon runs or not.
type socketHolder struct {
	tcp   *net.TCPListener
	unix  *net.UnixListener
	files []*os.File
	sock  string
}

func holdSockets(t *testing.T) *socketHolder {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "attestor.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	h := &socketHolder{tcp: tl.(*net.TCPListener), unix: ul.(*net.UnixListener), sock: sock}
	for _, l := range []interface{ File() (*os.File, error) }{h.tcp, h.unix} {
		f, err := l.File()
		if err != nil {
			t.Fatal(err)
		}
		h.files = append(h.files, f)
	}
	t.Cleanup(func() {
		for _, f := range h.files {
			f.Close()
		}
		h.tcp.Close()
		h.unix.Close()
	})
	return h
}

// wrap starts the daemon as systemd does for a socket unit: the sockets at
// fds 3 and 4, LISTEN_FDS=2, LISTEN_FDNAMES, and LISTEN_PID set by the
// process itself just before it becomes the daemon.
func (h *socketHolder) wrap(cmd *exec.Cmd) {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cmd.Args = append([]string{self}, cmd.Args...)
	cmd.Args[1] = cmd.Path
	cmd.Path = self
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, execAsSystemd+"=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=http:unix")
	cmd.ExtraFiles = h.files
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

func squat(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err == nil {
			ln.Close()
			t.Fatalf("a squatter bound %s while the service manager holds the port", a)
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("squatting %s: %v, want EADDRINUSE", a, err)
		}
	}
}

// TestSocketActivation: the daemon serves on sockets it inherits as from
// systemd (real LISTEN_FDS inheritance through exec), binds nothing itself,
// and a squatter can never take the port: not while the daemon runs, not
// while it is stopped, not when it starts again. On the Unix socket the
// audit records carry the caller's uid and pid from SO_PEERCRED.
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	h := holdSockets(t)
	policyListen := env.Addr // what the policy says; never bound
	env.Addr = h.tcp.Addr().String()
	env.Wrap = h.wrap
	_, port, _ := net.SplitHostPort(env.Addr)
	squatAddrs := []string{env.Addr, "0.0.0.0:" + port, "[::]:" + port}

	p := env.Start()
	if s := env.State(); s != "attested" {
		t.Fatalf("state %q over the inherited TCP socket; log:\n%s", s, p.Stderr())
	}
	if !strings.Contains(p.Stderr(), "socket_activation=true") {
		t.Errorf("the daemon did not say it was socket-activated; log:\n%s", p.Stderr())
	}
	squat(t, squatAddrs...)
	if ln, err := net.Listen("tcp", policyListen); err != nil {
		t.Errorf("the daemon bound the policy's listen address %s itself: %v", policyListen, err)
	} else {
		ln.Close()
	}

	uc := unixClient(h.sock)
	resp, err := uc.Get("http://localhost/api/v1/verify")
	if err != nil {
		t.Fatalf("GET /api/v1/verify on the Unix socket: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /api/v1/verify on the Unix socket: %d", resp.StatusCode)
	}
	for _, tok := range []string{env.Token, "wrong"} {
		req, _ := http.NewRequest(http.MethodPost, "http://localhost/api/v1/refresh", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := uc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	p.Stop()
	squat(t, squatAddrs...) // the service manager still holds it
	p = env.Start()         // a restart gets the same sockets
	if s := env.State(); s != "attested" {
		t.Fatalf("state %q after a restart on the same sockets", s)
	}
	p.Stop()

	me, pid := float64(os.Getuid()), float64(os.Getpid())
	var authorized, refused int
	for _, r := range env.AuditRecords() {
		if r.Data["peer"] == "unix:uid="+fmt.Sprint(os.Getuid())+",pid="+fmt.Sprint(os.Getpid()) &&
			r.Data["peer_uid"] == me && r.Data["peer_pid"] == pid {
			switch r.Type {
			case "refresh":
				authorized++
			case "refresh_refused":
				refused++
			}
		}
	}
	if authorized != 1 || refused != 1 {
		t.Errorf("%d refresh and %d refresh_refused records name this process by SO_PEERCRED, want 1 and 1; records: %v", authorized, refused, env.AuditRecords())
	}
}

// TestInheritedRemoteSocketRefused: a non-loopback socket handed over by
// the service manager is refused like a non-loopback listen address.
func TestInheritedRemoteSocketRefused(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env.Wrap = func(cmd *exec.Cmd) {
		(&socketHolder{files: []*os.File{f}}).wrap(cmd)
		cmd.Env = append(cmd.Env, "LISTEN_FDS=1")
	}
	p := env.StartNoWait()
	if code := p.Wait(60 * time.Second); code != 3 {
		t.Fatalf("exit %d, want 3; log:\n%s", code, p.Stderr())
	}
	if !strings.Contains(p.Stderr(), "not a loopback address") || !strings.Contains(p.Stderr(), "allow_remote_listen") {
		t.Errorf("the refusal does not name the address and the fix:\n%s", p.Stderr())
	}
}

// TestRemoteListen: listen on every interface is refused at start by
// default, naming the key and the fix; with allow_remote_listen: true the
// daemon serves and warns.
func TestRemoteListen(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	for i, allow := range []bool{false, true} {
		// A port free on every interface just now; another test may take
		// it before the daemon binds, so a bind race is retried on a new
		// port rather than taken for the daemon's failure.
		for try := 0; ; try++ {
			port := freeWildcardPort(t)
			env.Addr = net.JoinHostPort("127.0.0.1", port) // where the test reaches it
			env.EditPolicy(func(doc map[string]any) {
				doc["listen"] = "0.0.0.0:" + port
				doc["allow_remote_listen"] = allow
			})
			p := env.StartNoWait()
			if !allow {
				if code := p.Wait(60 * time.Second); code != 3 || !strings.Contains(p.Stderr(), "listen") || !strings.Contains(p.Stderr(), "allow_remote_listen: true") {
					t.Fatalf("Test %d: exit %d, want 3 naming listen and allow_remote_listen; log:\n%s", i, code, p.Stderr())
				}
				break
			}
			if code, exited := p.ExitedWithin(2 * time.Second); exited && code == 3 && strings.Contains(p.Stderr(), "address already in use") && try < 5 {
				continue
			}
			p.WaitState(60*time.Second, "attested", "degraded", "failed")
			if !strings.Contains(p.Stderr(), "non-loopback address") {
				t.Errorf("Test %d: no warning about the remote listener; log:\n%s", i, p.Stderr())
			}
			p.Stop()
			break
		}
	}
}

// freeWildcardPort returns a TCP port that was free on every interface.
func freeWildcardPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
