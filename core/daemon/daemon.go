// Package daemon is the runtime-attestor executable's life cycle: load and
// check the policy, start the plugins, open the audit log, serve the API,
// attest periodically, reload on SIGHUP and shut down cleanly on SIGTERM.
// cmd/runtime-attestor is a thin main around Main.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/core/sdnotify"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/core/verdict"
	"github.com/secure-ai/runtime-attestor/internal/regfile"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Exit codes. With --once: 0 attested, 1 degraded, 2 failed, 3 could not
// run. As a daemon: 0 after a clean shutdown, 3 when it could not start.
const (
	ExitAttested = 0
	ExitDegraded = 1
	ExitFailed   = 2
	ExitNoRun    = 3
)

// maxTokenBytes bounds how much of the API token file is read.
const maxTokenBytes = 64 << 10

// Version is the daemon's version, set by the build.
var Version = "0.1.0"

// Main runs the daemon with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("runtime-attestor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", policy.DefaultPath, "attestation policy `file`")
	once := fs.Bool("once", false, "attest once, print the signed bundle to stdout and exit (0 attested, 1 degraded, 2 failed, 3 could not run); writes no audit record")
	logJSON := fs.Bool("log-json", false, "log as JSON lines instead of text")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // -h, --help: the usage was asked for
			return 0
		}
		return ExitNoRun
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "runtime-attestor: unexpected argument %q\n", fs.Arg(0))
		return ExitNoRun
	}
	if *showVersion {
		fmt.Fprintln(stdout, "runtime-attestor", Version)
		return 0
	}
	// Absolute, so that the sandbox rules and reloads name the same file
	// whatever the working folder.
	if abs, err := filepath.Abs(*configPath); err == nil {
		*configPath = abs
	}
	pol, polSHA, err := loadPolicy(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "runtime-attestor: %v\n", err)
		return ExitNoRun
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "runtime-attestor",
		Level:      hclog.LevelFromString(pol.LogLevel),
		Output:     stderr,
		JSONFormat: *logJSON,
	})
	d := &daemon{path: *configPath, logger: logger, stdout: stdout, stderr: stderr,
		declarer: pluginhost.NewDeclarer(declarerOptions(pol, logger.Named("declare")))}
	if *once {
		return d.once(pol, polSHA)
	}
	return d.serve(pol, polSHA)
}

type daemon struct {
	path           string
	current        *policy.Policy       // the policy in force; changed only by reload
	applied        sandbox.Rules        // the sandbox in force, fixed at start
	declarer       *pluginhost.Declarer // the plugins' declarations, by executable and configuration
	notify         *sdnotify.Notifier
	logger         hclog.Logger
	stdout, stderr io.Writer
	grants         grantsMemo // the last policy's grants (grants.go)
}

// loadPolicy loads, validates and checks the files of the policy at path
// (the signing key included: a daemon whose policy names a key it cannot
// use does not start, and a reload naming one is refused) and returns it
// with the SHA-256 of the file's bytes.
func loadPolicy(path string) (*policy.Policy, string, error) {
	pol, err := policy.Load(path) // its errors name the file
	if err != nil {
		return nil, "", err
	}
	if err := pol.CheckFiles(); err != nil {
		return nil, "", fmt.Errorf("policy %s: %w", path, err)
	}
	if err := trustFiles(path, pol); err != nil {
		return nil, "", fmt.Errorf("policy %s: %w", path, err)
	}
	if err := signingKeyUsable(pol); err != nil {
		return nil, "", fmt.Errorf("policy %s: %w", path, err)
	}
	return pol, pol.SourceSHA256, nil
}

// startHost starts the plugins of pol. A plugin that refuses its
// configuration makes the policy bad: the host is closed and the error
// names the key.
func (d *daemon) startHost(pol *policy.Policy) (*pluginhost.Host, error) {
	h, _, err := d.startHostMeasuring(pol, false)
	return h, err
}

