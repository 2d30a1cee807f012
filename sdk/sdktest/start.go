package sdktest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// init makes every test binary that imports sdktest the host's launcher
// for the plugins Start runs (as the daemon's own executable is for the
// daemon's plugins): started in launcher mode, it confines itself and
// executes the plugin before any test code runs. Otherwise it returns at
// once.
func init() { launch.Main() }

// Options say which plugin Start builds and what the policy grants it.
type Options struct {
	// Package is the plugin's main package, as go build names it: "" or
	// "." is the package under test (a plugin's tests live beside its
	// main), "./cmd/attestor-check-acme" another one.
	Package string
	// Grant is what the policy grants the plugin, plugins.<name>.sandbox:
	// read_only is ReadOnly, read_write ReadWrite, and so on. It is all a
	// third-party plugin gets from the daemon (the zero value: nothing but
	// its socket folder), so give exactly the lines the plugin's README
	// tells operators to write.
	Grant sdk.Sandbox
}

// Start builds the plugin's main package (without cgo, as it ships) and
// starts it as the daemon starts a third-party plugin: a real process,
// started through the daemon's own launcher code, confined to
// Options.Grant (plus its socket folder) before its first instruction,
// then, after the first successful Configure, to the Sandbox() it
// declares. So a file the check reads that the grant or its declaration
// does not cover is denied in go test as it is under the daemon, and the
// finding names the path and the policy line that would grant it:
//
//	open /etc/os-release: permission denied — the plugin's sandbox does
//	not allow it; declare it in Sandbox() and grant it in the policy:
//	plugins.template.sandbox.read_only: ["/etc/os-release"]
//
// The plugin is described (and its description checked) before Start
// returns, and killed when the test ends. The go command must be on PATH
// (go test puts it there). Tests running at the same time share one build
// of a package.
func Start(t testing.TB, opts Options) *Harness {
	t.Helper()
	bin := buildPlugin(t, opts.Package)
	logs := &logBuffer{}
	client, err := startPlugin(t, bin, opts.Grant, logs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sdktest: the plugin's log:\n%s", logs)
		}
	})
	if err != nil {
		t.Fatalf("sdktest: start %s: %v\n%s", opts.Package, err, logs)
	}
	return describe(t, client)
}

// startPlugin starts bin through the launcher (this test binary, see init)
// in a PID namespace of its own when permitted, as the daemon does.
func startPlugin(t testing.TB, bin string, grant sdk.Sandbox, logs *logBuffer) (*checkrpc.Client, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sock, err := os.MkdirTemp("", "sdktest-") // short: a socket path has 108 bytes
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = os.RemoveAll(sock) })
	lp := launch.Plugin{
		Launcher: self, Binary: f, Argv0: bin, Rules: wire.Rules(grant), SocketDir: sock,
		LogLevel: "info", GOMAXPROCS: 2, PIDNamespace: os.Geteuid() == 0,
		StartTimeout: 30 * time.Second, Stderr: logs,
	}
	for {
		client, _, rules, err := lp.Client()
		if err != nil {
			return nil, err
		}
		// Forked from a thread that lives as long as the plugin, as the
		// daemon forks it: it dies with that thread (Pdeathsig).
		release, err := launch.StartLocked(client)
		var wc *checkrpc.Client
		if err == nil {
			wc, err = launch.Dispense(client)
		}
		rules.Close()
		if err == nil {
			t.Cleanup(func() { client.Kill(); release() })
			return wc, nil
		}
		client.Kill()
		release()
		if !lp.PIDNamespace || !errors.Is(err, syscall.EPERM) {
			return nil, err
		}
		lp.PIDNamespace = false // no CAP_SYS_ADMIN: a process group only
	}
}

// builds are the plugins built by this test binary, by package path,
// shared by the harnesses that use them at the same time: the tests of a
// table link the plugin once, and the executable goes with the last of
// them.
var builds = struct {
	sync.Mutex
	m map[string]*build
}{m: map[string]*build{}}

type build struct {
	once sync.Once
	refs int
	dir  string
	path string
	err  error
}

// buildPlugin builds pkg, or takes the build another running test made,
// and returns the executable's path; the test's cleanup lets it go.
func buildPlugin(t testing.TB, pkg string) string {
	t.Helper()
	if pkg == "" {
		pkg = "."
	}
	key, err := filepath.Abs(pkg)
	if err != nil || !strings.HasPrefix(pkg, ".") {
		key = pkg // an import path
	}
	builds.Lock()
	b := builds.m[key]
	if b == nil {
		b = &build{}
		builds.m[key] = b
	}
	b.refs++
	builds.Unlock()
	t.Cleanup(func() {
		builds.Lock()
		defer builds.Unlock()
		if b.refs--; b.refs == 0 {
			delete(builds.m, key)
			if b.dir != "" {
				_ = os.RemoveAll(b.dir)
			}
		}
	})
	b.once.Do(func() { b.dir, b.path, b.err = goBuild(pkg) })
	if b.err != nil {
		t.Fatalf("sdktest: %v", b.err)
	}
	return b.path
}

// goBuild builds pkg without cgo, as plugins ship, into a new folder.
func goBuild(pkg string) (dir, path string, err error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir, err = os.MkdirTemp("", "sdktest-build-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "attestor-check-plugin")
	cmd := exec.Command(goCmd, "build", "-trimpath", "-o", path, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return dir, "", fmt.Errorf("go build %s: %v\n%s", pkg, err, stderr.String())
	}
	return dir, path, nil
}

// logBuffer collects the plugin's stderr (hclog JSON lines).
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
