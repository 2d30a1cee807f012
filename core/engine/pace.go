package engine

import (
	"context"
	"syscall"
	"time"
)

// maxPause bounds one pause of a paced attestation.
const maxPause = time.Second

// pacer keeps one attestation's average CPU use (the daemon's and its
// plugins') at or below rate CPUs. Under the unit's quota (10 ms of CPU
// per 100 ms period for the daemon and its plugins together) an
// attestation that runs flat out spends every period's quota, and an API
// request arriving then waits for the next period; paced, it leaves part
// of each period free. The pacer is called between plugin turns and before
// sealing, from the attestation's goroutine only.
type pacer struct {
	rate  float64                              // CPUs, > 0
	cpu   func() (time.Duration, bool)         // CPU used so far by the process and its children
	now   func() time.Time                     // the clock
	sleep func(context.Context, time.Duration) // waits, at most until ctx ends
	// awaited reports whether a refresh is waiting for the attestation
	// right now; no pause is taken while one is (nil: never).
	awaited func() bool

	start time.Time
	cpu0  time.Duration
}

// newPacer starts pacing an attestation at rate CPUs; nil when the CPU
// time cannot be read (nothing is paced then).
func newPacer(rate float64, cpu func() (time.Duration, bool), now func() time.Time, sleep func(context.Context, time.Duration)) *pacer {
	c, ok := cpu()
	if !ok || rate <= 0 {
		return nil
	}
	return &pacer{rate: rate, cpu: cpu, now: now, sleep: sleep, start: now(), cpu0: c}
}

// pause waits until the CPU the attestation used since it began, divided
// by the time since it began, is back at rate: the attestation is due
// to have taken used/rate. One pause is at most maxPause and at most half
// the time left before ctx's deadline, so that pacing never turns into an
// attestation timeout.
func (p *pacer) pause(ctx context.Context) {
	if p == nil || p.awaited != nil && p.awaited() {
		return
	}
	c, ok := p.cpu()
	if !ok {
		return
	}
	now := p.now()
	d := p.start.Add(time.Duration(float64(c-p.cpu0) / p.rate)).Sub(now)
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, dl.Sub(now)/2)
	}
	d = min(d, maxPause)
	if d > 0 {
		p.sleep(ctx, d)
	}
}

// processCPU is the CPU time (user and system) of the daemon and of its
// children that have ended: an on-demand plugin's turn counts once its
// process is stopped, i.e. by the next turn. getrusage reads no file, so
// it works inside the daemon's own sandbox.
func processCPU() (time.Duration, bool) {
	var self, children syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children) != nil {
		return 0, false
	}
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime), true
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