// startHostMeasuring is startHost that, when measure is set, also takes
// the first measurement in the same start of each plugin, for the
// engine's first attestation.
func (d *daemon) startHostMeasuring(pol *policy.Policy, measure bool) (*pluginhost.Host, *engine.First, error) {
	gctx, gcancel := context.WithTimeout(context.Background(), pol.AttestationTimeout)
	grants, err := d.grantsFor(gctx, pol)
	gcancel()
	if err != nil {
		return nil, nil, err
	}
	specs, err := pluginSpecs(pol, grants)
	if err != nil {
		return nil, nil, err
	}
	h := pluginhost.New(pluginhost.Options{
		Dir:            pol.PluginDir,
		Plugins:        specs,
		RunUnlisted:    pol.RunUnlistedPlugins,
		Resident:       pol.ResidentPlugins,
		DefaultTimeout: pol.PluginTimeout,
		MaxParallel:    pol.MaxParallelPlugins,
		Logger:         d.logger.Named("plugins"),
		LogLevel:       pol.LogLevel,
		SocketDir:      socketDir(),
		Digests:        d.declarer.Digests(),
		CheckGrant:     grantCheck(pol),
	})
	ctx, cancel := context.WithTimeout(context.Background(), pol.AttestationTimeout)
	defer cancel()
	if !measure {
		if err := h.Start(ctx); err != nil {
			h.Close()
			return nil, nil, err
		}
		return h, nil, nil
	}
	nonce, err := engine.NewNonce()
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	results, err := h.StartMeasure(ctx, nonce)
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	return h, &engine.First{Nonce: nonce, Results: results}, nil
}

// pluginSpecs is what the plugin host runs: every built-in, then every
// plugin the policy names, each with its grant and what its declaration
// told.
func pluginSpecs(pol *policy.Policy, grants grants) ([]pluginhost.Spec, error) {
	specs := make([]pluginhost.Spec, 0, len(pol.Plugins)+len(builtin.Names()))
	seen := map[string]bool{}
	add := func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		cfg, err := pol.PluginConfigJSON(name)
		if err != nil {
			return err
		}
		pp := pol.Plugins[name]
		var declSHA string
		var desc *sdk.Description
		if decl := grants.declared[name]; decl != nil {
			declSHA, desc = decl.SHA256, &decl.Description
		}
		specs = append(specs, pluginhost.Spec{
			Name:       name,
			Enabled:    pol.PluginEnabled(name),
			SHA256:     pp.SHA256,
			Timeout:    pol.PluginTimeoutFor(name),
			ConfigJSON: cfg,
			Sandbox:    grants.rules[name],
			Notices:    grants.notices[name],
			// The executable whose declaration the grant holds.
			DeclaredSHA256: declSHA,
			Description:    desc,
			Builtin:        policy.IsBuiltin(name),
		})
		return nil
	}
	for _, name := range builtin.Names() {
		if err := add(name); err != nil {
			return nil, err
		}
	}
	for name := range pol.Plugins {
		if err := add(name); err != nil {
			return nil, err
		}
	}
	return specs, nil
}

func (d *daemon) once(pol *policy.Policy, polSHA string) int {
	if _, err := d.restrict(pol, ""); err != nil {
		fmt.Fprintf(d.stderr, "runtime-attestor: policy %s: %v\n", d.path, err)
		return ExitNoRun
	}
	h, first, err := d.startHostMeasuring(pol, true)
	if err != nil {
		fmt.Fprintf(d.stderr, "runtime-attestor: policy %s: %v\n", d.path, err)
		return ExitNoRun
	}
	e, err := engine.New(engine.Options{Policy: pol, PolicySHA256: polSHA, Host: h, Logger: d.logger, Version: Version, First: first})
	if err != nil {
		h.Close()
		fmt.Fprintf(d.stderr, "runtime-attestor: %v\n", err)
		return ExitNoRun
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), pol.AttestationTimeout+10*time.Second)
	defer cancel()
	snap, err := e.Attest(ctx)
	if err != nil {
		fmt.Fprintf(d.stderr, "runtime-attestor: attest: %v\n", err)
		return ExitNoRun
	}
	if _, err := fmt.Fprintf(d.stdout, "%s\n", snap.Bundle); err != nil {
		return ExitNoRun
	}
	switch snap.State {
	case state.Attested:
		return ExitAttested
	case state.Degraded:
		return ExitDegraded
	default:
		return ExitFailed
	}
}

