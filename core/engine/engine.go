// Package engine runs attestations: it asks the plugin host for one round of
// measurements, merges them into a bundle, weighs the findings into a state,
// signs the bundle, writes the audit trail and publishes the result as a
// snapshot that readers take without ever waiting on a running attestation.
// Concurrent refreshes share one attestation; a periodic loop refreshes every
// refresh_interval; a policy reload swaps the policy and the plugin host
// between two attestations.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/policy"
)

// MinHMACKeyBytes is the shortest HMAC key the engine signs with.
const MinHMACKeyBytes = 32

// maxHMACKeyBytes bounds how much of the key file is read.
const maxHMACKeyBytes = 64 << 10

// Host is the plugin host as the engine uses it (*pluginhost.Host).
type Host interface {
	Measure(ctx context.Context, nonce []byte) []pluginhost.Result
	Close()
}

// Auditor is the audit log as the engine uses it (*audit.Log).
type Auditor interface {
	Append(typ string, data any) error
}

// Options configure an Engine.
type Options struct {
	Policy *policy.Policy
	// PolicySHA256 is the hex SHA-256 of the policy file, "" for defaults.
	PolicySHA256 string
	Host         Host
	// Audit may be nil (attest --once writes no audit log).
	Audit   Auditor
	Logger  hclog.Logger
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Verdicts, if not nil, measures each bundle's verdict into the TPM
	// (a *verdict.Measurer); a problem it reports becomes the finding
	// core.verdict_measurement in the next bundle.
	Verdicts Verdicts
	// FileTrust, if not nil, checks the owners and modes of the files the
	// policy in force names (and their folders) before every attestation;
	// its error is the finding core.file_trust (high).
	FileTrust func(*policy.Policy) error
	// First, when set, is the first attestation's measurement, already
	// taken from Host with First.Nonce (pluginhost.Host.StartMeasure,
	// which starts each plugin once for its configuration check and its
	// first measurement). The first attestation uses it instead of asking
	// Host again, unless a reload replaced Host before.
	First *First
}

// First is a measurement taken before the engine's first attestation.
type First struct {
	Nonce   []byte
	Results []pluginhost.Result
}

// NewNonce returns a fresh random attestation nonce.
func NewNonce() ([]byte, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	return nonce, nil
}

// Verdicts measures verdicts (core/verdict).
type Verdicts interface {
	// Measure measures the verdict of rawBundle, which b is decoded.
	Measure(ctx context.Context, rawBundle []byte, b *bundle.Bundle) error
	Problem() error
}

// verdictTimeout bounds one verdict measurement.
const verdictTimeout = 60 * time.Second

// Engine runs attestations. Its methods are safe for concurrent use.
type Engine struct {
	logger    hclog.Logger
	version   string
	now       func() time.Time
	audit     *trackedAuditor
	verdict   Verdicts
	fileTrust func(*policy.Policy) error

	snap atomic.Pointer[Snapshot]

	// mu guards the fields below it and the start of an attestation.
	mu           sync.Mutex
	policy       *policy.Policy
	policySHA256 string
	host         Host
	first        *First  // consumed by the first attestation; nil after a reload
	flight       *flight // the attestation running
	next         *flight // the refresh queued behind it
	closed       bool
	reloadErr    error // last refused reload, until a good one
	prevState    state.State
	seq          uint64
	counters     counters
	faults       map[string]uint64
	lastDone     time.Time
	// attestMu serialises attestations (one host.Measure at a time).
	attestMu sync.Mutex

	// What paces attestations after the first (pace.go); the tests
	// replace them.
	cpuTime func() (time.Duration, bool)
	sleep   func(context.Context, time.Duration)
}

type counters struct {
	attest, degrade, fail, refresh uint64
}

// flight is one attestation that callers may join.
type flight struct {
	done chan struct{}
	snap Snapshot
	err  error
	// measuring: its measurement has begun (or was taken at the daemon's
	// start), so it cannot answer a refresh asked after that. Guarded by
	// the engine's mu.
	measuring bool
	// waiting counts the refreshes (POST /api/v1/refresh) waiting for it
	// now: while any is, it takes no pause (pace.go), since its caller
	// waits; a refresh whose caller gave up no longer counts. Guarded by
	// the engine's mu.
	waiting int
}

