package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// plugin is one plugin the host knows, running or not.
type plugin struct {
	name   string
	path   string // Dir/attestor-check-<name>
	spec   Spec
	listed bool // named by Options.Plugins (else found by RunUnlisted)

	// badSpec says why the spec is invalid; such a plugin is never started.
	badSpec string

	cur atomic.Pointer[instance] // mirrors inst for PIDs

	mu            sync.Mutex // one turn at a time; guards what follows
	inst          *instance  // running instance, nil when none
	desc          sdk.Description
	descSHA       string    // the SHA-256 of the executable that gave desc; "" before any
	sha           string    // SHA-256 of the last verified binary
	failures      int       // consecutive failures (crash, timeout, failed start)
	lastStart     time.Time // last start attempt
	retryAt       time.Time // no start attempt before this
	last          *fault    // the fault that stopped the plugin, repeated while backing off
	configRefusal string    // what the plugin said when it last refused its config
}

func (p *plugin) timeout(def time.Duration) time.Duration {
	if p.spec.Timeout > 0 {
		return p.spec.Timeout
	}
	return def
}

// turn is one plugin's part of Start (measure false) or Measure. It runs
// the stages of a turn in the order they happen, each in one place:
//
//  1. admit (here): the spec is valid, the host open, time left;
//  2. trust (trust.go identify, verify): the file on disk is the one to
//     run, or a running instance still runs it (keep);
//  3. spawn (proc.go): the verified descriptor started confined;
//  4. handshake (here): describe and configure;
//  5. measure (here), when measure is set;
//  6. classify (fault.go faultResult, from finish): whatever went wrong
//     becomes the result's one finding.
//
// It runs on a worker, so a start forks from a locked thread.
func (h *Host) turn(ctx context.Context, p *plugin, nonce []byte, measure bool) Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !h.opts.Resident {
		defer h.endOnDemand(p) // on demand: the process lives for this turn only
	}
	res := Result{Name: p.name, Path: p.path, Started: h.now()}

	// The caller's ctx bounds the turn; Close cancels it too.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(h.ctx, cancel)()

	f := h.admit(ctx, p) // 1
	if f == nil {
		f = h.ensure(tctx, p, measure) // 2-4
	}
	if f == nil && measure {
		f = h.measure(tctx, p, nonce, &res) // 5
	}
	return h.finish(p, res, f) // 6
}

// admit is stage 1: whether the turn may start a plugin at all.
func (h *Host) admit(ctx context.Context, p *plugin) *fault {
	switch {
	case p.badSpec != "":
		return &fault{kind: FaultConfig, msg: "invalid plugin spec: " + p.badSpec}
	case h.ctx.Err() != nil:
		return &fault{kind: FaultCrashed, msg: "the plugin host is closed"}
	case ctx.Err() != nil:
		return attestationTimeout(ctx, "before the plugin's turn came")
	}
	return nil
}

// ensure is stages 2 to 4: it makes p run the verified binary now on
// disk. A running instance whose file is unchanged is kept (keep);
// otherwise the file is verified (trust.go) and launched (spawn and
// handshake). A nil fault means p.inst is ready to measure.
func (h *Host) ensure(ctx context.Context, p *plugin, measure bool) *fault {
	if in := p.inst; in != nil && in.client.Exited() {
		h.dropExited(p, in)
	}
	if p.inst != nil {
		bf, f := h.keep(p)
		if f != nil || bf == nil {
			return f
		}
		return h.launch(ctx, p, bf)
	}
	if measure && p.last != nil {
		if wait := p.retryAt.Sub(h.now()); wait > 0 {
			return p.last.backingOff(p.failures, wait)
		}
	}
	bf, f := h.verify(p)
	if f != nil {
		return f
	}
	if h.afterVerify != nil {
		h.afterVerify(p)
	}
	return h.launch(ctx, p, bf)
}

// dropExited forgets an instance whose process exited between turns and
// counts it as a crash for the backoff.
func (h *Host) dropExited(p *plugin, in *instance) {
	status := h.stop(p, in, false)
	h.log.Warn("plugin exited between attestations; it will be restarted", "plugin", p.name, "status", status)
	h.failed(p, &fault{kind: FaultCrashed, msg: "the plugin process exited between attestations (" + status + ")"})
}

