// Package rig lays out a runtime-attestor installation for the benchmark —
// plugin directory, HMAC key, API token and the development policy
// rendered for it — and runs the real daemon there: start, first verdict,
// refresh over the API, attest --once, stop. It is daemontest without
// testing.TB, so that the benchmark executable can use it.
package rig

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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/policy"
)

// Bins are the executables a layout uses.
type Bins struct {
	Daemon    string // runtime-attestor
	Attestctl string // attestctl (a service binary of the development policy)
	Plugins   string // folder holding attestor-check-<name> of the six built-ins
	Light     string // testplugins/light, copied once per light plugin
	Bench     string // attestor-bench, run with -serve-fixed as the bare HTTP baseline
}

// Spec shapes a layout. The zero Spec is the development policy with the
// six built-in plugins.
type Spec struct {
	// Builtins lists the built-in plugins to install; nil means all six.
	// The others are disabled in the policy.
	Builtins []string
	// Lights is how many copies of the light plugin to install, as
	// attestor-check-light01, light02, ... (run as unlisted plugins).
	Lights int
	// ServiceBinaries, when not nil, replaces the policy's
	// service_binaries (service name → path).
	ServiceBinaries map[string]string
	// Resident, when not nil, sets resident_plugins: true keeps every
	// plugin process running between attestations; false (the policy's
	// default) starts each plugin for its turn and stops it afterwards.
	Resident *bool
}

// Layout is an installation in a folder of its own.
type Layout struct {
	Root       string // repository root (policy templates, policy files)
	Dir        string
	PluginDir  string
	RunDir     string
	PolicyPath string
	KeyPath    string
	TokenPath  string
	AuditPath  string
	Addr       string // host:port the daemon listens on
	Token      string
	bins       Bins
	client     *http.Client
}

// Changes the benchmark makes to the development policy, besides paths and
// the port: no periodic attestation while measuring, and info logging
// (debug logs every HTTP request, which a load test would measure instead of
// the API).
const (
	RefreshInterval = "1h"
	LogLevel        = "info"
)

