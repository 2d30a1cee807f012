package pluginhost

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// maxSocketPath is the size of sun_path, with its terminating NUL.
const maxSocketPath = 108

// instance is one running plugin process.
type instance struct {
	client *goplugin.Client
	cmd    *exec.Cmd
	check  *checkrpc.Client
	relay  *relay
	pid    int
	pidNS  bool   // PID 1 of its own PID namespace
	sock   string // its socket folder, "" if none
	bin    binFile
	desc   sdk.Description
}

// waitExit waits up to d for the process to exit by itself.
func (in *instance) waitExit(d time.Duration) {
	deadline := time.Now().Add(d)
	for !in.client.Exited() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// killGroup sends SIGKILL to the plugin's process group and to the plugin
// itself. When the plugin is PID 1 of its own namespace its death kills
// every other process in the namespace.
func (in *instance) killGroup() {
	if in.pid <= 0 {
		return
	}
	_ = syscall.Kill(-in.pid, syscall.SIGKILL)
	_ = in.cmd.Process.Kill() // through its pidfd: never another process
}

// spawn starts bf as p's plugin in a new PID namespace when permitted, else
// in its own process group only.
func (h *Host) spawn(p *plugin, bf *binFile) (*instance, *fault) {
	useNS := h.usePIDNS && !h.nsDisabled.Load()
	in, err := h.startProcess(p, bf, useNS)
	if err != nil && useNS && errors.Is(err, syscall.EPERM) {
		in, err = h.startProcess(p, bf, false)
		if err == nil && h.nsDisabled.CompareAndSwap(false, true) {
			h.log.Warn("cannot start plugins in their own PID namespace (EPERM); falling back to a process group with Pdeathsig: a plugin descendant that calls setsid can outlive its plugin, only the service cgroup catches it")
		}
	}
	var refused *grantRefused
	if errors.As(err, &refused) {
		return nil, &fault{kind: FaultUntrusted, msg: "not started: " + clip(refused.err.Error())}
	}
	if err != nil {
		var se *startError
		if !errors.As(err, &se) {
			se = &startError{err: err}
		}
		return nil, h.classifyStart(se)
	}
	return in, nil
}

// grantRefused is Options.CheckGrant's refusal of a start.
type grantRefused struct{ err error }

func (g *grantRefused) Error() string { return g.err.Error() }

// guard is the launch's Guard for p: Options.CheckGrant on the real paths
// of what p's rules reach. Its refusal comes back from the start wrapped
// (launch and sandbox wrap with %w), and spawn finds it there.
func (h *Host) guard(p *plugin) func(sandbox.Rules) error {
	if h.opts.CheckGrant == nil {
		return nil
	}
	return func(real sandbox.Rules) error {
		if err := h.opts.CheckGrant(p.name, real); err != nil {
			return &grantRefused{err: err}
		}
		return nil
	}
}

// startProcess starts the plugin through the launcher and dispenses its
// client (launch.Plugin, the one description of a plugin's start). The
// process go-plugin forks is the host's own executable in launcher mode
// (package launch): it confines itself with the plugin's rules and then
// executes the verified descriptor, so the plugin's first instruction
// already runs confined and the bytes that run are the bytes verify
// hashed. On error everything it started is stopped again.
func (h *Host) startProcess(p *plugin, bf *binFile, useNS bool) (*instance, error) {
	sock, err := h.socketFolder(p)
	if err != nil {
		return nil, &startError{err: err}
	}
	rl := newRelay(h.log.Named(p.name))
	lp := launch.Plugin{
		Launcher: h.launcher, Binary: bf.f, Argv0: p.path,
		// p.spec.Sandbox is decided by the daemon (from the policy and,
		// for a built-in, its declaration); the launcher adds only the
		// socket folder.
		Rules: p.spec.Sandbox, SocketDir: sock,
		LogLevel: h.opts.LogLevel, GOMAXPROCS: h.opts.GOMAXPROCS, PIDNamespace: useNS,
		StartTimeout: h.opts.StartTimeout, MaxAnswerBytes: h.opts.MaxAnswerBytes,
		Programs: &h.programs,
		// The relay re-logs stderr under the plugin's name.
		Stderr: rl,
	}
	lp.Guard = h.guard(p)
	client, cmd, rules, err := lp.Client()
	if err != nil {
		_ = os.RemoveAll(sock)
		return nil, &startError{err: err}
	}
	defer rules.Close()
	in := &instance{client: client, cmd: cmd, relay: rl, pidNS: useNS, sock: sock, bin: *bf}
	in.bin.f = nil // the caller owns and closes the descriptor
	// The fork (and the handshake that follows it) on a forker thread;
	// the rest on this goroutine.
	err = h.onForker(func() error {
		_, err := client.Start()
		return err
	})
	var wc *checkrpc.Client
	if err == nil {
		wc, err = launch.Dispense(client)
	}
	if cmd.Process != nil {
		in.pid = cmd.Process.Pid
	}
	if err != nil {
		status := h.shutdown(p.name, in, false)
		return nil, &startError{err: err, status: status, tail: rl.tail()}
	}
	in.check = wc
	return in, nil
}

// socketFolder makes the folder (0700) in which this plugin process makes
// its go-plugin socket: in the host's private folder, or, when that path
// is too long for a Unix socket, in a private folder of its own under the
// temporary folder. It is the only place the plugin may write to unless
// its rules say otherwise.
func (h *Host) socketFolder(p *plugin) (string, error) {
	if h.runDir != "" {
		d, err := os.MkdirTemp(h.runDir, "")
		if err != nil {
			return "", fmt.Errorf("make the plugin's socket folder: %w", err)
		}
		if len(d)+len("/plugin4294967295") < maxSocketPath {
			return d, nil
		}
		_ = os.Remove(d)
		h.warnSocketPath.Do(func() {
			h.log.Warn("the private folder's path is too long for a Unix socket; plugins get socket folders in the temporary folder", "folder", h.runDir)
		})
	}
	d, err := os.MkdirTemp("", "attestor-plugin-")
	if err != nil {
		return "", fmt.Errorf("make the plugin's socket folder: %w", err)
	}
	return d, nil
}

// shutdown stops a plugin process and its group or namespace and releases
// go-plugin's resources; it returns how the process ended, "" if it never
// started. graceful lets the plugin exit on go-plugin's request first.
func (h *Host) shutdown(name string, in *instance, graceful bool) string {
	if !graceful {
		in.killGroup()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.client.Kill()
	}()
	select {
	case <-done:
	case <-time.After(stopGrace):
		in.killGroup()
		select {
		case <-done:
		case <-time.After(reapWait):
			h.log.Error("plugin killed but not reaped: a descendant outside its PID namespace holds its output pipes; leaving it to the service cgroup", "plugin", name, "pid", in.pid)
			return "killed, not reaped"
		}
	}
	// After a graceful exit, what is left of its process group (no PID
	// namespace) goes too.
	in.killGroup()
	if in.sock != "" {
		if err := os.RemoveAll(in.sock); err != nil {
			h.log.Warn("cannot remove the plugin's socket folder", "plugin", name, "error", err)
		}
	}
	if st := in.cmd.ProcessState; st != nil {
		return st.String()
	}
	return ""
}
