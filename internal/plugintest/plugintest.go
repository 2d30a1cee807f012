// Package plugintest starts a built-in plugin executable the way the
// daemon's plugin host (core/pluginhost) does, through the host's own launch
// code (launch.Plugin, which the host starts every plugin with, and the
// runtime-attestor executable as the launcher: confined before its first
// instruction, the verified descriptor executed with execveat) — its own
// PID namespace when permitted, its own process group, a minimal
// environment, peer-checked Unix socket, working folder "/" — so that plugin tests see the
// plugin start under the host's confinement and narrow itself to its
// declared sandbox as it does in production.
//
// The host's grant here is wide (the file system read-only and executable,
// the devices, the temporary folder read-write, Unix sockets only, no
// TCP), because a
// test configures the plugin with fixture paths only after it started; the
// plugin's own declaration then narrows it, as in production.
package plugintest

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Plugin is one plugin process, started as the daemon starts it:
// in a PID namespace of its own (when permitted), in its own process group,
// with only PATH, the log level and its go-plugin socket folder in its
// environment, peer-checked Unix socket, working folder "/".
type Plugin struct {
	*checkrpc.Client
	Desc sdk.Description
	PID  int // in the test's PID namespace
	Logs *LogBuffer
	Kill func() // as the daemon stops a plugin
}

// Start builds (without cgo, as deployed) and starts attestor-check-<name> and describes it. The plugin
// is killed when the test ends.
func Start(t *testing.T, name string) *Plugin {
	t.Helper()
	bin := testbin.Build(t, "./cmd/attestor-check-"+name, "attestor-check-"+name)
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("read build info of %s: %v", bin, err)
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" && s.Value != "0" {
			t.Fatalf("%s is built with CGO_ENABLED=%s; plugins ship static", bin, s.Value)
		}
	}
	launcher := testbin.Build(t, "./cmd/runtime-attestor", "runtime-attestor")
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logs := &LogBuffer{}
	// The host's socket folders are 0700, and the transport refuses any
	// other (internal/peercred).
	sock := t.TempDir()
	if err := os.Chmod(sock, 0o700); err != nil {
		t.Fatal(err)
	}
	lp := launch.Plugin{
		Launcher: launcher, Binary: f, Argv0: bin,
		Rules: testGrant(), SocketDir: sock, LogLevel: "debug", // the plugin says how it sandboxed itself at debug
		PIDNamespace: os.Geteuid() == 0, StartTimeout: 30 * time.Second, Stderr: logs,
	}
	client, _, rules, err := lp.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer rules.Close()
	release, err := launch.StartLocked(client) // the thread it dies with lives as long as it
	t.Cleanup(func() {
		client.Kill()
		release()
		if t.Failed() {
			t.Logf("plugin log:\n%s", logs)
		}
	})
	var wc *checkrpc.Client
	if err == nil {
		wc, err = launch.Dispense(client)
	}
	if err != nil {
		t.Fatalf("start %s: %v\n%s", name, err, logs)
	}
	p := &Plugin{Client: wc, PID: client.ReattachConfig().Pid, Logs: logs, Kill: client.Kill}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p.Desc, err = p.Describe(ctx); err != nil || p.Desc.Name != name {
		t.Fatalf("describe = %+v, %v", p.Desc, err)
	}
	return p
}

// testGrant is the host's grant to a plugin under test: see the package
// comment. Every pathname Unix socket too, so that the host's seccomp
// filter leaves connect(2) to a plugin that declares a socket (the tpm
// plugin's swtpm, ostree's system bus): what confines it is its own
// declaration.
func testGrant() sandbox.Rules {
	return sandbox.Rules{ReadOnly: []string{"/"}, Exec: []string{"/"}, Devices: []string{"/dev"}, ReadWrite: []string{"/tmp", os.TempDir()}, UnixSockets: []string{"/"}}
}

// MustConfigure sends cfg (a JSON object) and, on the first call, checks that
// the plugin restricted itself: the seccomp filter is on, and it logged
// that Landlock is enforced (where the kernel has it).
func (p *Plugin) MustConfigure(t *testing.T, cfg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Configure(ctx, cfg); err != nil {
		t.Fatalf("configure %s: %v", cfg, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		t.Fatal(err)
	}
	own, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	seccomp := strings.Contains(string(own), "\nSeccomp:\t")
	if seccomp && (!strings.Contains(string(status), "\nSeccomp:\t2\n") || !strings.Contains(string(status), "\nNoNewPrivs:\t1\n")) {
		t.Fatalf("plugin %d has no seccomp filter after Configure:\n%s", p.PID, status)
	}
	wantLandlock := sandbox.ABI() > 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rec, ok := p.Logs.record("sandboxed"); ok {
			if rec["landlock"] != wantLandlock || rec["seccomp"] != seccomp {
				t.Fatalf("sandbox log %v, want landlock=%t and seccomp=%t", rec, wantLandlock, seccomp)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin never logged that it is sandboxed:\n%s", p.Logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MustMeasure takes a measurement.
func (p *Plugin) MustMeasure(t *testing.T) *wire.Measurement {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := p.Measure(ctx, p.Desc, []byte("nonce-nonce-nonce-nonce-nonce-00"))
	if err != nil {
		t.Fatalf("measure: %v", err)
	}
	return m
}

// NeedLandlock skips the rest of a test that shows what the sandbox
// denies, on a kernel without Landlock.
func NeedLandlock(t *testing.T) {
	t.Helper()
	if sandbox.ABI() == 0 {
		t.Skip("the kernel has no Landlock (ABI 0): the plugin's file access is not narrowed, nothing is denied")
	}
}

// LogBuffer collects the plugin's stderr: hclog JSON, one record a line.
type LogBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// record returns the first of the plugin's hclog JSON log lines whose
// message is msg.
func (b *LogBuffer) record(msg string) (map[string]any, bool) {
	for _, l := range strings.Split(b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) == nil && rec["@message"] == msg {
			return rec, true
		}
	}
	return nil, false
}

// DefaultState is the state the default policy's weights and thresholds
// (core/state) derive from findings: what a plugin's findings alone do to
// the appliance's attestation.
func DefaultState(fs []sdk.Finding) string {
	s, _ := state.Evaluate(fs, state.DefaultWeights(), state.DefaultThresholds())
	return string(s)
}

// RunByHand builds attestor-check-<name>, runs it as a person would (not
// under the daemon) and checks it prints the SDK's one-line explanation on
// stderr, nothing on stdout, and exits 1.
func RunByHand(t *testing.T, name string) {
	t.Helper()
	bin := testbin.Build(t, "./cmd/attestor-check-"+name, "attestor-check-"+name)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("run by hand: %v, want exit status 1", err)
	}
	want := "attestor-check-" + name + ": this is a runtime-attestor check plugin; the runtime-attestor daemon starts it, it is not run by hand\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Fatalf("stdout %q stderr %q, want only stderr %q", stdout.String(), stderr.String(), want)
	}
}