// keep decides about p's running instance (resident plugins): nil, nil
// when the instance still runs the file on disk; a verified binary to
// restart on when the file changed; a fault, the instance stopped, when
// the file on disk can no longer be trusted.
func (h *Host) keep(p *plugin) (*binFile, *fault) {
	in := p.inst
	id, f := h.identify(p)
	if f != nil {
		h.stop(p, in, false)
		return nil, f
	}
	if id == in.bin.id {
		return nil, nil
	}
	bf, f := h.verify(p)
	if f != nil {
		h.stop(p, in, false)
		return nil, f
	}
	if bf.sha == in.bin.sha {
		in.bin.id = bf.id // touched, not changed
		bf.close()
		return nil, nil
	}
	h.log.Info("plugin binary changed on disk; restarting the plugin on it", "plugin", p.name, "old_sha256", in.bin.sha, "new_sha256", bf.sha)
	h.stop(p, in, true)
	return bf, nil
}

// launch starts bf as p's plugin, describes and configures it.
func (h *Host) launch(ctx context.Context, p *plugin, bf *binFile) *fault {
	defer bf.close()
	p.sha = bf.sha
	p.lastStart = h.now()
	p.configRefusal = ""
	in, f := h.spawn(p, bf)
	if f == nil {
		f = h.handshake(ctx, p, in)
	}
	if f == nil {
		p.inst = in
		p.cur.Store(in)
		h.log.Debug("plugin started", "plugin", p.name, "pid", in.pid, "version", in.desc.Version, "sha256", bf.sha, "pid_namespace", in.pidNS)
		return nil
	}
	if in != nil {
		if f.kind == FaultCrashed {
			in.waitExit(exitWait)
		}
		if status := h.stop(p, in, false); status != "" && f.kind == FaultCrashed {
			f.msg += " (" + status + ")"
		}
	}
	switch {
	case f.closed:
	case f.kind == FaultUntrusted:
		// Verified again at every attestation; no backoff.
	case f.code == CodeAttestationTimeout:
		p.last = nil
	default:
		h.failed(p, f)
	}
	return f
}

