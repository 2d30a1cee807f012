package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Fault kinds (Result.Fault).
const (
	FaultMissing   = "missing"
	FaultUntrusted = "untrusted"
	FaultCrashed   = "crashed"
	FaultTimeout   = "timeout"
	FaultProtocol  = "protocol"
	FaultFailed    = "failed"
	FaultConfig    = "config"
)

// Core finding codes the host emits (docs/architecture.md).
const (
	CodeMissing   = "core.plugin_missing"
	CodeUntrusted = "core.plugin_untrusted"
	CodeCrashed   = "core.plugin_crashed"
	CodeTimeout   = "core.plugin_timeout"
	CodeProtocol  = "core.plugin_protocol"
	CodeFailed    = "core.plugin_failed"
	CodeConfig    = "core.plugin_config"
	// CodeAttestationTimeout is the finding for a plugin that had not
	// answered when the caller's context (the attestation's deadline)
	// ended; its Result.Fault is "timeout".
	CodeAttestationTimeout = "core.attestation_timeout"
	// CodeUnlisted (info) names an attestor-check-* executable in the
	// plugin directory that the policy does not list and that was not
	// started because run_unlisted_plugins is off.
	CodeUnlisted = "core.plugin_unlisted"
	// CodeUnconfined (medium) is added to every plugin's result when the
	// kernel has no Landlock: the plugin ran under seccomp and
	// no_new_privs, but its file access was not confined.
	CodeUnconfined = "core.plugin_unconfined"
	// CodeSandbox (info): the plugin's sandbox declaration could not be
	// read, a third-party plugin declares more than its policy grants (the
	// daemon adds these through Spec.Notices), or the executable changed
	// since it declared (Spec.DeclaredSHA256).
	CodeSandbox = "core.plugin_sandbox"
)

var faultCodes = map[string]string{
	FaultMissing:   CodeMissing,
	FaultUntrusted: CodeUntrusted,
	FaultCrashed:   CodeCrashed,
	FaultTimeout:   CodeTimeout,
	FaultProtocol:  CodeProtocol,
	FaultFailed:    CodeFailed,
	FaultConfig:    CodeConfig,
}

// DefaultSeverity returns the default severity of a core finding code the host
// emits (info for a code it does not emit).
func DefaultSeverity(code string) sdk.Severity {
	switch code {
	case CodeUntrusted:
		return sdk.SeverityCritical
	case CodeMissing, CodeCrashed, CodeTimeout, CodeProtocol, CodeFailed, CodeConfig, CodeAttestationTimeout:
		return sdk.SeverityHigh
	case CodeUnconfined:
		return sdk.SeverityMedium
	}
	return sdk.SeverityInfo
}

// fault is what went wrong with a plugin.
type fault struct {
	kind   string // Fault*
	code   string // "" = faultCodes[kind]
	msg    string
	closed bool // the host closed under the plugin; not the plugin's doing
}

func (f *fault) findingCode() string {
	if f.code != "" {
		return f.code
	}
	return faultCodes[f.kind]
}

// backingOff repeats f while the plugin waits for its next restart.
func (f *fault) backingOff(failures int, wait time.Duration) *fault {
	c := *f
	c.msg = fmt.Sprintf("%s; not restarted yet: %d consecutive failures, next attempt in %s", f.msg, failures, wait.Round(time.Millisecond))
	return &c
}

// faultResult turns f into res's one finding. Every fault passes here.
func (h *Host) faultResult(p *plugin, res Result, f *fault) Result {
	code := f.findingCode()
	res.Fault = f.kind
	res.Measurements = nil
	res.Findings = []sdk.Finding{{Code: code, Severity: DefaultSeverity(code), Message: f.msg, Subject: p.name}}
	h.log.Warn("plugin fault", "plugin", p.name, "code", code, "message", f.msg)
	return res
}

func attestationTimeout(ctx context.Context, when string) *fault {
	what := "the attestation's deadline passed"
	if errors.Is(ctx.Err(), context.Canceled) {
		what = "the attestation was cancelled"
	}
	return &fault{kind: FaultTimeout, code: CodeAttestationTimeout, msg: what + " " + when}
}

