// Package apitest provides Attestor, a small but real implementation of
// api.Attestor whose state tests control, for the API's tests and for
// clients (attestctl) tested against a real api.Server. Refreshes behave as
// the engine's do: concurrent callers share one attestation, a caller that
// gives up does not stop it, and reads never wait for it.
package apitest

import (
	"context"
	"sync"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// NextFunc computes the snapshot an attestation produces from the previous
// one.
type NextFunc func(prev engine.Snapshot) (engine.Snapshot, error)

// Attestor is a controllable api.Attestor. The zero value is not usable;
// call New.
type Attestor struct {
	mu      sync.Mutex
	snap    engine.Snapshot
	next    NextFunc
	hold    chan struct{} // attestations wait on it while non-nil
	flight  *flight
	runs    int
	joins   int
	waiting int
	changed chan struct{} // closed and replaced on every change of the counters
}

type flight struct {
	done chan struct{}
	snap engine.Snapshot
	err  error
}

var _ api.Attestor = (*Attestor)(nil)

// New returns an Attestor whose current snapshot is initial. Its
// attestations, until SetNext, keep the state and count as Advance does.
func New(initial engine.Snapshot) *Attestor {
	return &Attestor{snap: initial, next: Advance, changed: make(chan struct{})}
}

// Advance is the default NextFunc, counting as the engine does: the state
// stays, LastAttested becomes now, AttestCount and RefreshCount go up by
// one, and DegradeCount or FailCount for those states.
func Advance(prev engine.Snapshot) (engine.Snapshot, error) {
	s := prev
	s.LastAttested = time.Now().UTC()
	s.RefreshCount++
	s.AttestCount++
	switch s.State {
	case state.Degraded:
		s.DegradeCount++
	case state.Failed:
		s.FailCount++
	}
	return s, nil
}

// To returns a NextFunc that moves to the state st with bundle b and
// otherwise advances as Advance does.
func To(st state.State, b []byte) NextFunc {
	return func(prev engine.Snapshot) (engine.Snapshot, error) {
		prev.State, prev.Bundle = st, b
		return Advance(prev)
	}
}

// Snapshot returns the current snapshot. It never waits for a running
// attestation.
func (a *Attestor) Snapshot() engine.Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.snap
}

// Set replaces the current snapshot (as if an attestation had just ended).
func (a *Attestor) Set(s engine.Snapshot) {
	a.mu.Lock()
	a.snap = s
	a.mu.Unlock()
}

// SetNext sets what the following attestations produce.
func (a *Attestor) SetNext(f NextFunc) {
	a.mu.Lock()
	a.next = f
	a.mu.Unlock()
}

// Hold makes attestations started from now on wait until release is called
// (release is idempotent).
func (a *Attestor) Hold() (release func()) {
	ch := make(chan struct{})
	a.mu.Lock()
	a.hold = ch
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			if a.hold == ch {
				a.hold = nil
			}
			a.mu.Unlock()
			close(ch)
		})
	}
}

// Refresh runs an attestation, or joins the one running, and returns the
// snapshot it produced. It returns ctx.Err() if ctx ends first; the
// attestation goes on for the other callers.
func (a *Attestor) Refresh(ctx context.Context) (engine.Snapshot, error) {
	a.mu.Lock()
	f := a.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		a.flight = f
		a.runs++
		go a.run(f, a.hold, a.next)
	} else {
		a.joins++
	}
	a.waiting++
	a.notifyLocked()
	a.mu.Unlock()

	defer func() {
		a.mu.Lock()
		a.waiting--
		a.notifyLocked()
		a.mu.Unlock()
	}()
	select {
	case <-f.done:
		return f.snap, f.err
	case <-ctx.Done():
		return engine.Snapshot{}, ctx.Err()
	}
}

func (a *Attestor) run(f *flight, hold chan struct{}, next NextFunc) {
	if hold != nil {
		<-hold
	}
	prev := a.Snapshot()
	snap, err := next(prev)
	a.mu.Lock()
	if err == nil {
		a.snap = snap
	}
	f.snap, f.err = snap, err
	a.flight = nil
	a.notifyLocked()
	a.mu.Unlock()
	close(f.done)
}

func (a *Attestor) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// Stats returns how many attestations ran (or run), how many Refresh calls
// joined a running one, and how many callers wait right now.
func (a *Attestor) Stats() (runs, joins, waiting int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runs, a.joins, a.waiting
}

// Running reports whether an attestation is in progress.
func (a *Attestor) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.flight != nil
}

// WaitFor blocks until cond (called with the Stats values) holds or ctx
// ends, and reports whether it held.
func (a *Attestor) WaitFor(ctx context.Context, cond func(runs, joins, waiting int) bool) bool {
	for {
		a.mu.Lock()
		ok := cond(a.runs, a.joins, a.waiting)
		ch := a.changed
		a.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}