// verdictStatus is the one-line STATUS= the service manager shows.
func verdictStatus(s engine.Snapshot) string {
	return fmt.Sprintf("%s (score %d, %d failures, attestation %d)", s.State, s.Score, s.FailureCount, s.AttestCount)
}

func readToken(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := regfile.Read(path, maxTokenBytes)
	if err != nil {
		return nil, fmt.Errorf("read API token %s: %w", path, err)
	}
	tok := []byte(strings.TrimSpace(string(raw)))
	if err := apitypes.ValidateToken(tok); err != nil {
		return nil, fmt.Errorf("API token %s: %w", path, err)
	}
	return tok, nil
}

// serve runs the daemon until SIGTERM or SIGINT (or the API server fails):
// start the parts, serve the API, attest periodically, then stop in order.
func (d *daemon) serve(pol *policy.Policy, polSHA string) int {
	d.current = pol
	// The signals are caught before anything can announce the daemon (the
	// API's port, READY=1): a SIGHUP or SIGTERM sent the moment it looks
	// started must not meet the signal's default action, the end of the
	// process. They are acted on once the start is done.
	sigs := newSignals()
	defer sigs.stop()
	p, err := d.startParts(pol, polSHA)
	if err != nil {
		p.abort()
		fmt.Fprintf(d.stderr, "runtime-attestor: %v\n", err)
		return ExitNoRun
	}
	defer p.log.Close()
	auditor := p.engine.Auditor()
	if err := auditor.Append("start", map[string]any{"version": Version, "policy": d.path, "policy_sha256": polSHA, "pid": os.Getpid()}); err != nil {
		d.logger.Error("audit record not written", "type", "start", "error", err)
	}
	srv := api.New(api.Options{
		Attestor:       p.engine,
		Audit:          auditor,
		Token:          p.token,
		Logger:         d.logger.Named("api"),
		RefreshTimeout: pol.AttestationTimeout + 30*time.Second,
		Identity:       p.identity,
	})
	serveErr := make(chan error, len(p.lns))
	for _, ln := range p.lns {
		go func() { serveErr <- srv.Serve(ln) }()
	}
	d.logger.Info("serving", "listen", addrs(p.lns), "socket_activation", p.inherited, "policy", d.path, "plugin_dir", pol.PluginDir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	runDone := d.attestPeriodically(ctx, p.engine, func() {
		close(ready)
		go d.verifyAuditHistory(ctx, p.log, pol)
	})
	go d.notify.Watchdog(ctx, p.engine.Healthy)
	code := d.waitForStop(sigs, ready, p.engine, srv, serveErr)

	// Stop in order: the attestation loop, the API, the plugins, and the
	// stop record last, so that it tells the final state.
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := srv.Shutdown(sctx); err != nil {
		d.logger.Warn("API shutdown", "error", err)
	}
	scancel()
	<-runDone
	p.engine.Close()
	if err := auditor.Append("stop", map[string]any{"pid": os.Getpid(), "state": p.engine.Snapshot().State}); err != nil {
		d.logger.Error("audit record not written", "type", "stop", "error", err)
	}
	return code
}

// parts are what serve starts before it serves, in the order it starts
// them. abort closes whatever of them has started when a later one fails.
type parts struct {
	token     []byte
	lns       []net.Listener
	inherited bool
	host      *pluginhost.Host
	log       *audit.Log
	identity  api.Identity
	engine    *engine.Engine
}

// abort closes the parts that started, the last first; the engine, when
// there is one, owns the host.
func (p *parts) abort() {
	if p.engine != nil {
		p.engine.Close()
	} else if p.host != nil {
		p.host.Close()
	}
	if p.log != nil {
		p.log.Close()
	}
	closeAll(p.lns)
}

// startParts reads the API token, opens the listeners, confines the daemon,
// starts the plugins with their first measurement, opens the audit log and
// builds the engine. On error the parts started so far are in the result,
// for abort.
func (d *daemon) startParts(pol *policy.Policy, polSHA string) (*parts, error) {
	p := &parts{}
	var err error
	if p.token, err = readToken(pol.APITokenPath); err != nil {
		return p, fmt.Errorf("policy %s: api_token_path: %w", d.path, err)
	}
	if p.lns, p.inherited, err = listeners(pol, d.logger); err != nil {
		return p, err
	}
	d.notify = sdnotify.New(d.logger.Named("sdnotify"))
	if d.applied, err = d.restrict(pol, d.notify.Socket()); err != nil {
		return p, fmt.Errorf("policy %s: %w", d.path, err)
	}
	var first *engine.First
	if p.host, first, err = d.startHostMeasuring(pol, true); err != nil {
		return p, fmt.Errorf("policy %s: %w", d.path, err)
	}
	// The history of the live file is checked after the first verdict
	// (verifyAuditHistory): a restart does not wait for it.
	p.log, err = audit.OpenOptions(pol.AuditLogPath, audit.Options{
		Logger: d.logger.Named("audit"), KeyPath: pol.AuditKeyPath, MaxBytes: int64(pol.AuditMaxBytes), DeferHistory: true,
	})
	if err != nil {
		p.log = nil
		return p, fmt.Errorf("audit log: %w", err)
	}
	var verdicts *verdict.Measurer
	p.identity, verdicts = d.identityFor(pol)
	p.engine, err = engine.New(engine.Options{Policy: pol, PolicySHA256: polSHA, Host: p.host, Audit: p.log, Logger: d.logger, Version: Version, Verdicts: verdicts,
		FileTrust: func(p *policy.Policy) error { return trustFiles(d.path, p) }, First: first})
	if err != nil {
		p.engine = nil
		return p, err
	}
	return p, nil
}

// attestPeriodically runs the engine's attestation loop until ctx ends and
// tells the service manager each verdict: READY=1 with the first, STATUS=
// after; afterFirst runs once READY=1 is sent. The channel closes when the
// loop has returned.
func (d *daemon) attestPeriodically(ctx context.Context, e *engine.Engine, afterFirst func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ready := false
		e.Run(ctx, func(s engine.Snapshot) {
			d.logger.Debug("verdict", "state", s.State, "score", s.Score)
			status := verdictStatus(s)
			var err error
			if !ready {
				err, ready = d.notify.Ready(status), true
				afterFirst()
			} else {
				err = d.notify.Status(status)
			}
			if err != nil {
				d.logger.Warn("sd_notify", "error", err)
			}
		})
	}()
	return done
}

