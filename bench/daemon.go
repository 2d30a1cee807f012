package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/secure-ai/runtime-attestor/core/identity"
)

// install lays out an installation in dir: the plugins of bins.Plugins, an
// HMAC key, an API token, a signing key and the development policy rendered for it, with
// these changes: a free loopback port, no periodic attestation while
// measuring (refresh_interval 1h), and, when services is not nil, those
// service binaries with resident plugins. Its runtime folder (the unit's
// RuntimeDirectory, where the daemon makes each plugin's socket folder and
// grant) is a folder of its own under runtimeBase.
func install(bins bins, dir, runtimeBase string, services map[string]string) (*layout, error) {
	l := &layout{dir: dir, run: filepath.Join(dir, "run"), plugins: filepath.Join(dir, "plugins"),
		runtime: filepath.Join(runtimeBase, filepath.Base(dir))}
	for _, d := range []string{l.run, l.plugins, l.runtime} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(l.plugins, 0o755); err != nil {
		return nil, err
	}
	exes, _ := filepath.Glob(filepath.Join(bins.Plugins, "attestor-check-*"))
	if len(exes) == 0 {
		return nil, fmt.Errorf("no attestor-check-* in %s: run make build", bins.Plugins)
	}
	for _, exe := range exes {
		// A link where it can: the same file, without copying 20 MB.
		dst := filepath.Join(l.plugins, filepath.Base(exe))
		if os.Link(exe, dst) != nil {
			if err := copyFile(exe, dst, 0o755); err != nil {
				return nil, err
			}
		}
	}
	tok := make([]byte, 24)
	key := make([]byte, 32)
	_, _ = rand.Read(tok)
	_, _ = rand.Read(key)
	l.token = hex.EncodeToString(tok)
	if err := errors.Join(
		os.WriteFile(filepath.Join(l.run, "hmac.key"), key, 0o600),
		os.WriteFile(filepath.Join(l.run, "api-token"), []byte(l.token+"\n"), 0o600)); err != nil {
		return nil, err
	}
	// The development policy's signing_key_path, made as make run makes it:
	// the daemon does not start without it.
	signing := filepath.Join(l.run, "signing.key")
	if _, err := identity.WriteNew(identity.KeyEd25519, signing, signing+".pub"); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.addr = ln.Addr().String()
	ln.Close()
	pol, err := l.render(bins, services)
	if err != nil {
		return nil, err
	}
	l.policy = filepath.Join(dir, "attestation.yaml")
	return l, os.WriteFile(l.policy, pol, 0o600)
}

// layout is an installation in a folder of its own.
type layout struct {
	dir, run, plugins, runtime, policy, token, addr string
}

func (l *layout) render(bins bins, services map[string]string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(bins.Root, "policy/examples/development.yaml.in"))
	if err != nil {
		return nil, err
	}
	s := strings.NewReplacer(
		"@ROOT@/bin/plugins", l.plugins,
		"@ROOT@/bin/runtime-attestor", bins.Daemon,
		"@ROOT@/bin/attestctl", bins.Attestctl,
		"@ROOT@", bins.Root,
		"@RUN@", l.run,
	).Replace(string(raw))
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return nil, fmt.Errorf("development policy: %w", err)
	}
	doc["listen"] = l.addr
	doc["refresh_interval"] = "1h"
	// The unit's own pacing (the policy default), not the development
	// run's none.
	delete(doc, "attestation_cpu_percent")
	if services != nil {
		doc["service_binaries"] = services
		doc["resident_plugins"] = true
	}
	return yaml.Marshal(doc)
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// daemon is a runtime-attestor started in a group, with a notify socket of
// its own standing in for systemd's.
type daemon struct {
	l       *layout
	g       *group
	cmd     *exec.Cmd
	started time.Time
	ready   chan time.Time // READY=1 received
	done    chan struct{}
	stderr  bytes.Buffer
	notify  *net.UnixConn
	client  *http.Client
	stopRSS chan struct{}
	rss     <-chan peaks
}

