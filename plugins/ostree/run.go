package ostree

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxStderrBytes bounds how much of a command's stderr is kept.
const maxStderrBytes = 64 << 10

// waitDelay bounds how long output is still collected after the command
// exits, should something outside its process group hold the pipes open.
const waitDelay = 2 * time.Second

// errOutputTooLarge is returned when the command printed more than allowed.
var errOutputTooLarge = errors.New("output larger than the limit")

// runOutput is what a command left behind.
type runOutput struct {
	Stdout          []byte
	Stderr          []byte
	StderrTruncated bool
}

// capWriter keeps at most max bytes. Past that it records the overflow,
// signals it once and discards the rest, so the writer never blocks.
type capWriter struct {
	mu       sync.Mutex
	buf      []byte
	max      int64
	over     bool
	overOnce sync.Once
	overflow chan struct{} // closed on overflow; nil: just truncate
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	room := w.max - int64(len(w.buf))
	if int64(len(p)) <= room {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		w.buf = append(w.buf, p[:room]...)
	}
	w.over = true
	if w.overflow != nil {
		w.overOnce.Do(func() { close(w.overflow) })
	}
	return len(p), nil
}

func (w *capWriter) result() ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf, w.over
}

// run runs path with args in a process group of its own, with stdin from
// /dev/null, stdout bounded by maxOut and stderr captured (truncated). When
// ctx ends or stdout overflows, the whole process group is killed; if the
// plugin itself dies, the kernel kills the command (PDEATHSIG). Once
// the command exits, anything it left running in its group is killed too,
// before the command is reaped, so no process outlives a measurement. The
// error is ctx's error, errOutputTooLarge, a *exec.ExitError, or a start
// failure; output is returned in every case.
func run(ctx context.Context, path string, args []string, maxOut int64) (runOutput, error) {
	cmd := exec.Command(path, args...)
	// A group of its own, so that a timeout kills whatever the command
	// started; PDEATHSIG, so that the command dies with the plugin should
	// the daemon kill the plugin mid-measurement.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout := &capWriter{max: maxOut, overflow: make(chan struct{})}
	stderr := &capWriter{max: maxStderrBytes}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = waitDelay
	collect := func() runOutput {
		o, _ := stdout.result()
		e, trunc := stderr.result()
		return runOutput{Stdout: o, Stderr: e, StderrTruncated: trunc}
	}
	if err := ctx.Err(); err != nil {
		return runOutput{}, err
	}
	if err := cmd.Start(); err != nil {
		return runOutput{}, fmt.Errorf("start %s: %w", path, err)
	}
	pgid := cmd.Process.Pid

	// The supervisor kills the group when ctx ends or stdout overflows. It
	// is stopped, and waited for, before the command is reaped: until then
	// the group's id cannot be reused, so the kill cannot hit a stranger.
	stop := make(chan struct{})
	supervised := make(chan struct{})
	var killedFor error
	go func() {
		defer close(supervised)
		select {
		case <-ctx.Done():
			killedFor = ctx.Err()
		case <-stdout.overflow:
			killedFor = errOutputTooLarge
		case <-stop:
			return
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}()
	var err error
	if waitExitNoReap(pgid) == nil {
		close(stop)
		<-supervised
		// Leftovers in the group (children the command did not wait for).
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		err = cmd.Wait()
	} else {
		// waitid is unavailable: reap normally, supervised to the end.
		err = cmd.Wait()
		close(stop)
		<-supervised
	}
	if killedFor != nil {
		return collect(), killedFor
	}
	if _, over := stdout.result(); over {
		return collect(), errOutputTooLarge
	}
	return collect(), err
}

// waitExitNoReap blocks until process pid has exited, leaving it a zombie
// (WNOWAIT) so that its pid and process-group id stay reserved.
func waitExitNoReap(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err
		}
	}
}