// classifyRPC turns the error of a call to a started plugin into a fault.
// callCtx is the call's own context (its timeout is limit, its deadline the
// earlier of that and the turn's), turnCtx the caller's.
//
// A timeout is named by the deadline that was binding: the turn's when it
// came no later than the call's own (core.attestation_timeout, no backoff),
// else the call's (core.plugin_timeout). Whether a deadline came is read
// from the clock as well as from the contexts: grpc's client turns the
// plugin's RST_STREAM(CANCEL) into DeadlineExceeded as soon as the clock is
// past the deadline, which can be before either context's timer has fired.
func (h *Host) classifyRPC(err error, op string, callCtx, turnCtx context.Context, limit time.Duration) *fault {
	var pe *wire.ProtocolError
	if errors.As(err, &pe) {
		return &fault{kind: FaultProtocol, msg: op + ": " + pe.Msg + "; the answer was discarded"}
	}
	var ce *checkrpc.CheckError
	if errors.As(err, &ce) {
		return &fault{kind: FaultFailed, msg: op + ": the check failed: " + clip(ce.Msg)}
	}
	st, _ := status.FromError(err)
	timedOut := deadlineCame(callCtx, time.Now())
	switch {
	case h.ctx.Err() != nil:
		return &fault{kind: FaultCrashed, msg: "the plugin host closed during " + op, closed: true}
	case errors.Is(turnCtx.Err(), context.Canceled):
		return attestationTimeout(turnCtx, "before the plugin answered "+op+"; plugin killed")
	case timedOut && turnBinds(turnCtx, callCtx):
		return attestationTimeout(turnCtx, "before the plugin answered "+op+"; plugin killed")
	case timedOut:
		return &fault{kind: FaultTimeout, msg: fmt.Sprintf("%s: no answer within %s; plugin killed with its process group, restarted at a later attestation", op, limit)}
	case st.Code() == codes.ResourceExhausted:
		return &fault{kind: FaultProtocol, msg: fmt.Sprintf("%s: answer larger than the %d-byte limit (%s)", op, h.opts.MaxAnswerBytes, clip(st.Message()))}
	case st.Code() == codes.Unavailable || st.Code() == codes.Canceled:
		return &fault{kind: FaultCrashed, msg: op + ": connection to the plugin lost"}
	case st.Code() == codes.Internal || st.Code() == codes.Unknown || st.Code() == codes.FailedPrecondition:
		return &fault{kind: FaultFailed, msg: op + ": " + clip(st.Message())}
	default:
		// Including DeadlineExceeded before any deadline came: the plugin
		// itself claimed it, no limit of the host's ran out.
		return &fault{kind: FaultProtocol, msg: fmt.Sprintf("%s: unexpected answer (%s: %s)", op, st.Code(), clip(st.Message()))}
	}
}

// deadlineCame reports whether ctx's deadline has come by now: ctx says so,
// or the clock is past the deadline (grpc's test; ctx's timer may lag).
func deadlineCame(ctx context.Context, now time.Time) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !d.After(now)
}

// turnBinds reports whether the turn's deadline bound the call: it came no
// later than the call's own. callCtx is derived from turnCtx, so its
// deadline is the earlier of the two and equals the turn's exactly when the
// turn's was not later.
func turnBinds(turnCtx, callCtx context.Context) bool {
	td, ok := turnCtx.Deadline()
	if !ok {
		return false
	}
	cd, ok := callCtx.Deadline()
	return !ok || !td.After(cd)
}

// startError is a failed go-plugin start, with what the host saw of it.
type startError struct {
	err    error
	status string   // how the process ended, "" if it never ran
	tail   []string // last lines of its stderr
}

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// handshakeRefusals are what go-plugin and the SDK print when the magic
// cookie does not match.
var handshakeRefusals = []string{
	"This binary is a plugin. These are not meant to be executed directly.",
	"this is a runtime-attestor check plugin; the runtime-attestor daemon starts it",
}

// classifyStart turns a failed start (process start and go-plugin
// handshake) into a fault.
func (h *Host) classifyStart(se *startError) *fault {
	msg := se.err.Error()
	exited := ""
	if se.status != "" {
		exited = " (" + se.status + ")"
	}
	var pathErr *fs.PathError
	switch {
	case launchFailure(se.tail) != "":
		return &fault{kind: FaultCrashed, msg: "the host could not confine and start the plugin: " + clip(launchFailure(se.tail)) + exited}
	case errors.As(se.err, &pathErr) && pathErr.Op == "fork/exec":
		return &fault{kind: FaultCrashed, msg: "cannot execute the plugin: " + clip(pathErr.Err.Error())}
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return &fault{kind: FaultTimeout, msg: fmt.Sprintf("no handshake within the %s start timeout; plugin killed with its process group", h.opts.StartTimeout)}
	case refusedHandshake(se.tail):
		return &fault{kind: FaultProtocol, msg: "the plugin refused the handshake (magic cookie mismatch): it is not a runtime-attestor check plugin, or one built for another protocol" + exited}
	case strings.Contains(msg, "plugin exited before we could connect"), strings.Contains(msg, "Failed to read any lines from plugin's stdout"):
		return &fault{kind: FaultCrashed, msg: "the plugin exited before the handshake" + exited}
	case strings.Contains(msg, "incompatible API version"), strings.Contains(msg, "incompatible core API version"):
		return &fault{kind: FaultProtocol, msg: "the plugin speaks a protocol version this daemon does not: " + clip(firstLine(msg))}
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		return &fault{kind: FaultProtocol, msg: "the plugin's first line on stdout is not a go-plugin handshake (stdout belongs to the protocol): " + clip(firstLine(msg))}
	default:
		return &fault{kind: FaultProtocol, msg: "bad handshake: " + clip(firstLine(msg))}
	}
}

// launchFailure returns what the launcher said when it could not confine
// and execute the plugin, "" when it did not.
func launchFailure(tail []string) string {
	for _, l := range tail {
		if _, after, ok := strings.Cut(l, launch.Failed); ok {
			return after
		}
	}
	return ""
}

func refusedHandshake(tail []string) bool {
	for _, l := range tail {
		for _, r := range handshakeRefusals {
			if strings.Contains(l, r) {
				return true
			}
		}
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// clip bounds text a plugin controls before it goes into a finding: at most
// 300 characters, control characters replaced.
func clip(s string) string {
	const limit = 300
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