// startDaemon starts the daemon in g with GOMAXPROCS=1 and NOTIFY_SOCKET,
// as the unit does, and returns at once.
func startDaemon(daemonExe string, l *layout, g *group) (*daemon, error) {
	sock := filepath.Join(l.run, "notify.sock")
	_ = os.Remove(sock) // the socket of an earlier start of l
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	d := &daemon{l: l, g: g, ready: make(chan time.Time, 1), done: make(chan struct{}), notify: conn,
		client: &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
	go d.readNotify()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "RUNTIME_DIRECTORY=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GOMAXPROCS=1", "NOTIFY_SOCKET="+sock, "RUNTIME_DIRECTORY="+d.l.runtime)
	d.cmd = exec.Command(daemonExe, "--config", l.policy)
	d.cmd.Env = env
	d.cmd.Stderr = &d.stderr
	d.started = time.Now()
	if err := g.start(d.cmd); err != nil {
		conn.Close()
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	d.stopRSS = make(chan struct{})
	d.rss = g.rss(d.stopRSS)
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	return d, nil
}

func (d *daemon) readNotify() {
	buf := make([]byte, 4096)
	sent := false
	for {
		n, _, err := d.notify.ReadFromUnix(buf)
		if err != nil {
			return
		}
		at := time.Now()
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == "READY=1" && !sent {
				sent = true
				d.ready <- at
			}
		}
	}
}

// waitReady returns the time from exec to READY=1 and the CPU the group
// used until then.
func (d *daemon) waitReady(ctx context.Context) (time.Duration, time.Duration, error) {
	select {
	case at := <-d.ready:
		cpu, err := d.g.cpu()
		return at.Sub(d.started), cpu, err
	case <-d.done:
		return 0, 0, fmt.Errorf("daemon exited before READY=1 (%v): %s", d.cmd.ProcessState, head(d.stderr.String()))
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// refresh asks for one attestation (POST /api/v1/refresh) and returns its
// wall time as the client saw it and the CPU the group used meanwhile.
func (d *daemon) refresh(ctx context.Context) (wall, cpu time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.l.addr+"/api/v1/refresh", nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+d.l.token)
	cpu0, err := d.g.cpu()
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("refresh: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	wall = time.Since(t0)
	cpu1, cerr := d.g.cpu()
	if err = errors.Join(err, cerr); err != nil {
		return 0, 0, err
	}
	var ans struct {
		State  string
		Bundle struct {
			Failures []struct{ Code, Severity, Subject string }
		}
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ans) != nil || ans.State != "attested" {
		if ans.State != "" {
			body, _ = json.Marshal(ans.Bundle.Failures)
		}
		return 0, 0, fmt.Errorf("refresh: status %d, state %q, want 200 and attested: %s", resp.StatusCode, ans.State, tail(string(body)))
	}
	return wall, cpu1 - cpu0, nil
}

// stop sends SIGTERM, waits for the daemon and its plugins to exit and
// returns the group's peaks. It may be called again.
func (d *daemon) stop() (peaks, error) {
	if d.stopRSS == nil {
		return peaks{}, errors.New("daemon already stopped")
	}
	defer d.notify.Close()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-d.done:
		if !d.cmd.ProcessState.Success() {
			err = fmt.Errorf("daemon exited with %v after SIGTERM: %s", d.cmd.ProcessState, head(d.stderr.String()))
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		err = errors.New("daemon did not stop within 30 s of SIGTERM")
	}
	close(d.stopRSS)
	d.stopRSS = nil
	sampled := <-d.rss
	p, perr := d.g.kernelPeaks()
	p.RSS, p.Anon = sampled.RSS, sampled.Anon
	return p, errors.Join(err, perr)
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// head is the start of s: a Go crash names its cause first.
func head(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}
