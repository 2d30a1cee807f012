package engine

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// turn is one attestation on its way through the stages of run, in the
// order they fill it.
type turn struct {
	// Taken from the engine under mu by beginTurn.
	p         *policy.Policy
	polSHA    string
	host      Host
	reloadErr error
	prev      state.State
	first     *First
	seq       uint64
	// pace: attestations ran before this one, which is then paced to
	// the policy's attestation_cpu_percent (the first one never is), but
	// for the pauses that come while a refresh waits for it (awaited).
	pace    bool
	pacer   *pacer
	awaited func() bool

	// measure
	nonce   []byte
	results []pluginhost.Result

	// mergeResults and coreFindings
	b       *bundle.Bundle
	all     []attributed
	key     []byte
	keyErr  error
	signer  *identity.Signer
	signErr error

	// seal
	raw    json.RawMessage
	digest string // of the canonical bundle in raw
	st     state.State
	score  int
}

// beginTurn takes what the attestation needs from the engine, consumes the
// first measurement and numbers the attestation. From here on f answers no
// refresh asked later.
func (e *Engine) beginTurn(f *flight) *turn {
	e.mu.Lock()
	defer e.mu.Unlock()
	f.measuring = true
	t := &turn{p: e.policy, polSHA: e.policySHA256, host: e.host, reloadErr: e.reloadErr, prev: e.prevState, first: e.first}
	e.first = nil
	e.seq++
	t.seq = e.seq
	t.pace = e.counters.attest > 0 && t.p.AttestationCPUPercent > 0
	t.awaited = func() bool { return e.awaited(f) }
	return t
}

// measure takes the first measurement when the daemon's start took one, or
// asks the host for a round under a fresh nonce.
func (e *Engine) measure(t *turn) error {
	if t.first != nil {
		t.nonce, t.results = t.first.Nonce, t.first.Results
		return nil
	}
	nonce, err := NewNonce()
	if err != nil {
		return err
	}
	// The host reports every plugin cut short by this deadline
	// (core.attestation_timeout, one finding per plugin).
	ctx, cancel := context.WithTimeout(context.Background(), t.p.AttestationTimeout)
	defer cancel()
	if t.pace {
		t.pacer = newPacer(float64(t.p.AttestationCPUPercent)/100, e.cpuTime, e.now, e.sleep)
		if t.pacer != nil {
			t.pacer.awaited = t.awaited
		}
		ctx = pluginhost.WithPause(ctx, t.pacer.pause)
	}
	t.nonce, t.results = nonce, t.host.Measure(ctx, nonce)
	// Sealing a large bundle is the next burst of CPU.
	t.pacer.pause(ctx)
	return nil
}

// mergeResults starts the bundle and merges the plugins' results into it.
func (e *Engine) mergeResults(t *turn) {
	t.b = &bundle.Bundle{
		BundleVersion:   bundle.Version,
		AttestorVersion: e.version,
		Sequence:        t.seq,
		Nonce:           hex.EncodeToString(t.nonce),
	}
	if t.polSHA != "" {
		t.b.AttestationPolicySHA256 = bundle.Ptr(t.polSHA)
	}
	t.all = merge(t.b, t.results, t.p.SeverityOverrides)
	t.all = append(t.all, secureBootFromLog(t.b, t.p.RequireSecureBoot, t.p.SeverityOverrides)...)
}

// addCore adds a finding of the daemon itself, under the policy's
// severity overrides.
func (t *turn) addCore(code string, sev sdk.Severity, subject, format string, args ...any) {
	t.all = append(t.all, attributed{plugin: "core", Finding: override(sdk.Finding{
		Code: code, Severity: sev, Subject: subject, Message: fmt.Sprintf(format, args...),
	}, t.p.SeverityOverrides)})
}

