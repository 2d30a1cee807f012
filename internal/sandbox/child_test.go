package sandbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/filter"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/internal/probe"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/binding"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
)

// childEnv carries a childSpec (JSON) to a re-executed test binary, which
// then restricts itself and runs the probes instead of the tests.
const childEnv = "SANDBOX_TEST_CHILD"

// childSpec is what a re-executed child does.
type childSpec struct {
	// Mode: "apply" (Apply(Rules, Profile)), "landlock" (Landlock only),
	// "seccomp" (filter.Install only), "daemon" (ApplyDaemon, then host
	// Plugin through go-plugin like the daemon does).
	Mode    string          `json:"mode"`
	Rules   sandbox.Rules   `json:"rules"`
	Profile sandbox.Profile `json:"profile"`
	Ops     []probe.Op      `json:"ops"`

	Daemon       sandbox.DaemonPaths `json:"daemon"`
	PluginRules  sandbox.Rules       `json:"plugin_rules"`
	Plugin       string              `json:"plugin"`
	PluginConfig json.RawMessage     `json:"plugin_config"`
	PluginPIDNS  bool                `json:"plugin_pid_ns"`

	// Swap, for Mode "landlock-swap": the link to point at SwapTo once
	// the closure of Rules.Exec is examined and before its rules are made;
	// for "landlock-guard-swap", once the guard has seen the real paths.
	Swap   string `json:"swap"`
	SwapTo string `json:"swap_to"`
}

