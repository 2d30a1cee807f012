package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/policy"
)

// manual is a clock, a CPU meter and a sleep the tests move by hand.
type manual struct {
	mu     sync.Mutex
	t      time.Time
	cpu    time.Duration
	cpuOK  bool
	slept  []time.Duration
	onCall func(m *manual) // called on each CPU reading, under mu
}

func newManual() *manual {
	return &manual{t: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC), cpuOK: true}
}

func (m *manual) now() time.Time { m.mu.Lock(); defer m.mu.Unlock(); return m.t }

func (m *manual) readCPU() (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.onCall != nil {
		m.onCall(m)
	}
	return m.cpu, m.cpuOK
}

// sleep records d and moves the clock by it.
func (m *manual) sleep(_ context.Context, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slept = append(m.slept, d)
	m.t = m.t.Add(d)
}

func (m *manual) pauses() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Duration(nil), m.slept...)
}

// TestPacerPause: a pause lasts until the attestation's CPU over its
// elapsed time is back at the rate, bounded by maxPause and by half the
// time left before the deadline; none when the attestation is within its
// rate or the CPU time cannot be read.
func TestPacerPause(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rate     float64
		used     time.Duration // CPU since the pacer began
		elapsed  time.Duration // wall time since it began
		deadline time.Duration // from now; 0: none
		cpuFails bool
		want     []time.Duration
	}{
		{name: "over its rate", rate: 0.05, used: 10 * time.Millisecond, elapsed: 50 * time.Millisecond, want: []time.Duration{150 * time.Millisecond}},
		{name: "within its rate", rate: 0.05, used: 10 * time.Millisecond, elapsed: 300 * time.Millisecond},
		{name: "exactly at it", rate: 0.1, used: 10 * time.Millisecond, elapsed: 100 * time.Millisecond},
		{name: "capped at maxPause", rate: 0.01, used: 100 * time.Millisecond, want: []time.Duration{maxPause}},
		{name: "half the time left", rate: 0.05, used: 50 * time.Millisecond, deadline: 400 * time.Millisecond, want: []time.Duration{200 * time.Millisecond}},
		{name: "deadline passed", rate: 0.05, used: 50 * time.Millisecond, deadline: -time.Second},
		{name: "cpu unreadable", rate: 0.05, used: 50 * time.Millisecond, cpuFails: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newManual()
			m.cpu = 7 * time.Second // the process's CPU before the attestation
			p := newPacer(tt.rate, m.readCPU, m.now, m.sleep)
			m.cpu += tt.used
			m.t = m.t.Add(tt.elapsed)
			m.cpuOK = !tt.cpuFails
			ctx := context.Background()
			if tt.deadline != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, m.t.Add(tt.deadline))
				defer cancel()
			}
			p.pause(ctx)
			got := m.pauses()
			if len(got) != len(tt.want) || (len(got) == 1 && got[0] != tt.want[0]) {
				t.Errorf("paused %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNoPacerWithoutCPUTime: when the CPU time cannot be read as an
// attestation begins, it is not paced (a nil pacer's pause is a no-op).
func TestNoPacerWithoutCPUTime(t *testing.T) {
	t.Parallel()
	m := newManual()
	m.cpuOK = false
	p := newPacer(0.05, m.readCPU, m.now, m.sleep)
	if p != nil {
		t.Fatal("a pacer without CPU time")
	}
	p.pause(context.Background())
	if got := m.pauses(); len(got) != 0 {
		t.Errorf("paused %v", got)
	}
}

// TestFirstAttestationNotPaced: over real plugin processes, with a CPU
// meter that says every reading spent 20 ms, the first attestation (the
// one before READY=1) is never paced, whether or not it has the start's
// measurement; the ones after it pause before each plugin turn and before
// sealing, each pause within maxPause, unless a refresh waits for them;
// attestation_cpu_percent 0 turns pacing off.
func TestFirstAttestationNotPaced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		percent int
		paced   bool
	}{
		{"default", policy.Default().AttestationCPUPercent, true},
		{"off", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, []echoPlugin{{name: "vendor"}, {name: "other"}}, func(p *policy.Policy) { p.AttestationCPUPercent = tt.percent })
			m := newManual()
			var readings atomic.Int32
			m.onCall = func(m *manual) { readings.Add(1); m.cpu += 20 * time.Millisecond }
			f.engine.cpuTime, f.engine.sleep, f.engine.now = m.readCPU, m.sleep, m.now
			f.attest()
			if got := m.pauses(); len(got) != 0 || readings.Load() != 0 {
				t.Fatalf("first attestation: %d CPU readings, paused %v; want none", readings.Load(), got)
			}
			f.attest()
			got := m.pauses()
			if !tt.paced {
				if len(got) != 0 {
					t.Fatalf("paced with attestation_cpu_percent 0: %v", got)
				}
				return
			}
			// Two plugin turns and the seal: three pauses.
			if len(got) != 3 {
				t.Fatalf("second attestation paused %v, want 3 pauses", got)
			}
			for _, d := range got {
				if d <= 0 || d > maxPause {
					t.Errorf("pause of %s, want within (0, %s]", d, maxPause)
				}
			}
			// One a refresh waits for is not paced.
			if _, err := f.engine.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := m.pauses(); len(got) != 3 {
				t.Errorf("a refresh was paced: %v", got[3:])
			}
			// One whose refresh gave up waiting is paced again: a caller
			// posting refreshes and hanging up at once gets no unpaced
			// attestations. The turns that run before the refresh's
			// goroutine has left are not paced (under load, both plugin
			// turns can); the seal, after Refresh has returned, is.
			gone, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := f.engine.Refresh(gone); err == nil {
				t.Fatal("a refresh with its context cancelled answered")
			}
			f.attest() // joins it, and waits for its end
			if got := m.pauses(); len(got) < 3+1 {
				t.Errorf("an abandoned refresh's attestation paused %v, want its seal paced", got[3:])
			}
		})
	}
}
