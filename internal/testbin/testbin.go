// Package testbin builds the project's executables for tests that run them
// as real subprocesses (the daemon, attestctl, check plugins, misbehaving
// test plugins). Each package is built once per test process into a shared
// temporary folder, unless `make test` has built it already for the whole
// run (Prebuild, bin/test): then the test process takes that executable.
package testbin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

var (
	mu     sync.Mutex
	dir    string
	builds = map[string]*build{}
)

type build struct {
	once sync.Once
	path string
	err  error
}

// Root returns the module's root folder.
func Root(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("testbin: go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("testbin: not inside the module")
	}
	return filepath.Dir(mod)
}

// Build builds the main package pkg (relative to the module root, e.g.
// "./cmd/attestor-check-kernel") into an executable named name and returns
// its path. The executable lives in a folder shared by the whole test
// process; copy it before changing its mode or contents.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	return buildWith(t, pkg, name, "0")
}

// BuildCgo is Build with cgo enabled, for tests about how a cgo-built
// plugin behaves; everything the project ships is built without cgo.
func BuildCgo(t testing.TB, pkg, name string) string {
	t.Helper()
	return buildWith(t, pkg, name, "1")
}

func buildWith(t testing.TB, pkg, name, cgo string) string {
	t.Helper()
	root := Root(t)
	return once(t, pkg+"\x00"+name+"\x00"+cgo, name, func(out string) error {
		if src := prebuilt(root, pkg, cgo); src != "" {
			return linkOrCopy(src, out)
		}
		cmd := buildCmd(root, cgo, out, pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.String())
		}
		return nil
	})
}

// once makes the executable named name under key once per test process,
// with mk writing it to the path it is given, and returns its path.
func once(t testing.TB, key, name string, mk func(out string) error) string {
	t.Helper()
	d := sharedDir(t)
	mu.Lock()
	b := builds[key]
	if b == nil {
		b = &build{}
		builds[key] = b
	}
	mu.Unlock()
	b.once.Do(func() {
		sub, err := os.MkdirTemp(d, "b-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(sub, name)
		b.err = mk(b.path)
	})
	if b.err != nil {
		t.Fatalf("testbin: %v", b.err)
	}
	return b.path
}

// sharedDir is the folder the test process builds into, made at the first
// call.
func sharedDir(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if dir == "" {
		d, err := os.MkdirTemp("", "attestor-testbin-")
		if err != nil {
			t.Fatalf("testbin: %v", err)
		}
		dir = d
	}
	return dir
}

// LauncherSource is the shipped launcher's source, relative to the module
// root; LauncherCC and LauncherCFLAGS are the C compiler and flags `make
// build` builds it with (the Makefile's LAUNCHER_CC and LAUNCHER_CFLAGS,
// which a test holds to these).
const (
	LauncherSource = "cmd/attestor-launcher/attestor-launcher.c"
	LauncherCC     = "musl-gcc"
	LauncherCFLAGS = "-O2 -static -std=c11 -Wall -Wextra -Werror"
)

// Launcher builds the shipped launcher (cmd/attestor-launcher, in C) as
// `make build` does, once per test process, and returns its path. It uses
// $LAUNCHER_CC, else LauncherCC. The test process itself reads the source
// and hands it to the compiler on stdin, so that go test's result cache
// knows the file: an edited launcher runs the tests again.
func Launcher(t testing.TB) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(Root(t), LauncherSource))
	if err != nil {
		t.Fatalf("testbin: the launcher's source: %v", err)
	}
	return once(t, "\x00launcher", "attestor-launcher", func(out string) error {
		cc := os.Getenv("LAUNCHER_CC")
		if cc == "" {
			cc = LauncherCC
		}
		args := append(strings.Fields(LauncherCFLAGS), "-o", out, "-x", "c", "-")
		cmd := exec.Command(cc, args...)
		cmd.Stdin = bytes.NewReader(src)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s < %s: %w\n%s(make deps installs musl-gcc, from Debian's musl-tools; LAUNCHER_CC names another compiler)", cc, strings.Join(args, " "), LauncherSource, err, msg)
		}
		return nil
	})
}

// Plugin builds ./cmd/attestor-check-<name> and copies it into dir as
// attestor-check-<name> with mode 0755, returning the copy's path.
func Plugin(t testing.TB, dir, name string) string {
	t.Helper()
	return Install(t, Build(t, "./cmd/attestor-check-"+name, "attestor-check-"+name), dir, "attestor-check-"+name)
}

// Install copies the executable src into dir as name, mode 0755.
func Install(t testing.TB, src, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatalf("testbin: %v", err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatalf("testbin: %v", err)
	}
	return dst
}

// Main runs the tests and removes what Build built. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }
//
// A test binary that runs a plugin host in-process is also the host's
// launcher (/proc/self/exe): Main first lets launch.Main take over when the
// binary was started in launcher mode.
func Main(m *testing.M) int {
	launch.Main()
	code := m.Run()
	mu.Lock()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	mu.Unlock()
	return code
}

// Daemon builds the daemon (./cmd/runtime-attestor) with the shipped
// launcher installed beside it, as `make build` lays out bin/, and returns
// the daemon's path: a daemon started from there starts its plugins
// through the C launcher, as installed, not through its own executable.
func Daemon(t testing.TB) string {
	t.Helper()
	launcher := Launcher(t)
	daemon := Build(t, "./cmd/runtime-attestor", "runtime-attestor")
	return once(t, "\x00daemon+launcher", "runtime-attestor", func(out string) error {
		if err := linkOrCopy(daemon, out); err != nil {
			return err
		}
		return linkOrCopy(launcher, filepath.Join(filepath.Dir(out), sandbox.LauncherName))
	})
}