// New lays out an installation in dir (created if needed).
func New(root, dir string, bins Bins, spec Spec) (*Layout, error) {
	l := &Layout{
		Root:      root,
		Dir:       dir,
		PluginDir: filepath.Join(dir, "plugins"),
		RunDir:    filepath.Join(dir, "run"),
		bins:      bins,
		client: &http.Client{
			Timeout:   2 * time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true},
		},
	}
	for _, d := range []string{l.PluginDir, l.RunDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("layout: %w", err)
		}
	}
	if err := os.Chmod(l.PluginDir, 0o755); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	builtins := spec.Builtins
	if builtins == nil {
		builtins = builtin.Names()
	}
	for _, name := range builtins {
		exe := "attestor-check-" + name
		if err := install(filepath.Join(bins.Plugins, exe), filepath.Join(l.PluginDir, exe)); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= spec.Lights; i++ {
		if err := install(bins.Light, filepath.Join(l.PluginDir, fmt.Sprintf("attestor-check-light%02d", i))); err != nil {
			return nil, err
		}
	}
	l.KeyPath = filepath.Join(l.RunDir, "hmac.key")
	l.TokenPath = filepath.Join(l.RunDir, "api-token")
	l.AuditPath = filepath.Join(l.RunDir, "audit.jsonl")
	key := make([]byte, 32)
	tok := make([]byte, 24)
	_, _ = rand.Read(key)
	_, _ = rand.Read(tok)
	l.Token = hex.EncodeToString(tok)
	if err := os.WriteFile(l.KeyPath, key, 0o600); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	if err := os.WriteFile(l.TokenPath, []byte(l.Token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	// The development policy's signing_key_path, made as `make run` does:
	// the daemon does not start without it.
	signing := filepath.Join(l.RunDir, "signing.key")
	if _, err := identity.WriteNew(identity.KeyEd25519, signing, signing+".pub"); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	l.Addr = addr
	pol, err := l.render(builtins, spec)
	if err != nil {
		return nil, err
	}
	l.PolicyPath = filepath.Join(dir, "attestation.yaml")
	if err := os.WriteFile(l.PolicyPath, pol, 0o600); err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	if _, err := l.LoadPolicy(); err != nil {
		return nil, err
	}
	return l, nil
}

func install(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install plugin: %w", err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		return fmt.Errorf("install plugin: %w", err)
	}
	return os.Chmod(dst, 0o755)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// render produces the policy: the development template with this layout's
// paths and port, then the Spec's changes.
func (l *Layout) render(builtins []string, spec Spec) ([]byte, error) {
	tmpl := filepath.Join(l.Root, "policy/examples/development.yaml.in")
	raw, err := os.ReadFile(tmpl)
	if err != nil {
		return nil, fmt.Errorf("read policy template: %w", err)
	}
	s := strings.NewReplacer(
		"@ROOT@/bin/plugins", l.PluginDir,
		"@ROOT@/bin/runtime-attestor", l.bins.Daemon,
		"@ROOT@/bin/attestctl", l.bins.Attestctl,
		"@ROOT@", l.Root,
		"@RUN@", l.RunDir,
	).Replace(string(raw))
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", tmpl, err)
	}
	doc["listen"] = l.Addr
	doc["refresh_interval"] = RefreshInterval
	doc["log_level"] = LogLevel
	if spec.ServiceBinaries != nil {
		doc["service_binaries"] = spec.ServiceBinaries
	}
	if spec.Resident != nil {
		doc["resident_plugins"] = *spec.Resident
	}
	if spec.Lights > 0 {
		// The light plugins are not listed: they run as unlisted plugins.
		doc["run_unlisted_plugins"] = true
	}
	plugins, _ := doc["plugins"].(map[string]any)
	if plugins == nil {
		plugins = map[string]any{}
	}
	for _, name := range builtin.Names() {
		wanted := false
		for _, b := range builtins {
			wanted = wanted || b == name
		}
		if !wanted {
			plugins[name] = map[string]any{"enabled": false}
		}
	}
	doc["plugins"] = plugins
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render policy: %w", err)
	}
	return append([]byte("# Rendered by the benchmark from policy/examples/development.yaml.in.\n"), out...), nil
}

// LoadPolicy loads and checks the layout's policy as the daemon does.
func (l *Layout) LoadPolicy() (*policy.Policy, error) {
	p, err := policy.Load(l.PolicyPath)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", l.PolicyPath, err)
	}
	if err := p.CheckFiles(); err != nil {
		return nil, fmt.Errorf("policy %s: %w", l.PolicyPath, err)
	}
	return p, nil
}

// URL is the daemon's URL for path.
func (l *Layout) URL(path string) string { return "http://" + l.Addr + path }

// Daemon is a running runtime-attestor.
type Daemon struct {
	l       *Layout
	cmd     *exec.Cmd
	Started time.Time // just before exec
	log     *tail
	done    chan struct{}
	err     error
}

// Start starts the daemon and returns at once.
func (l *Layout) Start() (*Daemon, error) {
	cmd := exec.Command(l.bins.Daemon, "--config", l.PolicyPath)
	d := &Daemon{l: l, cmd: cmd, log: &tail{max: 64 << 10}, done: make(chan struct{})}
	cmd.Stdout = io.Discard
	cmd.Stderr = d.log
	d.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Log returns the end of what the daemon logged.
func (d *Daemon) Log() string { return d.log.String() }

// WaitVerdict polls /health every poll until the state is no longer
// pending and returns the time from Start to that answer, and the state.
func (d *Daemon) WaitVerdict(ctx context.Context, poll time.Duration) (time.Duration, string, error) {
	for {
		select {
		case <-d.done:
			return 0, "", fmt.Errorf("daemon exited before its first verdict (%w); log:\n%s", d.err, d.Log())
		case <-ctx.Done():
			return 0, "", fmt.Errorf("no verdict: %w; log:\n%s", ctx.Err(), d.Log())
		default:
		}
		_, _, body, err := d.l.Get(ctx, "/health")
		if err == nil {
			var h struct{ State string }
			if json.Unmarshal(body, &h) == nil && h.State != "" && h.State != "pending" {
				return time.Since(d.Started), h.State, nil
			}
		}
		time.Sleep(poll)
	}
}

// Stop sends SIGTERM and waits for the daemon to exit (SIGKILL after 30 s).
func (d *Daemon) Stop() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("daemon did not stop within 30 s of SIGTERM; killed")
	}
	var ee *exec.ExitError
	if d.err != nil && !errors.As(d.err, &ee) {
		return fmt.Errorf("wait daemon: %w", d.err)
	}
	if d.err != nil {
		return fmt.Errorf("daemon exited with %w after SIGTERM; log:\n%s", d.err, d.Log())
	}
	return nil
}

