package pluginhost

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/wire"
)

// defaultPath is the plugins' PATH when the daemon has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxSocketPath is the size of sun_path, with its terminating NUL.
const maxSocketPath = 108

// instance is one running plugin process.
type instance struct {
	client *goplugin.Client
	cmd    *exec.Cmd
	check  *wire.Client
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
	if err != nil {
		var se *startError
		if !errors.As(err, &se) {
			se = &startError{err: err}
		}
		return nil, h.classifyStart(se, p.spec.SHA256 != "")
	}
	return in, nil
}

// startProcess starts the plugin through go-plugin and dispenses its
// client. On error everything it started is stopped again.
func (h *Host) startProcess(p *plugin, bf *binFile, useNS bool) (*instance, error) {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if useNS {
		attr.Cloneflags = syscall.CLONE_NEWPID
	}
	env := []string{"PATH=" + envPath(), sdk.LogLevelEnv + "=" + h.opts.LogLevel, "GOMAXPROCS=" + strconv.Itoa(h.opts.GOMAXPROCS)}
	sock := ""
	if h.runDir != "" {
		// go-plugin sets this only for a RunnerFunc; with our own Cmd we do.
		d, err := os.MkdirTemp(h.runDir, "")
		switch {
		case err != nil:
			h.log.Warn("cannot make the plugin's socket folder", "plugin", p.name, "error", err)
		case len(d)+len("/plugin4294967295") >= maxSocketPath:
			_ = os.Remove(d)
			h.warnSocketPath.Do(func() {
				h.log.Warn("the socket folder's path is too long for a Unix socket; plugins make their sockets in their temporary folder", "folder", d)
			})
		default:
			sock = d
			env = append(env, goplugin.EnvUnixSocketDir+"="+d)
		}
	}
	cmd := &exec.Cmd{
		Path: h.execPath(p, bf),
		// argv[0] is the plugin's path in the plugin directory, whatever
		// path the kernel executes.
		Args: []string{p.path},
		Env:  env,
		Dir:  "/",
		// The verified descriptor goes to the child too, so that its number
		// is still open there when the kernel resolves /proc/self/fd/N. It
		// stays open in the plugin as fd 3, read-only.
		ExtraFiles:  []*os.File{bf.f},
		SysProcAttr: attr,
	}
	rl := newRelay(h.log.Named(p.name))
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: wire.ClientPluginSets(),
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: bf.sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     h.opts.StartTimeout,
		AutoMTLS:         true,
		SkipHostEnv:      true,
		GRPCDialOptions:  []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(h.opts.MaxAnswerBytes))},
		// go-plugin's own stderr parser panics on hclog-looking JSON whose
		// "@message" is not a string, which would let a plugin kill the
		// daemon; its logger is off and the relay re-logs stderr under the
		// plugin's name instead.
		Logger: hclog.New(&hclog.LoggerOptions{Name: p.name, Level: hclog.Off, Output: io.Discard}),
		Stderr: rl,
	})
	in := &instance{client: client, cmd: cmd, relay: rl, pidNS: useNS, sock: sock, bin: *bf}
	in.bin.f = nil // the caller owns and closes the descriptor
	fail := func(err error) (*instance, error) {
		status := h.shutdown(p.name, in, false)
		return nil, &startError{err: err, status: status, tail: rl.tail()}
	}
	rpc, err := client.Client()
	if cmd.Process != nil {
		in.pid = cmd.Process.Pid
	}
	if err != nil {
		return fail(err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return fail(err)
	}
	wc, ok := raw.(*wire.Client)
	if !ok {
		return fail(fmt.Errorf("dispensed %T, not a check client", raw))
	}
	in.check = wc
	return in, nil
}

// execPath is the path the kernel executes: a private symlink named after
// the plugin that points at /proc/self/fd/N, N being the verified
// descriptor. The name keeps ps and the plugin's comm readable.
func (h *Host) execPath(p *plugin, bf *binFile) string {
	if !h.procFD {
		return bf.id.real
	}
	target := fmt.Sprintf("/proc/self/fd/%d", bf.f.Fd())
	if h.linkDir == "" {
		return target
	}
	link := filepath.Join(h.linkDir, FilePrefix+p.name)
	_ = os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		h.log.Warn("cannot make the exec link", "plugin", p.name, "error", err)
		return target
	}
	return link
}

func envPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return defaultPath
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
