// Package daemontest runs the real runtime-attestor daemon with the real
// built-in plugins as subprocesses, for end-to-end, reliability and
// benchmark tests: it builds the executables once per test process, lays out
// a plugin directory, renders the development policy into a temporary
// folder, starts the daemon on a free loopback port and talks to it over a
// real socket.
package daemontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// Env is a laid-out installation: executables, plugin directory, key, token
// and a policy file.
type Env struct {
	t          testing.TB
	Root       string // repository root
	Dir        string // the test's folder
	Daemon     string // the runtime-attestor executable
	Attestctl  string // the attestctl executable
	PluginDir  string
	RunDir     string
	PolicyPath string
	KeyPath    string
	TokenPath  string
	// SigningKey is the daemon's Ed25519 signing key (signing_key_path of
	// the development policy), made as `make run` does, with
	// SigningKey+".pub" beside it.
	SigningKey string
	AuditPath  string
	Addr       string // host:port the policy listens on
	Token      string
	// ExtraEnv is added to the daemon's environment (NOTIFY_SOCKET, …).
	ExtraEnv []string
	// Wrap, if not nil, may change the daemon's command before it starts
	// (start it through another program, pass it file descriptors).
	Wrap func(cmd *exec.Cmd)
	// tmpDir is the daemon's TMPDIR: without RUNTIME_DIRECTORY the daemon
	// makes its plugins' private folder there, and a daemon the test
	// kills leaves that folder behind; it goes with the test. Short, as
	// the plugins' Unix socket paths under it must be.
	tmpDir string
}

// Options shape an Env.
type Options struct {
	// Plugins to install; nil means the six built-ins.
	Plugins []string
}