// Get fetches path from the daemon.
func (l *Layout) Get(ctx context.Context, path string) (int, http.Header, []byte, error) {
	return l.do(ctx, http.MethodGet, path, "")
}

func (l *Layout) do(ctx context.Context, method, path, token string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, l.URL(path), nil)
	if err != nil {
		return 0, nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// Attestation is one attestation as a client saw it.
type Attestation struct {
	// Wall is the client's time for the whole request (HTTP included) or,
	// for Once, for the whole process.
	Wall  time.Duration
	State string
	// CheckMS is each plugin's checks.<name>.duration_ms in the bundle.
	CheckMS map[string]int64
}

// Refresh asks the daemon for a fresh attestation (POST /api/v1/refresh).
func (l *Layout) Refresh(ctx context.Context) (Attestation, error) {
	t0 := time.Now()
	code, _, body, err := l.do(ctx, http.MethodPost, "/api/v1/refresh", l.Token)
	wall := time.Since(t0)
	if err != nil {
		return Attestation{}, fmt.Errorf("refresh: %w", err)
	}
	if code != http.StatusOK {
		return Attestation{}, fmt.Errorf("refresh: status %d: %s", code, clip(body))
	}
	a, err := ParseAttest(body)
	if err != nil {
		return Attestation{}, fmt.Errorf("refresh answer: %w", err)
	}
	a.Wall = wall
	return a, nil
}

// ParseAttest reads an answer of GET /api/v1/attest or POST
// /api/v1/refresh: {"state": ..., "bundle": {...}}.
func ParseAttest(body []byte) (Attestation, error) {
	var r struct {
		State  string          `json:"state"`
		Bundle json.RawMessage `json:"bundle"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Attestation{}, fmt.Errorf("attest answer: %w", err)
	}
	return ParseBundle(r.Bundle)
}

// Once runs `runtime-attestor --once` (start the plugins, attest once,
// print the bundle, stop) and times the whole process.
func (l *Layout) Once(ctx context.Context) (Attestation, error) {
	cmd := exec.CommandContext(ctx, l.bins.Daemon, "--once", "--config", l.PolicyPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() >= 0 && ee.ExitCode() <= 2) {
		return Attestation{}, fmt.Errorf("runtime-attestor --once: %w: %s", err, clip(stderr.Bytes()))
	}
	a, err := ParseBundle(bytes.TrimSpace(stdout.Bytes()))
	if err != nil {
		return Attestation{}, fmt.Errorf("runtime-attestor --once: %w", err)
	}
	a.Wall = wall
	return a, nil
}

// ParseBundle reads a bundle's state and checks.*.duration_ms.
func ParseBundle(raw []byte) (Attestation, error) {
	var b struct {
		State  string `json:"state"`
		Checks map[string]struct {
			DurationMS *int64 `json:"duration_ms"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return Attestation{}, fmt.Errorf("bundle: %w", err)
	}
	if b.State == "" {
		return Attestation{}, errors.New("bundle: no state")
	}
	a := Attestation{State: b.State, CheckMS: make(map[string]int64, len(b.Checks))}
	for name, c := range b.Checks {
		if c.DurationMS == nil {
			return Attestation{}, fmt.Errorf("bundle: checks.%s has no duration_ms", name)
		}
		a.CheckMS[name] = *c.DurationMS
	}
	return a, nil
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