// verifyAuditHistory checks the chain of the audit records the log
// resumed after without reading them, paced to attestation_cpu_percent
// (audit.Log.VerifyHistory): a break is logged and recorded then, as it is
// at the start of a log that is read whole.
func (d *daemon) verifyAuditHistory(ctx context.Context, l *audit.Log, pol *policy.Policy) {
	if err := l.VerifyHistory(ctx, float64(pol.AttestationCPUPercent)/100); err != nil && ctx.Err() == nil {
		d.logger.Error("audit log: the history of the live file could not be checked", "error", err)
	}
}

// signals are the signals serve acts on: SIGTERM and SIGINT on one
// channel, SIGHUP on another. One slot each: SIGHUPs that arrive during a
// reload make one more reload, and never crowd out a SIGTERM.
type signals struct {
	term, hup chan os.Signal
}

func newSignals() signals {
	s := signals{term: make(chan os.Signal, 1), hup: make(chan os.Signal, 1)}
	signal.Notify(s.term, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(s.hup, syscall.SIGHUP)
	return s
}

func (s signals) stop() {
	signal.Stop(s.term)
	signal.Stop(s.hup)
}

// waitForStop reloads the policy on each SIGHUP and returns the exit code
// on SIGTERM or SIGINT (0) or when the API server stops (ExitNoRun if it
// failed). A SIGHUP is acted on only once ready is closed (READY=1 sent
// with the first verdict): a reload's RELOADING=1 and READY=1 never come
// before it.
func (d *daemon) waitForStop(sigs signals, ready <-chan struct{}, e *engine.Engine, srv *api.Server, serveErr <-chan error) int {
	var hup <-chan os.Signal // nil until ready: a SIGHUP waits in its slot
	for {
		select {
		case <-ready:
			ready, hup = nil, sigs.hup
		case <-hup:
			d.reload(e, srv)
		case sig := <-sigs.term:
			d.logger.Info("shutting down", "signal", sig.String())
			if err := d.notify.Stopping(); err != nil {
				d.logger.Warn("sd_notify", "error", err)
			}
			return 0
		case err := <-serveErr:
			if err != nil && !errors.Is(err, context.Canceled) {
				d.logger.Error("API server stopped", "error", err)
				return ExitNoRun
			}
			return 0
		}
	}
}

// reload loads the policy again. A bad one is refused: the old policy and
// plugins stay, and the engine reports the refusal in every bundle until a
// good policy is loaded.
func (d *daemon) reload(e *engine.Engine, srv *api.Server) {
	running := d.current
	d.logger.Info("reloading policy", "policy", d.path)
	if err := d.notify.Reloading(); err != nil {
		d.logger.Warn("sd_notify", "error", err)
	}
	defer func() { // RELOADING=1 is answered by READY=1, whatever the outcome
		if err := d.notify.Ready(verdictStatus(e.Snapshot())); err != nil {
			d.logger.Warn("sd_notify", "error", err)
		}
	}()
	refuse := func(err error) {
		d.logger.Error("policy reload refused; keeping the running policy", "error", err)
		e.ReloadRefused(err)
		d.attestSoon(e, "refused reload")
	}
	pol, polSHA, err := loadPolicy(d.path)
	if err != nil {
		refuse(err)
		return
	}
	if pol.Listen != running.Listen {
		refuse(fmt.Errorf("policy %s: listen: changed from %s to %s; restart the daemon to move the API", d.path, running.Listen, pol.Listen))
		return
	}
	if pol.AllowRemoteListen != running.AllowRemoteListen {
		refuse(fmt.Errorf("policy %s: allow_remote_listen: changed; restart the daemon to change where the API may listen", d.path))
		return
	}
	if pol.AuditLogPath != running.AuditLogPath {
		refuse(fmt.Errorf("policy %s: audit_log_path: changed from %s to %s; restart the daemon to move the audit log", d.path, running.AuditLogPath, pol.AuditLogPath))
		return
	}
	if pol.AuditKeyPath != running.AuditKeyPath || pol.AuditMaxBytes != running.AuditMaxBytes {
		refuse(fmt.Errorf("policy %s: audit_key_path or audit_max_bytes: changed; restart the daemon to change how the audit log is kept", d.path))
		return
	}
	token, err := readToken(pol.APITokenPath)
	if err != nil {
		refuse(fmt.Errorf("policy %s: api_token_path: %w", d.path, err))
		return
	}
	if p, err := d.uncovered(d.applied, d.path, pol, d.notify.Socket()); err != nil {
		refuse(fmt.Errorf("policy %s: %w", d.path, err))
		return
	} else if p != "" {
		refuse(fmt.Errorf("policy %s: needs %s, which the sandbox fixed at start does not allow; restart the daemon to widen it", d.path, p))
		return
	}
	h, err := d.startHost(pol)
	if err != nil {
		refuse(fmt.Errorf("policy %s: %w", d.path, err))
		return
	}
	d.current = pol
	e.Reload(pol, polSHA, h)
	srv.SetToken(token)
	d.logger.Info("policy reloaded", "policy_sha256", polSHA)
	d.attestSoon(e, "reload")
}

// attestSoon starts an attestation in the background, so that the outcome
// of a reload shows in the bundle at once rather than at the next period.
func (d *daemon) attestSoon(e *engine.Engine, why string) {
	go func() {
		if _, err := e.Attest(context.Background()); err != nil && !errors.Is(err, engine.ErrClosed) {
			d.logger.Error("attestation after "+why, "error", err)
		}
	}()
}