// New builds what it needs and lays out an Env rendered from the
// development policy template.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	root := testbin.Root(t)
	dir := t.TempDir()
	e := &Env{
		t:         t,
		Root:      root,
		Dir:       dir,
		Daemon:    testbin.Daemon(t),
		Attestctl: testbin.Build(t, "./cmd/attestctl", "attestctl"),
		PluginDir: filepath.Join(dir, "plugins"),
		RunDir:    filepath.Join(dir, "run"),
	}
	for _, d := range []string{e.PluginDir, e.RunDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	tmp, err := os.MkdirTemp("", "attestor-test-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered before any daemon's kill: it runs after them.
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	e.tmpDir = tmp
	if err := os.Chmod(e.PluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plugins := opts.Plugins
	if plugins == nil {
		plugins = builtin.Names()
	}
	for _, p := range plugins {
		testbin.Plugin(t, e.PluginDir, p)
	}
	e.KeyPath = filepath.Join(e.RunDir, "hmac.key")
	e.TokenPath = filepath.Join(e.RunDir, "api-token")
	e.AuditPath = filepath.Join(e.RunDir, "audit.jsonl")
	key := make([]byte, 32)
	tok := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	e.Token = hex.EncodeToString(tok)
	writeFile(t, e.KeyPath, key)
	writeFile(t, e.TokenPath, []byte(e.Token+"\n"))
	e.SigningKey = filepath.Join(e.RunDir, "signing.key")
	if _, err := identity.WriteNew(identity.KeyEd25519, e.SigningKey, e.SigningKey+".pub"); err != nil {
		t.Fatal(err)
	}
	e.Addr = FreeAddr(t)
	e.PolicyPath = filepath.Join(dir, "attestation.yaml")
	e.WritePolicy(e.DevelopmentPolicy())
	return e
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago
// and that the kernel does not hand out by itself: it is drawn below the
// ephemeral range (net.ipv4.ip_local_port_range), so neither a socket
// bound to port 0 nor an outgoing connection of another test can take it
// before the daemon binds it. Two tests may still draw the same port;
// Start moves the daemon to another one when that happens.
func FreeAddr(t testing.TB) string {
	t.Helper()
	low := ephemeralLow()
	for try := 0; low-reservedBelow > 1000 && try < 100; try++ {
		port := reservedBelow + mrand.IntN(low-reservedBelow)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// reservedBelow: FreeAddr draws no port under it (the well-known and
// registered services most machines run).
const reservedBelow = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// if it cannot be read).
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// moveAddr gives the Env a new address after the daemon found its port
// taken, in the policy file too: false if the policy file does not name the
// old address (the test chose the listen address itself).
func (e *Env) moveAddr() bool {
	raw, err := os.ReadFile(e.PolicyPath)
	if err != nil || !bytes.Contains(raw, []byte(e.Addr)) {
		return false
	}
	next := FreeAddr(e.t)
	raw = bytes.ReplaceAll(raw, []byte(e.Addr), []byte(next))
	e.Addr = next
	writeFile(e.t, e.PolicyPath, raw)
	return true
}

// DevelopmentPolicy renders policy/examples/development.yaml.in for this
// Env: its plugin directory, run folder, executables and port.
func (e *Env) DevelopmentPolicy() string {
	raw, err := os.ReadFile(filepath.Join(e.Root, "policy/examples/development.yaml.in"))
	if err != nil {
		e.t.Fatal(err)
	}
	s := string(raw)
	s = strings.NewReplacer(
		"@ROOT@/bin/plugins", e.PluginDir,
		"@ROOT@/bin/runtime-attestor", e.Daemon,
		"@ROOT@/bin/attestctl", e.Attestctl,
		"@ROOT@", e.Root,
		"@RUN@", e.RunDir,
		"127.0.0.1:8505", e.Addr,
	).Replace(s)
	return s
}

// WritePolicy replaces the policy file.
func (e *Env) WritePolicy(yaml string) {
	e.t.Helper()
	writeFile(e.t, e.PolicyPath, []byte(yaml))
}

// URL returns the daemon's URL for path.
func (e *Env) URL(path string) string { return "http://" + e.Addr + path }

// Proc is a running daemon.
type Proc struct {
	env    *Env
	Cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start starts the daemon and waits until its first verdict is served
// (state other than pending), failing the test after 60 s.
//
// A daemon that exits because its port was taken in the meantime (another
// test's daemon drew the same one) is started again on a new port, up to
// four times.
func (e *Env) Start(args ...string) *Proc {
	e.t.Helper()
	for try := 1; ; try++ {
		p := e.StartNoWait(args...)
		if _, exited := p.waitState(60*time.Second, "attested", "degraded", "failed"); !exited {
			return p
		}
		taken := strings.Contains(p.Stderr(), "listen tcp "+e.Addr+": bind: address already in use")
		if !taken || try == 5 || !e.moveAddr() {
			e.t.Fatalf("daemon exited early (%v); log:\n%s", p.err, p.Stderr())
		}
	}
}

// StartNoWait starts the daemon and returns at once. The daemon is killed
// when the test ends if it still runs.
func (e *Env) StartNoWait(args ...string) *Proc {
	e.t.Helper()
	cmd := exec.Command(e.Daemon, append([]string{"--config", e.PolicyPath}, args...)...)
	cmd.Env = append(append(os.Environ(), "TMPDIR="+e.tmpDir), e.ExtraEnv...)
	if e.Wrap != nil {
		e.Wrap(cmd)
	}
	p := &Proc{env: e, Cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = io.Discard
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start daemon: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Stderr returns what the daemon logged so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Done is closed when the daemon exits.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the daemon.
func (p *Proc) Signal(sig os.Signal) {
	p.env.t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		p.env.t.Fatalf("signal daemon: %v", err)
	}
}

// Wait waits up to d for the daemon to exit and returns its exit code.
func (p *Proc) Wait(d time.Duration) int {
	p.env.t.Helper()
	code, exited := p.ExitedWithin(d)
	if !exited {
		p.env.t.Fatalf("daemon did not exit within %s; log:\n%s", d, p.Stderr())
	}
	return code
}

// ExitedWithin waits up to d for the daemon to exit: its exit code and
// true if it did, false if it is still running.
func (p *Proc) ExitedWithin(d time.Duration) (int, bool) {
	p.env.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		return 0, false
	}
	return p.exitCode(), true
}

func (p *Proc) exitCode() int {
	p.env.t.Helper()
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	p.env.t.Fatalf("wait daemon: %v", p.err)
	return -1
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *Proc) Stop() {
	p.env.t.Helper()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(30 * time.Second); code != 0 {
		p.env.t.Fatalf("daemon exited %d after SIGTERM; log:\n%s", code, p.Stderr())
	}
}

var client = &http.Client{Timeout: 120 * time.Second}

// Do sends a request and returns the status and body.
func (e *Env) Do(method, path, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, e.URL(path), nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Get fetches path and fails the test on a transport error.
func (e *Env) Get(path string) (int, []byte) {
	e.t.Helper()
	code, body, err := e.Do(http.MethodGet, path, "")
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return code, body
}

// JSON fetches path and decodes its body into a generic map.
func (e *Env) JSON(path string) map[string]any {
	e.t.Helper()
	_, body := e.Get(path)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		e.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return m
}

// State returns the state /health reports, or "" when unreachable.
func (e *Env) State() string { return e.stateWithin(0) }

// stateWithin is State with a time limit d on the request (0: the client's
// own), so that a listener that never answers does not hold up a wait.
func (e *Env) stateWithin(d time.Duration) string {
	ctx := context.Background()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL("/health"), nil)
	if err != nil {
		return ""
	}
	resp, err := client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return ""
	}
	var h struct{ State string }
	_ = json.Unmarshal(body, &h)
	return h.State
}

// WaitState waits up to d for one of the states.
func (p *Proc) WaitState(d time.Duration, states ...string) string {
	p.env.t.Helper()
	s, exited := p.waitState(d, states...)
	if exited {
		p.env.t.Fatalf("daemon exited early (%v); log:\n%s", p.err, p.Stderr())
	}
	return s
}

// waitState is WaitState, returning true instead of failing the test if
// the daemon exits first.
func (p *Proc) waitState(d time.Duration, states ...string) (string, bool) {
	p.env.t.Helper()
	deadline := time.Now().Add(d)
	for {
		select {
		case <-p.done:
			return "", true
		default:
		}
		s := p.env.stateWithin(10 * time.Second)
		for _, want := range states {
			// Only this daemon's answer counts: another test's daemon
			// may hold the port this one could not bind.
			if s == want && p.listensOn(p.env.Addr) {
				return s, false
			}
		}
		if time.Now().After(deadline) {
			p.env.t.Fatalf("state %q after %s, want one of %v; log:\n%s", s, d, states, p.Stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ProcessesUnder lists live processes whose executable lies under dir (the
// plugin directory), so tests can prove no plugin survives.
func ProcessesUnder(dir string) []int {
	var pids []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	prefix := filepath.Clean(dir) + string(filepath.Separator)
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", ent.Name(), "exe"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(exe, prefix) || strings.HasPrefix(strings.TrimSuffix(exe, " (deleted)"), prefix) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// WaitNoProcessesUnder waits up to d for every process under dir to be gone
// and returns the ones left.
func WaitNoProcessesUnder(dir string, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		left := ProcessesUnder(dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Describe formats pids with their command lines, for failure messages.
func Describe(pids []int) string {
	var b strings.Builder
	for _, pid := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fmt.Fprintf(&b, "%d %s\n", pid, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
	}
	return b.String()
}

// listensOn reports whether the daemon process holds the listening TCP
// socket of addr (one it bound or one it inherited), from /proc/net/tcp*
// and its descriptors; true when /proc cannot tell.
func (p *Proc) listensOn(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return true
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			f := strings.Fields(line)
			// local_address is HEXIP:HEXPORT, st 0A is LISTEN, field 9 the inode.
			if len(f) > 9 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", n)) {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return false
	}
	fds := fmt.Sprintf("/proc/%d/fd", p.Cmd.Process.Pid)
	ents, err := os.ReadDir(fds)
	if err != nil {
		// Gone (it exited, having failed to bind, while another server
		// answered on the port): not this daemon's answer. Unreadable
		// (the daemon runs as another user): taken to be.
		select {
		case <-p.done:
			return false
		default:
		}
		return !errors.Is(err, fs.ErrNotExist)
	}
	for _, ent := range ents {
		if link, err := os.Readlink(filepath.Join(fds, ent.Name())); err == nil && inodes[link] {
			return true
		}
	}
	return false
}
