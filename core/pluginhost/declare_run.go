package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/declare"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/wire"
)

// run executes bf for a declare run and returns its stdout. The process is
// confined to nothing (zero sandbox.Rules: no file, no TCP, no execve), in
// its own PID namespace when permitted, its configuration on stdin (a
// sealed memory file); it is killed with everything it started when it
// passes the timeout or writes more than declare.MaxOutput bytes.
func (d *Declarer) run(ctx context.Context, p *plugin, bf *binFile, config []byte) ([]byte, *fault) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	// Pdeathsig watches the forking thread: keep it until the process is
	// reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	stdout := &capped{limit: declare.MaxOutput, over: cancel}
	stderr := &capped{limit: declareStderr}
	d.runs.Add(1)
	cmd, closeFiles, err := d.start(p, bf, config, stdout, stderr)
	if err != nil {
		return nil, &fault{kind: FaultCrashed, msg: "cannot execute the plugin: " + clip(err.Error())}
	}
	defer closeFiles()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		killTree(cmd)
		werr = <-done
	}
	killTree(cmd) // what it left behind, without a PID namespace
	switch {
	case stdout.exceeded():
		return nil, &fault{kind: FaultProtocol, msg: fmt.Sprintf("more than %d bytes on stdout; killed", declare.MaxOutput)}
	case ctx.Err() != nil:
		return nil, &fault{kind: FaultTimeout, msg: fmt.Sprintf("no declaration within %s; killed with its process group", d.opts.Timeout)}
	case launchFailure(stderr.lines()) != "":
		return nil, &fault{kind: FaultCrashed, msg: "the host could not confine and start the plugin: " + clip(launchFailure(stderr.lines()))}
	case werr != nil:
		return nil, &fault{kind: FaultCrashed, msg: fmt.Sprintf("exited before declaring (%v): %s", werr, clip(stderr.tail()))}
	}
	return stdout.bytes(), nil
}

// command is the declare run's command line: the launcher, confined to
// nothing, executing bf. closeFiles closes the memory files it holds.
func (d *Declarer) command(p *plugin, bf *binFile, config []byte, stdout, stderr *capped) (*exec.Cmd, func(), error) {
	in, err := launch.SealedFile("attestor-plugin-config", config)
	if err != nil {
		return nil, nil, err
	}
	env := []string{
		"PATH=" + launch.PATH(), wire.LogLevelEnv + "=" + d.opts.LogLevel, "GOMAXPROCS=1",
		wire.CookieKey + "=" + wire.CookieValue,
		declare.Env + "=" + declare.EnvValue,
	}
	prog, err := d.programs.For(sandbox.Rules{})
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	cmd, rules, err := launch.Command(d.opts.Launcher, bf.f, p.path, env, launch.Spec{Landlock: sandbox.ABI() > 0, Seccomp: prog})
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, stdout, stderr
	// A descendant that keeps stdout open must not hold Wait.
	cmd.WaitDelay = time.Second
	return cmd, func() { in.Close(); rules.Close() }, nil
}

// start starts the declare run in its own process group and, when
// permitted, its own PID namespace (whose end kills everything the plugin
// started). closeFiles closes the memory files the command holds.
func (d *Declarer) start(p *plugin, bf *binFile, config []byte, stdout, stderr *capped) (*exec.Cmd, func(), error) {
	for _, ns := range []bool{!d.noPIDNS.Load(), false} {
		cmd, closeFiles, err := d.command(p, bf, config, stdout, stderr)
		if err != nil {
			return nil, nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if ns {
			cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
		}
		err = cmd.Start()
		if err == nil {
			return cmd, closeFiles, nil
		}
		closeFiles()
		if !ns || !errors.Is(err, syscall.EPERM) {
			return nil, nil, err
		}
		d.noPIDNS.Store(true)
	}
	return nil, nil, errors.New("unreachable")
}

// killTree kills cmd's process group and cmd itself (through its pidfd).
func killTree(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}

// capped keeps the first limit bytes written to it and discards the rest,
// so the writer never blocks; over, when set, is called once at the first
// byte past the limit.
type capped struct {
	limit int
	over  func()

	mu   sync.Mutex
	buf  []byte
	lost bool
}

func (c *capped) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - len(c.buf)
	if len(b) > room {
		c.buf = append(c.buf, b[:max(room, 0)]...)
		if !c.lost && c.over != nil {
			c.over()
		}
		c.lost = true
		return len(b), nil
	}
	c.buf = append(c.buf, b...)
	return len(b), nil
}

func (c *capped) exceeded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

func (c *capped) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf...)
}

func (c *capped) lines() []string { return strings.Split(string(c.bytes()), "\n") }

// tail is the last non-empty lines of what was written, at most 300 bytes.
func (c *capped) tail() string {
	s := strings.TrimSpace(string(c.bytes()))
	if len(s) > 300 {
		s = "…" + s[len(s)-300:]
	}
	if s == "" {
		return "nothing on stderr"
	}
	return strconv.Quote(s)
}
