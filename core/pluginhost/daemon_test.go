package pluginhost

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
)

// The test binary re-executes itself as a tiny daemon (go-plugin's own
// tests do the same helper-process trick): it starts a Host over the plugin
// directory named in the environment, measures once, prints what it saw as
// one JSON line and then waits to be killed, or closes and exits.
const (
	daemonEnv       = "PLUGINHOST_TEST_DAEMON"
	daemonDirEnv    = "PLUGINHOST_TEST_DIR"
	daemonPluginEnv = "PLUGINHOST_TEST_PLUGIN"
	daemonConfigEnv = "PLUGINHOST_TEST_CONFIG"
	daemonNoNSEnv   = "PLUGINHOST_TEST_NO_PIDNS"
	daemonExitEnv   = "PLUGINHOST_TEST_EXIT"
	daemonStrictEnv = "PLUGINHOST_TEST_STRICT" // grant the plugins nothing
)

type daemonReport struct {
	PIDs    []int    `json:"pids"`
	Results []Result `json:"results"`
}

func runDaemon() int {
	log := hclog.New(&hclog.LoggerOptions{Name: "daemon", Output: os.Stderr, Level: hclog.Debug})
	var specs []Spec
	for _, name := range strings.Split(os.Getenv(daemonPluginEnv), ",") {
		s := Spec{Name: name, Enabled: true, ConfigJSON: []byte(os.Getenv(daemonConfigEnv)), Sandbox: scratchGrant(os.Getenv(daemonDirEnv))}
		if os.Getenv(daemonStrictEnv) != "" {
			s.Sandbox = sandbox.Rules{}
		}
		specs = append(specs, s)
	}
	h := New(Options{Dir: os.Getenv(daemonDirEnv), Plugins: specs, Logger: log, Resident: true})
	h.usePIDNS = os.Getenv(daemonNoNSEnv) == ""
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "daemon: start:", err)
		return 1
	}
	rep := daemonReport{Results: h.Measure(ctx, []byte("nonce"))}
	rep.PIDs = h.PIDs()
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	if os.Getenv(daemonExitEnv) != "" {
		h.Close()
		return 0
	}
	select {} // until SIGKILL
}

// startDaemon runs the test binary as a daemon and returns it with its
// report.
func startDaemon(t *testing.T, exe string, cred *syscall.Credential, env ...string) (*exec.Cmd, daemonReport, *logBuffer) {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	// Its private folder (left behind by a SIGKILL) goes with the test.
	cmd.Env = append(os.Environ(), append([]string{daemonEnv + "=1", "TMPDIR=" + t.TempDir()}, env...)...)
	stderr := &logBuffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, out)
	}()
	var rep daemonReport
	select {
	case s := <-line:
		if err := json.Unmarshal([]byte(s), &rep); err != nil {
			t.Fatalf("daemon report %q: %v\nstderr:\n%s", s, err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("the daemon did not report\nstderr:\n%s", stderr.String())
	}
	return cmd, rep, stderr
}

// TestDaemonSIGKILLLeavesNoOrphan: the daemon is killed with SIGKILL while
// its plugin has a grandchild that left the process group (setsid) and
// ignores SIGTERM and SIGHUP. Pdeathsig kills the plugin; the plugin was PID
// 1 of its own namespace, so the kernel kills the grandchild.
func TestDaemonSIGKILLLeavesNoOrphan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	killLeftoversAtCleanup(t, dir)
	install(t, dir, "orphan", "orphan")
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	cmd, rep, _ := startDaemon(t, os.Args[0], nil,
		daemonDirEnv+"="+dir, daemonPluginEnv+"=orphan", daemonConfigEnv+"="+string(cfg("pid_file", pidFile)))
	if len(rep.Results) != 1 || rep.Results[0].Fault != "" || len(rep.PIDs) != 1 {
		t.Fatalf("daemon report %+v", rep)
	}
	var gpid int
	if err := json.Unmarshal(rep.Results[0].Measurements["grandchild_pid"], &gpid); err != nil {
		t.Fatal(err)
	}
	plugin, grandchild := procOf(t, rep.PIDs[0]), procOf(t, gpid)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, "after the daemon's SIGKILL", plugin, grandchild)
	if got := waitFor(func() []int { return leftovers(dir) }); got != nil {
		t.Errorf("processes left running from the plugin directory: %v (%s)", got, describePIDs(got))
	}
}

