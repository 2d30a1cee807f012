// Package bare is the API benchmark's baseline: a plain net/http server
// that answers each path with bytes recorded from the daemon (status,
// headers, body), run as a process of its own like the daemon, so that the
// comparison isolates what the daemon's API does beyond writing the bytes.
package bare

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Answer is one recorded response.
type Answer struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
}

// Routes maps a URL path to its answer.
type Routes map[string]Answer

// Handler answers every request from routes (404 for other paths).
func Handler(routes Routes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		a, ok := routes[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		for k, v := range a.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(a.Status)
		_, _ = w.Write(a.Body)
	})
}

// Save writes routes to path as JSON (mode 0600).
func Save(path string, routes Routes) error {
	b, err := json.Marshal(routes)
	if err != nil {
		return fmt.Errorf("encode routes: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write routes: %w", err)
	}
	return nil
}

// Load reads routes written by Save.
func Load(path string) (Routes, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("routes %s: %w", path, err)
	}
	return r, nil
}

// Parse decodes and checks routes: every path starts with "/" and every
// status has three digits.
func Parse(b []byte) (Routes, error) {
	var r Routes
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("no routes")
	}
	for p, a := range r {
		if !strings.HasPrefix(p, "/") || a.Status < 100 || a.Status > 999 {
			return nil, fmt.Errorf("%q: want a path starting with / and a 3-digit status, got status %d", p, a.Status)
		}
	}
	return r, nil
}

// readyPrefix starts the line a serving process prints once it listens.
const readyPrefix = "listening "

// Serve loads the routes file, listens on a free loopback port, prints
// "listening <addr>" to out and serves until ctx ends.
func Serve(ctx context.Context, routesFile string, out io.Writer) error {
	routes, err := Load(routesFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: Handler(routes), ReadHeaderTimeout: 10 * time.Second}
	if _, err := fmt.Fprintf(out, "%s%s\n", readyPrefix, ln.Addr()); err != nil {
		ln.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// Proc is a serving process.
type Proc struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs `exe args...` (a program that calls Serve) and waits for it to
// say where it listens.
func Start(ctx context.Context, exe string, args ...string) (*Proc, error) {
	cmd := exec.Command(exe, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bare server: %w", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &limited{w: &stderr, n: 8 << 10}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bare server: %w", err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case line, ok := <-lines:
		addr, found := strings.CutPrefix(line, readyPrefix)
		if ok && found {
			p.Addr = addr
			return p, nil
		}
		p.Stop()
		return nil, fmt.Errorf("bare server said %q, not where it listens: %s", line, stderr.String())
	case <-ctx.Done():
		p.Stop()
		return nil, fmt.Errorf("bare server: %w", ctx.Err())
	case <-time.After(30 * time.Second):
		p.Stop()
		return nil, errors.New("bare server did not listen within 30 s")
	}
}

// PID is the server's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Stop ends the server (SIGTERM, SIGKILL after 10 s).
func (p *Proc) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(b []byte) (int, error) {
	if l.n > 0 {
		k := min(len(b), l.n)
		l.n -= k
		_, _ = l.w.Write(b[:k])
	}
	return len(b), nil
}