// coreFindings loads the keys and adds the daemon's own findings: a refused
// reload, files that others can replace, missing keys, a verdict not
// measured, audit records not written, and the audit head.
func (e *Engine) coreFindings(t *turn) {
	if t.reloadErr != nil {
		t.addCore("core.policy_reload", sdk.SeverityMedium, "policy", "a policy reload was refused and the previous policy is still in force: %v", t.reloadErr)
	}
	if e.fileTrust != nil {
		if err := e.fileTrust(t.p); err != nil {
			t.addCore("core.file_trust", sdk.SeverityHigh, "files", "a file the daemon trusts can be replaced by someone else now: %v", err)
		}
	}
	if t.key, t.keyErr = readKey(t.p.HMACKeyPath); t.keyErr != nil {
		t.addCore("core.hmac_key", sdk.SeverityHigh, t.p.HMACKeyPath, "bundle is unsigned: %v", t.keyErr)
	}
	if t.signer, t.signErr = loadSigner(t.p.SigningKeyPath); t.signErr != nil {
		t.addCore("core.signing_key", sdk.SeverityHigh, t.p.SigningKeyPath, "bundle has no bundle_signature: %v", t.signErr)
	}
	if e.verdict != nil {
		if err := e.verdict.Problem(); err != nil {
			t.addCore("core.verdict_measurement", sdk.SeverityMedium, "tpm", "a verdict could not be measured into the TPM: %v", err)
		}
	}
	if e.audit == nil {
		return
	}
	// Low: a record that is not this attestation's (a refused request, a
	// start) could not be written; it stays queued behind nothing that
	// matters. Medium only when this attestation's own records fail
	// (auditTurn).
	err := e.audit.takeErr()
	seq, hash, flushErr := e.auditHead()
	if err != nil && flushErr != nil {
		// Written since, nothing lost: no finding.
		t.addCore("core.audit_write", sdk.SeverityLow, "audit", "an audit record could not be written (it stays queued): %v", err)
	}
	if hash != "" {
		t.b.AuditHead = &bundle.AuditHead{Seq: seq, Hash: hash}
	}
}

// seal weighs the findings into a state and score and signs the bundle.
// It is canonicalised once: the signature (before the HMAC, which covers
// bundle_signature), the HMAC, the digest and the bytes served.
func (e *Engine) seal(t *turn) error {
	st, score := state.Evaluate(findingsOf(t.all), state.Weights(t.p.SeverityWeights), state.Thresholds(t.p.Thresholds))
	if (t.keyErr != nil || t.signErr != nil) && st == state.Attested {
		st = state.Degraded // an unsigned bundle is never attested
	}
	st = state.Next(t.prev, st)
	t.b.State, t.b.Score = st, score
	t.b.Failures = failures(t.all)
	t.b.Timestamp = bundle.FormatTime(e.now())
	var bs bundle.Signer
	if t.signer != nil {
		bs = t.signer
	}
	var k []byte
	if t.keyErr == nil {
		k = t.key
	}
	sealed, err := t.b.Seal(bs, k)
	if err != nil {
		return fmt.Errorf("encode bundle: %w", err)
	}
	t.raw, t.digest, t.st, t.score = sealed.Raw, sealed.Digest, st, score
	return nil
}

// auditTurn writes the attestation's audit records. When they cannot be
// written the bundle says so: it is sealed again with a medium finding.
func (e *Engine) auditTurn(t *turn) error {
	if e.audit == nil {
		return nil
	}
	aerr := e.writeAudit(t.results, t.digest, t.b, t.prev, t.st, t.score)
	if aerr == nil {
		return nil
	}
	e.logger.Error("audit log write failed; the bundle says so", "error", aerr)
	e.audit.takeErr()
	// One finding says it: this one replaces a low one about an earlier
	// record, still queued behind the same failure.
	kept := t.all[:0]
	for _, a := range t.all {
		if a.plugin != "core" || a.Code != "core.audit_write" {
			kept = append(kept, a)
		}
	}
	t.all = kept
	t.addCore("core.audit_write", sdk.SeverityMedium, "audit", "the audit record of this attestation could not be written: %v", aerr)
	return e.seal(t)
}

// publishTurn publishes the snapshot readers take and measures the verdict
// into the TPM (a failure is in the next bundle).
func (e *Engine) publishTurn(t *turn) Snapshot {
	auditSeq, auditHash, _ := e.auditHead()
	snap := e.publish(t.raw, t.b, t.results, t.st, t.score, auditSeq, auditHash)
	if e.verdict != nil {
		vctx, vcancel := context.WithTimeout(context.Background(), verdictTimeout)
		_ = e.verdict.Measure(vctx, t.raw, t.b) // a failure is in the next bundle
		vcancel()
	}
	e.logger.Info("attestation done", "sequence", t.seq, "state", t.st, "score", t.score, "failures", len(t.b.Failures))
	return snap
}