// TestDaemonSIGKILLNoNamespace: without a PID namespace the plugin itself
// still dies with the daemon (Pdeathsig, forked from a locked thread).
func TestDaemonSIGKILLNoNamespace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	killLeftoversAtCleanup(t, dir)
	install(t, dir, "good", "good")
	cmd, rep, _ := startDaemon(t, os.Args[0], nil, daemonDirEnv+"="+dir, daemonPluginEnv+"=good", daemonNoNSEnv+"=1")
	if len(rep.Results) != 1 || rep.Results[0].Fault != "" || len(rep.PIDs) != 1 {
		t.Fatalf("daemon report %+v", rep)
	}
	plugin := procOf(t, rep.PIDs[0])
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, "after the daemon's SIGKILL", plugin)
}

// TestNoNamespacePermissionFallsBack runs the daemon as an unprivileged
// user, for whom CLONE_NEWPID fails with EPERM: the host falls back to a
// process group, says so once, and the plugin works.
func TestNoNamespacePermissionFallsBack(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the daemon as another user")
	}
	_, dir, exe := nobodyLayout(t)
	install(t, dir, "good", "good")
	install(t, dir, "good", "second")
	cmd, rep, stderr := startDaemon(t, exe, &syscall.Credential{Uid: nobody, Gid: nobody},
		daemonDirEnv+"="+dir, daemonPluginEnv+"=good,second", daemonExitEnv+"=1", "TMPDIR=/tmp")
	if len(rep.Results) != 2 || rep.Results[0].Fault != "" || rep.Results[1].Fault != "" || len(rep.PIDs) != 2 {
		t.Fatalf("daemon report %+v", rep)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if got := leftovers(dir); got != nil {
		t.Errorf("processes left running from the plugin directory: %v (%s)", got, describePIDs(got))
	}
	if n := strings.Count(stderr.String(), "cannot start plugins in their own PID namespace (EPERM)"); n != 1 {
		t.Errorf("the fallback was logged %d times, want once\nstderr:\n%s", n, stderr.String())
	}
	if strings.Contains(stderr.String(), "pid_namespace=true") {
		t.Errorf("a plugin claims a PID namespace:\n%s", stderr.String())
	}
}

// nobody is the unprivileged user the daemon runs as in some tests.
const nobody = 65534

// nobodyLayout makes a folder (0755) that the unprivileged daemon can
// reach, with its plugin folder and a copy of this test binary as the
// daemon.
func nobodyLayout(t *testing.T) (root, dir, exe string) {
	t.Helper()
	root, err := os.MkdirTemp("", "pluginhost-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(root, "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	killLeftoversAtCleanup(t, dir)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe = filepath.Join(root, "pluginhost.test")
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, dir, exe
}

// killLeftoversAtCleanup kills what a failing test left running from dir,
// so that one failure does not leak processes into the machine.
func killLeftoversAtCleanup(t *testing.T, dir string) {
	t.Cleanup(func() {
		for _, pid := range leftovers(dir) {
			_ = syscallKill(pid)
		}
	})
}

// TestHostileAsUnprivilegedDaemon runs the host as an unprivileged user, as
// the shipped unit does (DynamicUser), owning its secrets, its policy and
// its audit log, which ordinary permissions would let any of its processes
// read and write: a hostile plugin granted nothing is still refused them
// all, by the confinement the host imposed, and cannot signal the daemon
// (no PID namespace here: its parent is the daemon itself).
func TestHostileAsUnprivilegedDaemon(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the daemon as another user")
	}
	root, dir, exe := nobodyLayout(t)
	state := filepath.Join(root, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	install(t, dir, "hostile", "hostile")
	var secrets []string
	for _, f := range []string{"hmac.key", "api-token", "attestation.yaml", "audit.jsonl"} {
		p := filepath.Join(state, f)
		if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, p)
	}
	plan := cfg("read", secrets, "append", secrets, "create", []string{filepath.Join(state, "planted")}, "list", []string{state}, "signal_parent", true)
	cmd, rep, stderr := startDaemon(t, exe, &syscall.Credential{Uid: nobody, Gid: nobody},
		daemonDirEnv+"="+dir, daemonPluginEnv+"=hostile", daemonConfigEnv+"="+string(plan), daemonStrictEnv+"=1", daemonExitEnv+"=1", "TMPDIR="+state)
	if len(rep.Results) != 1 || rep.Results[0].Fault != "" {
		t.Fatalf("daemon report %+v\n%s", rep, stderr)
	}
	var tries map[string]string
	if err := json.Unmarshal(rep.Results[0].Measurements["attempts"], &tries); err != nil || len(tries) != 11 {
		t.Fatalf("attempts %v (%v), want 11", tries, err)
	}
	for what, outcome := range tries {
		if what == "signal the parent" && sandbox.ABI() < 6 {
			continue // signal scoping needs Landlock ABI v6
		}
		if !strings.Contains(outcome, "permission denied") && !strings.Contains(outcome, "operation not permitted") {
			t.Errorf("%s: %s, want permission denied", what, outcome)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "planted")); err == nil {
		t.Error("the plugin planted a file")
	}
}
