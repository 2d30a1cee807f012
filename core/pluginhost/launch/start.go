package launch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/secure-ai/runtime-attestor/internal/peercred"
	"github.com/secure-ai/runtime-attestor/internal/peercred/grpccreds"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/filter"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/binding"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
)

// defaultPath is the plugins' PATH when the host has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Plugin is how a host starts one plugin process: the one description of
// a plugin's start that the daemon's plugin host, internal/plugintest and
// sdk/sdktest share, so that a plugin under test starts exactly as it
// starts under the daemon.
type Plugin struct {
	// Launcher is a program that calls Main first thing (the daemon's own
	// executable, or a test binary that does).
	Launcher string
	// Binary is the plugin file, open and verified by the caller; the
	// launcher executes this descriptor. The caller closes it.
	Binary *os.File
	// Argv0 is the plugin's argv[0] (its path in the plugin folder, for ps).
	Argv0 string
	// Rules is what the host grants the plugin. Client adds SocketDir.
	Rules sandbox.Rules
	// SocketDir is the plugin's own folder (0700) for its go-plugin Unix
	// socket, passed as PLUGIN_UNIX_SOCKET_DIR and granted read-write.
	SocketDir string
	// LogLevel is passed in wire.LogLevelEnv; GOMAXPROCS, when above 0, in
	// GOMAXPROCS. PATH is the host's, or a default.
	LogLevel   string
	GOMAXPROCS int
	// PIDNamespace starts the plugin as PID 1 of a PID namespace of its
	// own (needs CAP_SYS_ADMIN). The plugin always gets its own process
	// group and SIGKILL when the forking thread exits.
	PIDNamespace bool
	// StartTimeout bounds the go-plugin handshake; MaxAnswerBytes the
	// size of one gRPC answer (0: gRPC's default).
	StartTimeout   time.Duration
	MaxAnswerBytes int
	// Programs assembles the seccomp programs once per distinct filter (a
	// host keeps one for all its starts); nil assembles them at each start.
	Programs *filter.Programs
	// Guard, when not nil, sees the grant as the real paths of what its
	// Landlock rules will reach, each path opened once (links followed)
	// and its rule made from that descriptor (sandbox.PluginRuleset); an
	// error refuses the start.
	Guard func(real sandbox.Rules) error
	// Stderr receives the plugin's stderr (hclog JSON); nil discards it.
	// go-plugin's own stderr parser is never used: it panics on
	// hclog-looking JSON whose "@message" is not a string, which would let
	// a plugin kill its host.
	Stderr io.Writer
}

// Env returns the plugin's whole environment: PATH, the log level,
// GOMAXPROCS and its socket folder. go-plugin adds its handshake
// variables, the launcher removes its own.
func (p Plugin) Env() []string {
	env := []string{"PATH=" + PATH(), wire.LogLevelEnv + "=" + p.LogLevel}
	if p.GOMAXPROCS > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(p.GOMAXPROCS))
	}
	// The daemon's identity, which the plugin's peer check expects.
	if d := peercred.DaemonEnvEntry(); d != "" {
		env = append(env, d)
	}
	// go-plugin sets this only for a RunnerFunc; with our own Cmd we do.
	return append(env, goplugin.EnvUnixSocketDir+"="+p.SocketDir)
}

// PATH is the search path a plugin is given: the daemon's own, or a
// minimal system one when the daemon has none.
func PATH() string {
	if path := os.Getenv("PATH"); path != "" {
		return path
	}
	return defaultPath
}

// Grant is what the launcher imposes: Rules plus the socket folder. Nothing
// else: not the host's private folder, not another plugin's socket.
func (p Plugin) Grant() sandbox.Rules {
	return p.Rules.Merge(sandbox.Rules{ReadWrite: []string{p.SocketDir}})
}

// Client returns the go-plugin client that starts p through the launcher
// (not started yet: its Client method starts it), and the launch files, to
// close once the process started. The process go-plugin forks is the
// launcher, which confines itself with p.Grant() and executes p.Binary.
func (p Plugin) Client() (*goplugin.Client, *exec.Cmd, io.Closer, error) {
	if p.SocketDir == "" {
		return nil, nil, nil, errors.New("launch: the plugin has no socket folder")
	}
	spec, err := p.spec()
	if err != nil {
		return nil, nil, nil, err
	}
	cmd, rules, err := command(p.Launcher, p.Binary, p.Argv0, p.Env(), spec, p.Guard)
	if err != nil {
		return nil, nil, nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if p.PIDNamespace {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	}
	// No TLS: the socket's peer is checked by the kernel on each side
	// (internal/peercred); these credentials replace go-plugin's insecure
	// ones.
	dial := []grpc.DialOption{grpc.WithTransportCredentials(grpccreds.Host(p.SocketDir, cmd))}
	if p.MaxAnswerBytes > 0 {
		dial = append(dial, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(p.MaxAnswerBytes)))
	}
	stderr := p.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  binding.Handshake,
		VersionedPlugins: binding.ClientPluginSets(),
		Cmd:              cmd,
		// No SecureConfig: it would hash a path again, and the launcher
		// executes the descriptor the caller verified.
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     p.StartTimeout,
		SkipHostEnv:      true,
		GRPCDialOptions:  dial,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Off, Output: io.Discard}),
		Stderr:           stderr,
	})
	return client, cmd, rules, nil
}