// awaited reports whether a refresh is waiting for f.
func (e *Engine) awaited(f *flight) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return f.waiting > 0
}

// leave is a refresh that stops waiting for f before it is done.
func (e *Engine) leave(f *flight) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f.waiting--
}

// New returns an engine in state pending.
func New(opts Options) (*Engine, error) {
	if opts.Policy == nil || opts.Host == nil {
		return nil, errors.New("engine: policy and host are required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	e := &Engine{
		logger:       logger,
		version:      opts.Version,
		now:          now,
		policy:       opts.Policy,
		policySHA256: opts.PolicySHA256,
		host:         opts.Host,
		first:        opts.First,
		prevState:    state.Pending,
		faults:       map[string]uint64{},
		verdict:      opts.Verdicts,
		fileTrust:    opts.FileTrust,
		cpuTime:      processCPU,
		sleep:        sleepCtx,
	}
	if opts.Audit != nil {
		e.audit = &trackedAuditor{a: opts.Audit}
	}
	e.snap.Store(&Snapshot{State: state.Pending})
	return e, nil
}

// Snapshot returns the state as of the last finished attestation. It never
// blocks on a running attestation.
func (e *Engine) Snapshot() Snapshot { return *e.snap.Load() }

// Auditor returns the audit log wrapped so that a failed write by anyone
// (the API's refresh records too) becomes a core.audit_write finding in the
// next bundle. Nil when the engine has no audit log.
func (e *Engine) Auditor() Auditor {
	if e.audit == nil {
		return nil
	}
	return e.audit
}

// Refresh runs an attestation, or joins the one already running, and returns
// the snapshot it produced. The attestation itself is not cancelled when ctx
// is: other callers may be waiting on it.
func (e *Engine) Refresh(ctx context.Context) (Snapshot, error) {
	f, err := e.start(true)
	if err != nil {
		return Snapshot{}, err
	}
	select {
	case <-f.done:
		return f.snap, f.err
	case <-ctx.Done():
		e.leave(f)
		return Snapshot{}, fmt.Errorf("wait for attestation: %w", ctx.Err())
	}
}

// Attest runs (or joins) one attestation and waits for it.
func (e *Engine) Attest(ctx context.Context) (Snapshot, error) {
	f, err := e.start(false)
	if err != nil {
		return Snapshot{}, err
	}
	select {
	case <-f.done:
		return f.snap, f.err
	case <-ctx.Done():
		return Snapshot{}, ctx.Err()
	}
}

// waits is how many refreshes a caller of start adds to its flight's
// waiting count.
func waits(refresh bool) int {
	if refresh {
		return 1
	}
	return 0
}

// ErrClosed is returned once the engine is closed.
var ErrClosed = errors.New("engine is shut down")

// start returns the attestation a caller waits for. A periodic attestation
// joins the one running. A refresh joins it only while its measurement has
// not begun (one that will use the start-time measurement, e.first, has
// begun from its creation): a refresh asked after that (after the operator changed a file,
// say) must be answered by a measurement made after it, so it is queued
// as the next attestation, which every later caller joins until it runs.
func (e *Engine) start(refresh bool) (*flight, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if e.next != nil {
		e.next.waiting += waits(refresh)
		return e.next, nil
	}
	if e.flight != nil && (!refresh || !e.flight.measuring) {
		e.flight.waiting += waits(refresh)
		return e.flight, nil
	}
	// While the start-time measurement is unconsumed, the next flight
	// answers with it: a measurement made before any refresh asked now,
	// so such a flight counts as measuring from its creation.
	f := &flight{done: make(chan struct{}), measuring: e.first != nil, waiting: waits(refresh)}
	if refresh {
		e.counters.refresh++
	}
	if prev := e.flight; prev != nil {
		e.next = f
		go func() {
			<-prev.done
			e.mu.Lock()
			e.next = nil
			if e.closed {
				e.mu.Unlock()
				f.err = ErrClosed
				close(f.done)
				return
			}
			e.flight = f
			e.mu.Unlock()
			e.fly(f)
		}()
		return f, nil
	}
	e.flight = f
	go e.fly(f)
	return f, nil
}

// fly runs the attestation f, the engine's flight, and ends it.
func (e *Engine) fly(f *flight) {
	f.snap, f.err = e.run(f)
	e.mu.Lock()
	e.flight = nil
	e.mu.Unlock()
	close(f.done)
}

// Run attests at once and then every refresh_interval until ctx is done.
// onVerdict, if not nil, is called after each attestation with its snapshot.
func (e *Engine) Run(ctx context.Context, onVerdict func(Snapshot)) {
	for {
		snap, err := e.Attest(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			e.logger.Error("attestation failed to run", "error", err)
		} else if onVerdict != nil {
			onVerdict(snap)
		}
		e.mu.Lock()
		interval := e.policy.RefreshInterval
		e.mu.Unlock()
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Healthy reports whether attestations are completing: the last one ended
// within two refresh intervals plus the attestation deadline. Before the
// first verdict the engine counts as healthy. The watchdog uses it.
func (e *Engine) Healthy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	if e.lastDone.IsZero() {
		return true
	}
	limit := 2*e.policy.RefreshInterval + e.policy.AttestationTimeout
	return e.now().Sub(e.lastDone) <= limit
}

// Reload swaps in a new policy and plugin host (already started) between two
// attestations and closes the old host. The failed state still latches.
func (e *Engine) Reload(p *policy.Policy, policySHA256 string, h Host) {
	e.attestMu.Lock()
	e.mu.Lock()
	old := e.host
	e.policy, e.policySHA256, e.host, e.first = p, policySHA256, h, nil
	e.reloadErr = nil
	e.mu.Unlock()
	e.attestMu.Unlock()
	old.Close()
	e.record("policy_reload", map[string]any{"accepted": true, "policy_sha256": policySHA256})
}

// ReloadRefused records a policy reload that was refused: the old policy
// stays, and every bundle carries a core.policy_reload finding until a good
// policy is loaded.
func (e *Engine) ReloadRefused(err error) {
	e.mu.Lock()
	e.reloadErr = err
	e.mu.Unlock()
	e.record("policy_reload", map[string]any{"accepted": false, "error": err.Error()})
}

// Close waits for a running attestation, stops the plugins and refuses
// further attestations.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	f := e.flight
	e.mu.Unlock()
	if f != nil {
		<-f.done
	}
	e.attestMu.Lock()
	e.host.Close()
	e.attestMu.Unlock()
}

func (e *Engine) record(typ string, data any) {
	if e.audit == nil {
		return
	}
	if err := e.audit.Append(typ, data); err != nil {
		e.logger.Error("audit record not written", "type", typ, "error", err)
	}
}

// run performs one attestation, stage by stage (attestation.go): take the
// engine's state, measure, merge, add the daemon's own findings, seal,
// write the audit trail, publish.
func (e *Engine) run(f *flight) (Snapshot, error) {
	e.attestMu.Lock()
	defer e.attestMu.Unlock()
	t := e.beginTurn(f)
	if err := e.measure(t); err != nil {
		return Snapshot{}, err
	}
	e.mergeResults(t)
	e.coreFindings(t)
	if err := e.seal(t); err != nil {
		return Snapshot{}, err
	}
	if err := e.auditTurn(t); err != nil {
		return Snapshot{}, err
	}
	return e.publishTurn(t), nil
}

func (e *Engine) writeAudit(results []pluginhost.Result, digest string, b *bundle.Bundle, prev, st state.State, score int) error {
	for _, r := range results {
		if r.Fault == "" {
			continue
		}
		msg := ""
		if len(r.Findings) > 0 {
			msg = r.Findings[0].Message
		}
		if err := e.audit.Append("plugin_fault", map[string]any{
			"sequence": b.Sequence, "plugin": r.Name, "fault": r.Fault, "message": msg,
		}); err != nil {
			return err
		}
	}
	if err := e.audit.Append("attestation", map[string]any{
		"sequence":      b.Sequence,
		"state":         st,
		"score":         score,
		"bundle_digest": digest,
		"signed":        b.BundleHMAC != "",
		"nonce":         b.Nonce,
		"failures":      b.Failures,
	}); err != nil {
		return err
	}
	if prev != st {
		if err := e.audit.Append("state_change", map[string]any{"sequence": b.Sequence, "from": prev, "to": st}); err != nil {
			return err
		}
	}
	return nil
}

// auditHead returns the audit log's last seq and line hash, when the log
// tells them (*audit.Log does), after writing what is queued, so that the
// head signed into the bundle covers every record before the attestation.
// flushErr is why queued records are still not written (also when the log
// cannot say).
func (e *Engine) auditHead() (seq uint64, hash string, flushErr error) {
	if e.audit == nil {
		return 0, "", nil
	}
	flushErr = errors.New("the audit log cannot write its queue on demand")
	if f, ok := e.audit.a.(interface{ Flush() error }); ok {
		if flushErr = f.Flush(); flushErr != nil {
			e.logger.Warn("audit log: queued records still not written", "error", flushErr)
		}
	}
	if h, ok := e.audit.a.(interface{ Head() (uint64, string) }); ok {
		seq, hash = h.Head()
	}
	return seq, hash, flushErr
}

func (e *Engine) publish(raw json.RawMessage, b *bundle.Bundle, results []pluginhost.Result, st state.State, score int, auditSeq uint64, auditHash string) Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	prev := e.prevState
	e.prevState = st
	e.lastDone = e.now()
	e.counters.attest++
	switch st {
	case state.Degraded:
		e.counters.degrade++
	case state.Failed:
		e.counters.fail++
	}
	s := Snapshot{
		State:            st,
		Bundle:           raw,
		TPMAvailable:     deref(b.TPMAvailable),
		TPMQuoteVerified: deref(b.TPMQuoteVerified),
		SecureBoot:       deref(b.BootMeasurements.SecureBoot),
		PolicyDigest:     deref(b.PolicyDigest),
		DeploymentDigest: deref(b.DeploymentDigest),
		ServiceCount:     len(b.ServiceDigests),
		FailureCount:     len(b.Failures),
		Score:            score,
		LastAttested:     e.lastDone,
		AttestCount:      e.counters.attest,
		DegradeCount:     e.counters.degrade,
		FailCount:        e.counters.fail,
		RefreshCount:     e.counters.refresh,
		AuditLastSeq:     auditSeq,
		AuditLastHash:    auditHash,
		Latched:          latchOf(e.snap.Load().Latched, prev, st, b, score, e.lastDone),
	}
	if e.audit != nil {
		s.AuditWriteFailures = e.audit.failures.Load()
	}
	for _, r := range results {
		if r.Fault != "" {
			e.faults[r.Name]++
		}
		s.Plugins = append(s.Plugins, PluginStatus{
			Name: r.Name, Version: r.Version, Duration: r.Duration, Fault: r.Fault,
			FaultCount: e.faults[r.Name], Findings: len(b.Checks[r.Name].Findings), Confinement: r.Confinement,
		})
	}
	e.snap.Store(&s)
	return s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// loadSigner loads the signing key at path; nil, nil when none is
// configured.
func loadSigner(path string) (*identity.Signer, error) {
	if path == "" {
		return nil, nil
	}
	return identity.Load(path)
}

// readKey reads the HMAC key; it must exist, be readable and hold at least
// MinHMACKeyBytes bytes.
func readKey(path string) ([]byte, error) {
	key, err := regfile.Read(path, maxHMACKeyBytes) // a FIFO is refused, never waited on
	if err != nil {
		return nil, fmt.Errorf("read HMAC key: %w", err)
	}
	switch {
	case len(key) < MinHMACKeyBytes:
		return nil, fmt.Errorf("HMAC key %s holds %d bytes, fewer than the %d required", path, len(key), MinHMACKeyBytes)
	}
	return key, nil
}

// trackedAuditor remembers the last failed write so that the next bundle
// can say so.
type trackedAuditor struct {
	a        Auditor
	mu       sync.Mutex
	err      error
	failures atomic.Uint64 // failed writes since start, for /metrics
}

func (t *trackedAuditor) Append(typ string, data any) error {
	err := t.a.Append(typ, data)
	if err != nil {
		t.failures.Add(1)
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
	}
	return err
}

func (t *trackedAuditor) takeErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.err
	t.err = nil
	return err
}
