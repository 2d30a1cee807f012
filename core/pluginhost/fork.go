package pluginhost

import (
	"errors"
	"runtime"
)

// forkJob is one plugin start to run on a forker thread; done gets its
// error.
type forkJob struct {
	start func() error
	done  chan<- error
}

// errHostClosed is a start asked for after the host closed.
var errHostClosed = errors.New("the plugin host is closed")

// forker starts plugins on a thread it holds for the life of the host.
// Pdeathsig fires when the thread that forked a plugin exits, not the
// process; Go never reuses or ends a locked thread while its goroutine
// runs, so every plugin's parent thread lives exactly as long as the host.
// It exits still locked when the host closes (after every plugin has
// stopped), which ends the thread.
//
// Only the start runs here, not the whole turn: a goroutine locked to its
// thread hands its P over and back at every block, each time a futex wake
// and two thread switches, and a turn blocks at every RPC.
func (h *Host) forker() {
	defer h.workers.Done()
	runtime.LockOSThread()
	for {
		select {
		case j := <-h.forks:
			j.done <- j.start()
		case <-h.quit:
			return
		}
	}
}

// onForker runs start (which forks a plugin) on a forker thread and
// returns its error.
func (h *Host) onForker(start func() error) error {
	done := make(chan error, 1)
	select {
	case h.forks <- forkJob{start: start, done: done}:
	case <-h.quit:
		return errHostClosed
	}
	return <-done
}