// spec is what the launcher is told: the grant, whether Landlock enforces
// it, and the launcher's and the plugin's seccomp programs.
func (p Plugin) spec() (Spec, error) {
	s := Spec{Rules: p.Grant(), Landlock: sandbox.ABI() > 0}
	ps := p.Programs
	if ps == nil {
		ps = new(filter.Programs)
	}
	var err error
	if s.Seccomp, err = ps.For(s.Rules); err != nil {
		return Spec{}, err
	}
	if s.PluginSeccomp, err = ps.PluginPrograms(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// StartLocked starts c (the fork and the handshake) on a thread locked
// until release is called. The plugin dies with the thread that forked it
// (Plugin.Client sets Pdeathsig), and a thread no goroutine holds may end
// whenever some goroutine exits locked to it; the plugin host has forker
// threads of its own for this (core/pluginhost). Call release once the
// plugin has stopped (c.Kill): the thread then ends. For harnesses that
// start a plugin from a test or a tool.
func StartLocked(c *goplugin.Client) (release func(), err error) {
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		_, err := c.Start()
		started <- err
		<-done
	}()
	err = <-started
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }, err
}

// Dispense completes the handshake of a client from Plugin.Client (it
// starts the process if it has not started) and returns its check client.
func Dispense(c *goplugin.Client) (*checkrpc.Client, error) {
	rpc, err := c.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		return nil, err
	}
	wc, ok := raw.(*checkrpc.Client)
	if !ok {
		return nil, fmt.Errorf("dispensed %T, not a check client", raw)
	}
	return wc, nil
}

// Command returns the command that starts the plugin file bin (open, and
// verified by the caller) through launcher, confined as s says (its rules,
// made into a Landlock ruleset here, and the seccomp program from
// filter.Programs, without which the launcher starts nothing); argv0 is
// the plugin's argv[0] and env its environment. The caller sets
// SysProcAttr, starts the command (through go-plugin) and then closes the
// returned files. Plugin.Client is the whole start; Command is its first
// step.
func Command(launcher string, bin *os.File, argv0 string, env []string, s Spec) (*exec.Cmd, io.Closer, error) {
	return command(launcher, bin, argv0, env, s, nil)
}

// command is Command with Plugin.Guard.
func command(launcher string, bin *os.File, argv0 string, env []string, s Spec, guard func(sandbox.Rules) error) (*exec.Cmd, io.Closer, error) {
	fs, err := newLaunchFiles(bin, s, guard)
	if err != nil {
		return nil, nil, err
	}
	return &exec.Cmd{
		Path: launcher,
		// argv[0] is the plugin's path in the plugin directory, for ps;
		// the launcher hands the same argv to the plugin.
		Args: []string{argv0},
		Env: append(slices.Clone(env),
			sandbox.GrantFDEnv+"="+strconv.Itoa(GrantFD),
			Env+"="+Value(fs.ruleset != nil, fs.flags)),
		Dir: "/",
		// The launcher's descriptor layout (package launcher); a nil
		// ruleset leaves fd 5 closed.
		ExtraFiles: []*os.File{bin, fs.grant, fs.ruleset, fs.seccomp},
	}, fs, nil
}

// launchFiles are the descriptors the host hands a launcher besides the
// plugin file.
type launchFiles struct {
	grant, ruleset, seccomp *os.File
	flags                   uint32
}

func newLaunchFiles(bin *os.File, s Spec, guard func(sandbox.Rules) error) (*launchFiles, error) {
	if len(s.Seccomp) == 0 {
		return nil, errors.New("launch: no seccomp program for the plugin: the host assembles it (filter.Programs)")
	}
	fs := new(launchFiles)
	var err error
	if fs.grant, err = GrantFile(s); err != nil {
		return nil, err
	}
	if fs.seccomp, err = SealedFile("attestor-plugin-seccomp", s.Seccomp); err != nil {
		fs.Close()
		return nil, fmt.Errorf("the plugin's seccomp program: %w", err)
	}
	if fs.ruleset, fs.flags, err = sandbox.PluginRuleset(s.Rules, bin, guard); err != nil {
		fs.Close()
		return nil, fmt.Errorf("the plugin's sandbox: %w", err)
	}
	return fs, nil
}

// Close closes the files; the launcher holds its own copies.
func (fs *launchFiles) Close() error {
	for _, f := range []*os.File{fs.grant, fs.ruleset, fs.seccomp} {
		if f != nil {
			_ = f.Close()
		}
	}
	return nil
}