// handshake describes and configures a freshly started plugin.
func (h *Host) handshake(ctx context.Context, p *plugin, in *instance) *fault {
	sctx, cancel := context.WithTimeout(ctx, h.opts.StartTimeout)
	defer cancel()
	if f := h.describe(sctx, ctx, p, in); f != nil {
		return f
	}
	err := in.check.Configure(sctx, p.spec.ConfigJSON)
	if err == nil {
		return nil
	}
	var ce *sdk.ConfigError
	if errors.As(err, &ce) {
		p.configRefusal = ce.Msg
		return &fault{kind: FaultConfig, msg: "the plugin refused its configuration: " + clip(ce.Msg)}
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.FailedPrecondition && sctx.Err() == nil {
		// Configure returned another error, or the SDK could not apply the
		// check's sandbox: not a policy error, but the plugin cannot run.
		return &fault{kind: FaultConfig, msg: "configure failed: " + clip(st.Message())}
	}
	return h.classifyRPC(err, "configure", sctx, ctx, h.opts.StartTimeout)
}

// describe learns what the plugin is. The same executable (the same
// verified digest) describes itself the same way: its description is
// asked once per daemon run, or not at all when its declare run gave it
// (Spec.Description); any other file is asked. Its name must be the
// file's.
func (h *Host) describe(sctx, ctx context.Context, p *plugin, in *instance) *fault {
	switch s := p.spec; {
	case p.descSHA != "" && p.descSHA == in.bin.sha:
		in.desc = p.desc
		return nil
	case s.Description != nil && s.DeclaredSHA256 != "" && s.DeclaredSHA256 == in.bin.sha:
		// Its name and rules were checked with the spec (loadSpecs).
		in.desc, p.desc, p.descSHA = *s.Description, *s.Description, in.bin.sha
		return nil
	}
	d, err := in.check.Describe(sctx)
	if err != nil {
		return h.classifyRPC(err, "describe", sctx, ctx, h.opts.StartTimeout)
	}
	if d.Name != p.name {
		return &fault{kind: FaultProtocol, msg: fmt.Sprintf("the plugin describes itself as %q, but its file is %s%s", d.Name, FilePrefix, p.name)}
	}
	in.desc, p.desc, p.descSHA = d, d, in.bin.sha
	return nil
}

// measure is stage 5: one measurement from the running instance, into res.
func (h *Host) measure(ctx context.Context, p *plugin, nonce []byte, res *Result) *fault {
	in := p.inst
	timeout := p.timeout(h.opts.DefaultTimeout)
	mctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := in.check.Measure(mctx, in.desc, nonce)
	if err != nil {
		f := h.classifyRPC(err, "measure", mctx, ctx, timeout)
		h.afterFault(p, in, f)
		return f
	}
	p.failures, p.last, p.retryAt = 0, nil, time.Time{}
	res.Measurements = m.Measurements
	res.Findings = m.Findings
	res.Confinement = h.confinement
	if h.unconfined {
		res.Findings = append(res.Findings, sdk.Finding{Code: CodeUnconfined, Severity: DefaultSeverity(CodeUnconfined), Subject: p.name,
			Message: "the kernel has no Landlock: the plugin ran under seccomp and no_new_privs, but nothing confined its file access"})
	}
	return nil
}

// finish is stage 6: it completes res with what the turn learnt of the
// plugin and, when f is not nil, turns f into res's one finding.
func (h *Host) finish(p *plugin, res Result, f *fault) Result {
	res.Version, res.Fills, res.SHA256 = p.desc.Version, p.desc.Fills, p.sha
	if f != nil {
		res = h.faultResult(p, res, f)
	}
	res.Findings = append(res.Findings, p.spec.Notices...)
	if stale := h.staleDeclaration(p); stale != nil {
		res.Findings = append(res.Findings, *stale)
	}
	res.Duration = h.now().Sub(res.Started)
	return res
}

// endOnDemand stops an on-demand plugin's process at the end of its turn.
func (h *Host) endOnDemand(p *plugin) {
	if in := p.inst; in != nil {
		h.stop(p, in, true)
	}
}

// staleDeclaration is the finding for a plugin whose grant was declared
// by another executable than the one verified last, nil otherwise.
func (h *Host) staleDeclaration(p *plugin) *sdk.Finding {
	d := p.spec.DeclaredSHA256
	if d == "" || p.sha == "" || p.sha == d {
		return nil
	}
	return &sdk.Finding{Code: CodeSandbox, Severity: DefaultSeverity(CodeSandbox), Subject: p.name,
		Message: fmt.Sprintf("the executable changed since it declared its sandbox (sha256 %s, now %s): it runs with the grant the previous executable declared until the policy is reloaded (SIGHUP), which declares again", d, p.sha)}
}

// afterFault stops the instance when the fault leaves it useless and
// records the failure for the backoff.
func (h *Host) afterFault(p *plugin, in *instance, f *fault) {
	switch {
	case f.closed:
		// Close stops it.
	case f.kind == FaultProtocol || f.kind == FaultFailed:
		// The process is alive and answers; keep it.
	case f.kind == FaultCrashed:
		in.waitExit(exitWait)
		if status := h.stop(p, in, false); status != "" {
			f.msg += " (" + status + ")"
		}
		h.failed(p, f)
	case f.code == CodeAttestationTimeout:
		// Cut short by the attestation's deadline, not its own: kill it (it
		// may still be busy) and start it afresh next time, no backoff.
		h.stop(p, in, false)
		p.last = nil
	default: // timeout, config
		h.stop(p, in, false)
		h.failed(p, f)
	}
}

// failed records a failure that stopped the plugin.
func (h *Host) failed(p *plugin, f *fault) {
	p.failures++
	p.retryAt = p.lastStart.Add(h.delay(p.failures))
	p.last = f
}

// stop ends the instance and its whole process group or namespace, and
// returns how the process ended ("exit status 3", "signal: killed"), or ""
// when it never started. graceful first lets go-plugin ask the plugin to
// exit.
func (h *Host) stop(p *plugin, in *instance, graceful bool) string {
	if p.inst == in {
		p.inst = nil
		p.cur.Store(nil)
	}
	return h.shutdown(p.name, in, graceful)
}
