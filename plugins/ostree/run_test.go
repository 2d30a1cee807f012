package ostree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cmd")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitPIDFile waits for a script to write its background child's pid.
func waitPIDFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if s := strings.TrimSpace(string(b)); err == nil && s != "" {
			pid, err := strconv.Atoi(s)
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the script never wrote %s", path)
	return 0
}

// waitGone waits until pid is no longer a running sleep (exited, a zombie
// waiting for init, or its pid reused by something else).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z' || !bytes.HasPrefix(cmdline, []byte("sleep")) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d (the command's child) is still running: the process group was not killed", pid)
}

func TestRunKillsProcessGroupOnCancel(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "pid")
	cmd := script(t, "sleep 300 &\necho $! > '"+pidfile+"'\nwait")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, cmd, nil, 1024)
		done <- err
	}()
	child := waitPIDFile(t, pidfile)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
	waitGone(t, child)
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	cmd := script(t, "echo started >&2\nexec sleep 300")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out, err := run(ctx, cmd, nil, 1024)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	_ = out // stderr may or may not have been written before the kill
}

func TestRunKillsLeftovers(t *testing.T) {
	t.Parallel()
	pidfile := filepath.Join(t.TempDir(), "pid")
	// The background sleep keeps stdout open: without the group kill, Wait
	// would hang until WaitDelay and the sleep would be orphaned.
	cmd := script(t, "sleep 300 &\necho $! > '"+pidfile+"'\necho out")
	out, err := run(context.Background(), cmd, nil, 1024)
	if err != nil || string(out.Stdout) != "out\n" {
		t.Fatalf("run = %q, %v", out.Stdout, err)
	}
	waitGone(t, waitPIDFile(t, pidfile))
}

func TestRunOutput(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		body     string
		max      int64
		stdout   int
		err      error
		exitCode int
		stderr   string
		trunc    bool
	}{
		{body: "printf abc; echo err >&2", max: 1024, stdout: 3, stderr: "err\n"},
		{body: "head -c 4096 /dev/zero", max: 4096, stdout: 4096},
		{body: "head -c 4097 /dev/zero", max: 4096, stdout: 4096, err: errOutputTooLarge},
		{body: "head -c 20971520 /dev/zero", max: 16 << 20, stdout: 16 << 20, err: errOutputTooLarge},
		{body: "exec yes", max: 1 << 20, stdout: 1 << 20, err: errOutputTooLarge}, // endless: killed on overflow
		{body: "echo 'error: boom' >&2; exit 3", max: 1024, exitCode: 3, stderr: "error: boom\n"},
		{body: "head -c 200000 /dev/zero | tr '\\000' e >&2; exit 1", max: 1024, exitCode: 1, stderr: strings.Repeat("e", maxStderrBytes), trunc: true},
	} {
		out, err := run(context.Background(), script(t, tc.body), nil, tc.max)
		switch {
		case tc.err != nil:
			if !errors.Is(err, tc.err) {
				t.Errorf("Test %d: err = %v, want %v", i, err, tc.err)
			}
		case tc.exitCode != 0:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.exitCode {
				t.Errorf("Test %d: err = %v, want exit status %d", i, err, tc.exitCode)
			}
		case err != nil:
			t.Errorf("Test %d: err = %v", i, err)
		}
		if len(out.Stdout) != tc.stdout || string(out.Stderr) != tc.stderr || out.StderrTruncated != tc.trunc {
			t.Errorf("Test %d: stdout %d bytes, stderr %.40q (%d bytes, truncated %v)", i, len(out.Stdout), out.Stderr, len(out.Stderr), out.StderrTruncated)
		}
	}
}

func TestRunStartFailure(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(context.Background(), p, nil, 1024); err == nil || !strings.Contains(err.Error(), "start") {
		t.Fatalf("err = %v, want a start error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := run(ctx, "/bin/true", nil, 1024); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: err = %v", err)
	}
}

func TestResolveInRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("ostree/boot.1.1/os/b")
	mk("ostree/deploy/os/deploy/c.0")
	ln("boot.1.1", "ostree/boot.1")
	ln("../../../deploy/os/deploy/c.0", "ostree/boot.1.1/os/b/0")
	ln("/ostree/deploy/os/deploy/c.0", "ostree/boot.1.1/os/b/abs")
	ln("../../../../../../../../etc", "ostree/boot.1.1/os/b/up")
	ln("loop2", "ostree/loop1")
	ln("loop1", "ostree/loop2")
	for i, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "/ostree/boot.1/os/b/0", want: "ostree/deploy/os/deploy/c.0"},
		{in: "/ostree/boot.1/os/b/abs", want: "ostree/deploy/os/deploy/c.0"}, // absolute targets stay in the root
		{in: "/ostree/boot.1/os/b/up", err: true},                            // "etc" does not exist inside the root
		{in: "/ostree/boot.1/os/b/../../../deploy/./os", want: "ostree/deploy/os"},
		{in: "/ostree/loop1", err: true},
		{in: "/ostree/missing", err: true},
	} {
		got, err := resolveInRoot(root, tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("Test %d: resolveInRoot(%q) = %q, want an error", i, tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Test %d: resolveInRoot(%q) = %q, %v; want %q", i, tc.in, got, err, tc.want)
		}
	}
}

func TestCommandTimeoutEndsBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	if got := commandTimeout(context.Background(), 20*time.Second); got != 20*time.Second {
		t.Fatalf("no deadline: %s, want the configured 20s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := commandTimeout(ctx, 20*time.Second)
	if got > 9*time.Second || got < 8*time.Second {
		t.Fatalf("10s left: %s, want about 9s (a reserve of one second)", got)
	}
	if got := commandTimeout(ctx, 2*time.Second); got != 2*time.Second {
		t.Fatalf("short configured timeout: %s, want 2s", got)
	}
}
