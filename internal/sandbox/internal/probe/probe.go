// Package probe runs the operations the sandbox tests try inside a
// restricted process (a re-executed test binary or the sandboxcheck
// plugin) and reports how each one ended, errno included.
package probe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Op is one operation: Kind is read, write, exec, http, unshare, mount or
// ptrace; Target is the file, folder or command it applies to.
type Op struct {
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"`
}

// Result is how an operation ended: OK, or the error and its errno name
// (EACCES, EPERM, …; "" when the error carries none).
type Result struct {
	Op     Op     `json:"op"`
	OK     bool   `json:"ok"`
	Errno  string `json:"errno,omitempty"`
	Error  string `json:"error,omitempty"`
	Output string `json:"output,omitempty"`
}

// Run runs every op in order.
func Run(ctx context.Context, ops []Op) []Result {
	out := make([]Result, 0, len(ops))
	for _, op := range ops {
		output, err := run(ctx, op)
		r := Result{Op: op, OK: err == nil, Output: output}
		if err != nil {
			r.Error = err.Error()
			var errno syscall.Errno
			if errors.As(err, &errno) {
				r.Errno = unix.ErrnoName(errno)
			}
		}
		out = append(out, r)
	}
	return out
}

func run(ctx context.Context, op Op) (string, error) {
	switch op.Kind {
	case "read":
		data, err := os.ReadFile(op.Target)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:]), nil
	case "write":
		p := filepath.Join(op.Target, fmt.Sprintf("probe-%d", os.Getpid()))
		if err := os.WriteFile(p, []byte("probe"), 0o600); err != nil {
			return "", err
		}
		return "", os.Remove(p)
	case "exec":
		var stderr strings.Builder
		cmd := exec.CommandContext(ctx, op.Target)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return stderr.String(), unwrapExec(err)
		}
		return strings.TrimSpace(string(out)), nil
	case "http":
		return httpLoopback(ctx)
	case "unshare":
		// unshare(0) changes nothing: only a filter refuses it.
		return "", unix.Unshare(0)
	case "mount":
		// The target does not exist: unfiltered, this is ENOENT.
		return "", unix.Mount("none", op.Target, "tmpfs", 0, "")
	case "ptrace":
		// No such process: unfiltered, this is ESRCH.
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKUSR, 1<<30, 0, 0, 0, 0)
		if e != 0 {
			return "", e
		}
		return "", nil
	}
	return "", fmt.Errorf("unknown probe %q", op.Kind)
}

func unwrapExec(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe
	}
	return err
}

// httpLoopback serves one request on a loopback port and fetches it.
func httpLoopback(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pong") }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
