// Package sdnotify tells systemd how the daemon is doing, through the
// sd_notify protocol (a datagram to $NOTIFY_SOCKET): READY=1 once the first
// attestation has reached a verdict, STATUS= lines with the state,
// STOPPING=1 on shutdown, and WATCHDOG=1 keep-alives sent only while the
// engine reports itself healthy, so that a wedged engine (not merely a dead
// process) makes systemd restart the service (WatchdogSec= in the unit).
//
// Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op.
package sdnotify

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
)

// SocketEnv is the variable systemd sets to the notification socket.
const SocketEnv = "NOTIFY_SOCKET"

// Notifier sends sd_notify messages. Its methods are safe for concurrent
// use.
type Notifier struct {
	logger hclog.Logger
	socket string
}

// New returns a Notifier for the socket named by $NOTIFY_SOCKET at the time
// of the call; a nil logger logs nothing.
func New(logger hclog.Logger) *Notifier {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Notifier{logger: logger, socket: os.Getenv(SocketEnv)}
}

// Enabled reports whether systemd is listening ($NOTIFY_SOCKET was set).
func (n *Notifier) Enabled() bool { return n.socket != "" }

// Socket returns the notification socket's address ("" when disabled; a
// leading "@" is an abstract socket). The daemon's Landlock rules must
// allow it (sandbox.DaemonPaths.NotifySocket).
func (n *Notifier) Socket() string { return n.socket }

// Ready tells systemd that start-up is complete (READY=1), with a status
// line. Call it once the first attestation has reached a verdict: units
// ordered after the attestor start only then.
func (n *Notifier) Ready(status string) error {
	return n.send(daemon.SdNotifyReady + "\n" + statusLine(status))
}

// Status updates the status line systemctl status shows.
func (n *Notifier) Status(status string) error {
	return n.send(statusLine(status))
}

// Reloading tells systemd a policy reload has begun; call Ready when it is
// over.
func (n *Notifier) Reloading() error {
	return n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

// Stopping tells systemd the daemon is shutting down.
func (n *Notifier) Stopping() error {
	return n.send(daemon.SdNotifyStopping)
}

// statusLine makes one STATUS= assignment: a newline in status would
// start another assignment (READY=1, MAINPID=…), so control characters
// become spaces.
func statusLine(status string) string {
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, status)
	return "STATUS=" + clean
}

func (n *Notifier) send(state string) error {
	if n.socket == "" {
		return nil
	}
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	if !sent {
		return fmt.Errorf("sd_notify %s: %s is no longer set", n.socket, SocketEnv)
	}
	return nil
}

// WatchdogInterval returns how often Watchdog pings: half of the
// WATCHDOG_USEC systemd set for this process, or 0 when the watchdog is off
// (not set, or set for another PID). A malformed value is an error.
func WatchdogInterval() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("watchdog: %w", err)
	}
	return d / 2, nil
}

// Watchdog sends WATCHDOG=1 every WatchdogInterval while healthy returns
// true, until ctx is done; it returns at once when the watchdog is off.
// While healthy returns false no keep-alive is sent, so systemd restarts
// the service once WatchdogSec= passes; a later true resumes the pings.
// healthy must not block: it is the engine's own view of its liveness
// (its attestation loop is turning), not the process's. Run it in its own
// goroutine.
func (n *Notifier) Watchdog(ctx context.Context, healthy func() bool) {
	if n.socket == "" {
		return
	}
	interval, err := WatchdogInterval()
	if err != nil {
		n.logger.Warn("watchdog disabled", "error", err)
		return
	}
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	wasHealthy := true
	for {
		ok := healthy()
		switch {
		case ok:
			if !wasHealthy {
				n.logger.Info("engine healthy again: watchdog keep-alives resumed")
			}
			if err := n.send(daemon.SdNotifyWatchdog); err != nil {
				n.logger.Warn("watchdog keep-alive not sent", "error", err)
			}
		case wasHealthy:
			n.logger.Error("engine unhealthy: watchdog keep-alives withheld, systemd will restart the service")
		}
		wasHealthy = ok
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