// childOut is what the child prints on stdout.
type childOut struct {
	Status        sandbox.Status `json:"status"`
	Results       []probe.Result `json:"results"`
	PluginResults []probe.Result `json:"plugin_results"`
	PluginStatus  string         `json:"plugin_status"`
	Seen          sandbox.Rules  `json:"seen"` // what the guard saw ("landlock-guard-swap")
	Error         string         `json:"error"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(testbin.Main(m))
}

func runChild(raw string) int {
	var spec childSpec
	var out childOut
	defer func() {
		_ = json.NewEncoder(os.Stdout).Encode(out)
	}()
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		out.Error = fmt.Sprintf("decode spec: %v", err)
		return 0
	}
	var err error
	switch spec.Mode {
	case "apply":
		out.Status, err = filter.Apply(spec.Rules, spec.Profile)
	case "landlock":
		out.Status, err = sandbox.Landlock(spec.Rules)
	case "landlock-swap":
		out.Status, err = sandbox.LandlockSwapped(spec.Rules, func() error { return relink(spec.Swap, spec.SwapTo) })
	case "landlock-guard-swap":
		out.Status, err = sandbox.LandlockGuardSwapped(spec.Rules, func() error { return relink(spec.Swap, spec.SwapTo) }, &out.Seen)
	case "seccomp":
		out.Status.Seccomp, err = filter.Install(spec.Profile)
	case "daemon":
		_, out.Status, err = filter.ApplyDaemon(spec.Daemon, spec.PluginRules)
	default:
		err = fmt.Errorf("unknown mode %q", spec.Mode)
	}
	if err != nil {
		out.Error = err.Error()
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out.Results = probe.Run(ctx, spec.Ops)
	if spec.Plugin != "" {
		res, status, err := hostPlugin(ctx, spec.Plugin, spec.Daemon.SocketDir, spec.PluginConfig, spec.PluginPIDNS, os.Stderr)
		out.PluginResults, out.PluginStatus = res, status
		if err != nil {
			out.Error = err.Error()
		}
	}
	return 0
}

// hostPlugin starts the plugin at path the way the daemon does (go-plugin,
// gRPC, a socket folder under socketDir), configures and measures it, and
// returns its probes' results and its /proc status lines.
func hostPlugin(ctx context.Context, path, socketDir string, cfg json.RawMessage, pidNS bool, logs io.Writer) ([]probe.Result, string, error) {
	cmd := exec.Command(path)
	if pidNS {
		// As the daemon's plugin host does when it may: the plugin is PID
		// 1 of its own namespace, /proc is still the host's.
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if socketDir != "" {
		// One socket folder per plugin process, as the daemon does.
		dir, err := os.MkdirTemp(socketDir, "plugin-")
		if err != nil {
			return nil, "", fmt.Errorf("plugin socket folder: %w", err)
		}
		defer os.RemoveAll(dir)
		cmd.Env = append(os.Environ(), sandbox.PluginSocketEnv+"="+dir)
	}
	grant, err := grantFile(socketDir)
	if err != nil {
		return nil, "", err
	}
	defer grant.Close()
	// fd 3: the grant, as the launcher leaves it, with the programs the
	// plugin narrows itself with (no Landlock imposed by this host).
	cmd.ExtraFiles = []*os.File{grant}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, sandbox.GrantFDEnv+"=3")
	pc := &plugin.ClientConfig{
		HandshakeConfig:  binding.Handshake,
		VersionedPlugins: binding.ClientPluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Info}),
		StartTimeout:     30 * time.Second,
	}
	client := plugin.NewClient(pc)
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		return nil, "", fmt.Errorf("start plugin: %w", err)
	}
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		return nil, "", fmt.Errorf("dispense: %w", err)
	}
	c := raw.(*checkrpc.Client)
	d, err := c.Describe(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("describe: %w", err)
	}
	if err := c.Configure(ctx, cfg); err != nil {
		return nil, "", fmt.Errorf("configure: %w", err)
	}
	status := procStatus(client.ReattachConfig().Pid)
	m, err := c.Measure(ctx, d, []byte("nonce-nonce-nonce-nonce-nonce-00"))
	if err != nil {
		return nil, status, fmt.Errorf("measure: %w", err)
	}
	var res []probe.Result
	if err := json.Unmarshal(m.Measurements["probes"], &res); err != nil {
		return nil, status, fmt.Errorf("decode probes: %w", err)
	}
	return res, status, nil
}

// grantFile is a grant as the daemon's launcher leaves it open in a plugin:
// no Landlock rules imposed, the plugin programs the daemon assembles.
func grantFile(dir string) (*os.File, error) {
	var ps filter.Programs
	progs, err := ps.PluginPrograms()
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(sandbox.Confinement{Programs: progs})
	if err != nil {
		return nil, err
	}
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "grant-")
	if err != nil {
		return nil, fmt.Errorf("grant: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return nil, fmt.Errorf("grant: %w", err)
	}
	return f, nil
}

// procStatus returns the NoNewPrivs and Seccomp lines of a process.
func procStatus(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var out string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "NoNewPrivs:") || strings.HasPrefix(line, "Seccomp:") {
			out += line + "\n"
		}
	}
	return out
}

// runSandboxed re-executes the test binary with spec and decodes what it
// printed.
func runSandboxed(t *testing.T, spec childSpec) childOut {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	stderr := &logWriter{t: t}
	cmd.Stderr = stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("sandboxed child: %v\nstdout: %s", err, stdout)
	}
	var out childOut
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("decode child output %q: %v", stdout, err)
	}
	t.Logf("child status: %s", out.Status)
	return out
}

// logWriter logs what is written to it in the test log and keeps it.
type logWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf strings.Builder
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.t.Logf("stderr: %s", p)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// fixture is a tree with an allowed and a denied side.
type fixture struct {
	root       string
	allowedDir string
	allowed    string // file in allowedDir
	deniedDir  string
	denied     string // file in deniedDir
	writeDir   string
	script     string // "#!/bin/sh" script in allowedDir's bin folder
	binDir     string
	deniedBin  string // a copy of true outside the exec rules
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	root := t.TempDir()
	f := fixture{
		root:       root,
		allowedDir: filepath.Join(root, "allowed"),
		deniedDir:  filepath.Join(root, "denied"),
		writeDir:   filepath.Join(root, "rw"),
		binDir:     filepath.Join(root, "bin"),
	}
	for _, d := range []string{f.allowedDir, f.deniedDir, f.writeDir, f.binDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.allowed = filepath.Join(f.allowedDir, "allowed.txt")
	f.denied = filepath.Join(f.deniedDir, "denied.txt")
	f.script = filepath.Join(f.binDir, "hello.sh")
	f.deniedBin = filepath.Join(f.deniedDir, "true")
	writeFile(t, f.allowed, "allowed\n", 0o644)
	writeFile(t, f.denied, "denied\n", 0o644)
	writeFile(t, f.script, "#!/bin/sh\necho hello from sh\n", 0o755)
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatalf("no true(1): %v", err)
	}
	data, err := os.ReadFile(trueBin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.deniedBin, string(data), 0o755)
	return f
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
