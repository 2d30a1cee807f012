// Package swtpmtest runs Debian's swtpm (a software TPM 2.0) for tests, on a
// Unix socket in the test's temporary folder, and gives tpmio connections
// to it. Tests that use it are skipped where swtpm is not installed
// (scripts/install-deps.sh installs it).
package swtpmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
)

// TPM is a running swtpm.
type TPM struct {
	// Socket is the data channel's Unix socket.
	Socket string
}

// Start starts swtpm with fresh state (startup-clear: PCRs at zero) and
// stops it when the test ends.
func Start(t testing.TB) *TPM {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm is not installed (scripts/install-deps.sh, or apt-get install swtpm)")
	}
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &TPM{Socket: filepath.Join(dir, "swtpm.sock")}
	logPath := filepath.Join(dir, "swtpm.log")
	cmd := exec.Command(bin, "socket", "--tpm2",
		"--server", "type=unixio,path="+s.Socket,
		"--ctrl", "type=unixio,path="+filepath.Join(dir, "swtpm.ctrl"),
		"--tpmstate", "dir="+stateDir,
		"--log", "file="+logPath,
		"--flags", "not-need-init,startup-clear")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start swtpm: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := tpmio.DialSocket(ctx, s.Socket)
		cancel()
		if err == nil {
			_ = conn.Close()
			return s
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("swtpm exited: %v\n%s", err, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm did not open %s: %v", s.Socket, err)
		}
	}
}

// Open opens a connection to the swtpm (for evidence.Options.Open).
func (s *TPM) Open(ctx context.Context) (tpmio.Conn, error) {
	return tpmio.DialSocket(ctx, s.Socket)
}

// Do runs f over its own connection to the swtpm.
func (s *TPM) Do(t testing.TB, f func(tpm transport.TPM)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := s.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f(tpmio.Bind(ctx, conn, tpmio.Policy{Retries: 3, Delay: 10 * time.Millisecond}))
}
