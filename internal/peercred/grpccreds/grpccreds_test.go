package grpccreds

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/secure-ai/runtime-attestor/internal/peercred"
)

// serve serves gRPC's health service with creds on a Unix socket at path.
func serve(t *testing.T, path string, creds credentials.TransportCredentials) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(creds))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
}

// call dials path with creds (insecure when nil) and makes one call.
func call(t *testing.T, path string, creds credentials.TransportCredentials) error {
	t.Helper()
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}
	conn, err := grpc.NewClient("passthrough:unused", grpc.WithContextDialer(dial), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	return err
}

// socketDir returns a fresh 0700 folder.
func socketDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "sock")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// self is an exec.Cmd whose process is the test process (the plugin a
// host started, as far as the host credentials know).
func self(t *testing.T) *exec.Cmd {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return &exec.Cmd{Process: p}
}

// other starts a process that is not the plugin.
func other(t *testing.T) *exec.Cmd {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func TestHost(t *testing.T) {
	t.Parallel()
	if peercred.SelfPidfsIno() == 0 {
		t.Log("no pidfs: plugin-side checks use the parent pid")
	}
	pluginOK := PluginWith(peercred.PluginCheckFor(peercred.SelfPidfsIno()))
	if peercred.SelfPidfsIno() == 0 {
		t.Skip("needs pidfs to serve the test process to itself")
	}
	tests := []struct {
		name    string
		outside bool        // socket in another folder than the plugin's
		mode    os.FileMode // folder mode (0: 0700)
		cmd     func(*testing.T) *exec.Cmd
		want    string // "" for success
	}{
		{name: "the plugin's own socket", cmd: self},
		{name: "socket served by another process", cmd: other, want: "not by the plugin process"},
		{name: "socket outside the plugin's folder", outside: true, cmd: self, want: "not in its own folder"},
		{name: "folder open to others", mode: 0o755, cmd: self, want: "not 0700"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := socketDir(t)
			sockDir := dir
			if tt.outside {
				sockDir = socketDir(t)
			}
			path := filepath.Join(sockDir, "plugin.sock")
			serve(t, path, pluginOK)
			if tt.mode != 0 {
				if err := os.Chmod(dir, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			err := call(t, path, Host(dir, tt.cmd(t)))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused the plugin: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a refusal naming %q", err, tt.want)
			}
		})
	}
}

// TestPluginRefusesOtherProcess: a process other than the daemon (here the
// test process, which is neither the parent nor of the daemon's pidfs
// inode) is refused before any call reaches the plugin.
func TestPluginRefusesOtherProcess(t *testing.T) {
	t.Parallel()
	daemon := other(t) // stands for the daemon: some other live process
	tests := []struct {
		name string
		ino  uint64
		want string
	}{
		{name: "by parent pid", want: "only the daemon, the plugin's parent"},
		{name: "by pidfs inode", ino: pidfsOf(t, daemon.Process.Pid), want: "only the daemon (pidfs inode"},
		{name: "the daemon itself", ino: peercred.SelfPidfsIno()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.ino == 0 && tt.want != "only the daemon, the plugin's parent" {
				t.Skip("needs pidfs")
			}
			path := filepath.Join(socketDir(t), "plugin.sock")
			serve(t, path, PluginWith(peercred.PluginCheckFor(tt.ino)))
			err := call(t, path, Host(filepath.Dir(path), self(t)))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused the daemon: %v", err)
				}
				return
			}
			// The server closes the connection: the client sees it fail.
			if err == nil {
				t.Fatalf("a process other than the daemon was served")
			}
		})
	}
}

func pidfsOf(t *testing.T, pid int) uint64 {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return peercred.PidfsOfPid(pid)
}

func TestPluginEnv(t *testing.T) {
	t.Setenv(peercred.DaemonEnv, "x")
	if _, err := Plugin(); err == nil || !strings.Contains(err.Error(), peercred.DaemonEnv) {
		t.Fatalf("a malformed %s was accepted: %v", peercred.DaemonEnv, err)
	}
}
