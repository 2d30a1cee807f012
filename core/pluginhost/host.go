package pluginhost

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/filter"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// FilePrefix starts the file name of every plugin executable.
const FilePrefix = "attestor-check-"

// Defaults for the zero values of Options.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultStartTimeout   = 10 * time.Second
	DefaultMaxParallel    = 2
	DefaultMaxAnswerBytes = 4 << 20
	DefaultLogLevel       = "info"
)

// Restart backoff: a dead plugin is restarted at the next attestation after
// its first failure; after the n-th consecutive failure (n >= 2) not before
// min(BackoffBase*2^(n-2), BackoffMax) has passed since its last start
// attempt. A measurement that succeeds resets the count.
const (
	BackoffBase = time.Second
	BackoffMax  = 60 * time.Second
)

const (
	// stopGrace is how long a graceful stop (Close, binary replaced) waits
	// for a plugin to exit after go-plugin asked it to, before SIGKILL.
	stopGrace = 3 * time.Second
	// reapWait is how long the host waits, after SIGKILL, for go-plugin to
	// reap a plugin. Only a descendant outside the plugin's PID namespace
	// that holds the plugin's output pipes can make it wait that long.
	reapWait = 5 * time.Second
	// exitWait is how long the host waits for a plugin whose connection
	// broke to exit by itself, so the finding tells its real exit status.
	exitWait = time.Second
)

// Spec is one plugin the policy names.
type Spec struct {
	Name       string        // plugin name (file attestor-check-<Name>)
	Enabled    bool          // start and measure it
	SHA256     string        // lowercase hex pin; "" = unpinned
	Timeout    time.Duration // 0 = Options.DefaultTimeout
	ConfigJSON []byte        // JSON object for Configure; nil = {}
	// Sandbox is everything the plugin process may touch, decided by the
	// daemon (for a built-in: its declaration under its configuration plus
	// plugins.<name>.sandbox; for any other plugin: plugins.<name>.sandbox
	// only). The host adds the plugin's own socket folder and imposes the
	// result before the plugin's first instruction. The zero value denies
	// every file, every TCP port and every non-Unix socket.
	Sandbox sandbox.Rules
	// Notices are findings the daemon adds to every result of the plugin
	// (core.plugin_sandbox: its declared sandbox could not be read, or
	// holds more than its grant).
	Notices []sdk.Finding
	// DeclaredSHA256 is the digest of the executable whose declaration
	// Sandbox holds ("" = none). When the executable the host verifies
	// has another digest (an unpinned plugin replaced since), each result
	// says so with a core.plugin_sandbox finding: the plugin runs with
	// the grant its predecessor declared until the daemon declares again
	// (at the next policy reload).
	DeclaredSHA256 string
	// Description, when set, is what the executable DeclaredSHA256
	// described in its declare run (Declared.Description): a start of that
	// very executable takes it as its Describe answer rather than asking.
	Description *sdk.Description
	// Builtin marks a built-in plugin: its refused configuration is a
	// policy error at Start (*ConfigError). Any other plugin's refused
	// configuration is a core.plugin_config finding only.
	Builtin bool
}

// Options configure a Host.
type Options struct {
	Dir            string        // plugin directory (absolute)
	Plugins        []Spec        // built-ins and every plugin named in the policy; enabled ones must exist
	RunUnlisted    bool          // also run attestor-check-* found in Dir that Plugins does not name (third-party), config {}
	DefaultTimeout time.Duration // default 10s
	StartTimeout   time.Duration // default 10s
	MaxParallel    int           // default 2
	MaxAnswerBytes int           // default 4 MiB
	Logger         hclog.Logger  // default: discard
	LogLevel       string        // passed to plugins via wire.LogLevelEnv; default "info"
	// Resident keeps every plugin process running between attestations
	// (faster refreshes, one process per plugin at all times). When false
	// (the default), a plugin is started, described, configured and
	// measured within its turn and stopped at its end, so at most
	// MaxParallel plugin processes exist at any moment: that is what keeps
	// the service inside the unit's TasksMax and MemoryMax. Start still
	// starts and configures every plugin once, to refuse a bad
	// configuration at start; StartMeasure does so in the same start as
	// the first measurement.
	Resident bool
	// GOMAXPROCS is passed to every plugin process (the Go runtime reads it
	// at start); 0 means the daemon's own GOMAXPROCS, at most 2. It bounds
	// each plugin's threads.
	GOMAXPROCS int
	// Launcher is the executable that confines and starts each plugin: a
	// program that calls launch.Main first thing in main. Default: the
	// attestor-launcher installed beside the host's executable when
	// trusted (launch.Installed), else /proc/self/exe, the host's own
	// executable (the daemon).
	Launcher string
	// Digests, when set, is shared with the Declarer that read the same
	// plugins' declarations (Declarer.Digests), so that a file is hashed
	// once for both while its identity holds.
	Digests *Digests
	// SocketDir is the folder under which the host makes its private folder
	// (0700), holding one folder per plugin process for its go-plugin Unix
	// socket (passed as PLUGIN_UNIX_SOCKET_DIR; see internal/sandbox
	// DaemonPaths.SocketDir) and removed when the process ends. Default:
	// the temporary folder.
	SocketDir string
	// CheckGrant, when set, is called at each start of a plugin with the
	// rules it is about to be confined to, as the real paths of what they
	// reach: each path opened once, links followed, and its Landlock rule
	// made from that descriptor (launch.Plugin.Guard). An error refuses
	// the start (FaultUntrusted). A grant is checked when the policy is
	// loaded, but a symbolic link in it may lead elsewhere by a later
	// start: the daemon checks there, with no moment left for the link to
	// change, that no grant reaches its own files.
	CheckGrant func(name string, real sandbox.Rules) error
}

// Result is one plugin's part of one attestation.
type Result struct {
	Name, Version, SHA256, Path string
	Fills                       []string
	Started                     time.Time
	Duration                    time.Duration
	Measurements                map[string]json.RawMessage // nil on fault
	Findings                    []sdk.Finding              // the plugin's findings, or the core.plugin_* fault finding
	Fault                       string                     // "" or missing|untrusted|crashed|timeout|protocol|failed|config
	// Confinement says what the host imposed on the plugin process
	// ("landlock v7, seccomp, no_new_privs"); "" when it did not run.
	Confinement string
}

// errStarted is Start called twice or after Close.
var errStarted = errors.New("plugin host: Start called twice or after Close")

// ConfigError is a built-in plugin that refused its configuration during
// Start.
type ConfigError struct{ Plugin, Msg string }

func (e *ConfigError) Error() string { return "plugins." + e.Plugin + ".config: " + e.Msg }

// Host runs a set of check plugins. Create it with New, then Start, Measure
// as often as needed (from one goroutine at a time), and Close.
type Host struct {
	opts    Options
	log     hclog.Logger
	euid    int
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	closing sync.Once

	// Knobs the package's tests set before Start.
	now         func() time.Time
	backoffBase time.Duration
	backoffMax  time.Duration
	usePIDNS    bool            // start plugins in a new PID namespace when permitted
	afterVerify func(p *plugin) // called between verify and spawn
	landlockABI func() int      // the kernel's Landlock ABI (sandbox.ABI)
	racyMargin  time.Duration   // see trust.go racyMargin
	programs    filter.Programs // the launcher's seccomp filters, assembled once
	digests     *Digests        // the verified digests, by plugin path

	hashes atomic.Int64 // plugin files hashed, for the tests

	nsDisabled     atomic.Bool // CLONE_NEWPID was refused (EPERM)
	warnSocketPath sync.Once

	// Set by Start, read-only afterwards.
	realDir     string // Dir with symlinks resolved
	runDir      string // private folder (0700): the plugins' socket folders
	launcher    string // Options.Launcher or launch.Default()
	confinement string // what the launcher imposes, for Result.Confinement
	unconfined  bool   // the kernel has no Landlock
	jobs        chan func()
	forks       chan forkJob // to the forker threads (fork.go)
	quit        chan struct{}
	workers     sync.WaitGroup // the workers and the forkers

	mu       sync.Mutex // guards what follows
	state    int
	plugins  map[string]*plugin
	ignored  map[string]string // unlisted executables not run: name -> path
	warned   map[string]bool
	inflight sync.WaitGroup // turns and stops in progress (Add under mu while open)
}

const (
	stateNew = iota
	stateStarted
	stateClosed
)

// New returns a host for opts, applying defaults. It starts nothing.
func New(opts Options) *Host {
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = DefaultTimeout
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.MaxParallel <= 0 {
		opts.MaxParallel = DefaultMaxParallel
	}
	if opts.MaxAnswerBytes <= 0 {
		opts.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	if opts.LogLevel == "" {
		opts.LogLevel = DefaultLogLevel
	}
	if opts.GOMAXPROCS <= 0 {
		opts.GOMAXPROCS = min(2, runtime.GOMAXPROCS(0))
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	digests := opts.Digests
	if digests == nil {
		digests = NewDigests()
	}
	return &Host{
		opts:        opts,
		digests:     digests,
		log:         log,
		euid:        os.Geteuid(),
		ctx:         ctx,
		cancel:      cancel,
		now:         time.Now,
		backoffBase: BackoffBase,
		backoffMax:  BackoffMax,
		usePIDNS:    true,
		landlockABI: sandbox.ABI,
		racyMargin:  racyMargin,
		plugins:     map[string]*plugin{},
		ignored:     map[string]string{},
		warned:      map[string]bool{},
	}
}

// Start discovers, verifies, starts, describes and configures every plugin.
// It returns a *ConfigError (first by plugin name) when a built-in plugin
// refuses its config — the caller then treats the policy as bad and calls Close. An
// invalid Spec (bad name, duplicate, bad pin, negative timeout) is also an
// error. Other faults are not errors: they show up as findings in the next
// Measure.
func (h *Host) Start(ctx context.Context) error {
	_, err := h.begin(ctx, nil, false)
	return err
}

// StartMeasure is Start and the first Measure with nonce in one start of
// each plugin: every plugin is started, described, configured and measured
// in the same turn, so an on-demand host starts each plugin once, not
// twice, before its first verdict. It returns the error Start would (a
// built-in's refused configuration as a *ConfigError; the caller then
// treats the policy as bad, discards the results and calls Close) and the
// results Measure would.
func (h *Host) StartMeasure(ctx context.Context, nonce []byte) ([]Result, error) {
	return h.begin(ctx, nonce, true)
}

// begin is Start (measure false) or StartMeasure.
func (h *Host) begin(ctx context.Context, nonce []byte, measure bool) ([]Result, error) {
	h.mu.Lock()
	if h.state != stateNew {
		h.mu.Unlock()
		return nil, errStarted
	}
	h.state = stateStarted
	specErr := h.loadSpecs()
	h.prepare()
	h.discoverLocked()
	ps := h.runnable()
	ignored := h.ignoredResults()
	h.mu.Unlock()

	results := h.runAll(ctx, ps, func(ctx context.Context, p *plugin) Result { return h.turn(ctx, p, nonce, measure) })
	err := specErr
	if err == nil {
		err = h.configError(results)
	}
	if !measure {
		return nil, err
	}
	results = append(results, ignored...)
	sort.SliceStable(results, func(i, j int) bool { return results[i].Name < results[j].Name })
	return results, err
}

// configError is the first (by name) built-in plugin that refused its
// configuration in results, as a *ConfigError, or nil.
func (h *Host) configError(results []Result) error {
	for _, r := range results { // sorted by name
		if r.Fault != FaultConfig {
			continue
		}
		if p := h.plugin(r.Name); p != nil && p.spec.Builtin {
			p.mu.Lock()
			msg := p.configRefusal
			p.mu.Unlock()
			if msg != "" {
				return &ConfigError{Plugin: r.Name, Msg: msg}
			}
		}
	}
	return nil
}

// Measure asks every started plugin for one measurement with nonce, in
// parallel (bounded), each under its timeout and ctx; restarts dead plugins
// first (with backoff). Results are sorted by Name. It never fails: every
// fault is a finding in its plugin's Result.
func (h *Host) Measure(ctx context.Context, nonce []byte) []Result {
	h.mu.Lock()
	switch h.state {
	case stateNew:
		h.mu.Unlock()
		// Measure before Start: start and measure in one turn; a refused
		// configuration then shows as core.plugin_config findings.
		rs, err := h.StartMeasure(ctx, nonce)
		if !errors.Is(err, errStarted) {
			return rs
		}
		h.mu.Lock() // another goroutine's Start or Close came first
	case stateStarted:
		h.discoverLocked()
	}
	closed := h.state == stateClosed
	ps := h.runnable()
	ignored := h.ignoredResults()
	h.mu.Unlock()
	if closed {
		out := make([]Result, 0, len(ps))
		for _, p := range ps {
			out = append(out, h.closedResult(p))
		}
		return out
	}
	out := append(h.runAll(ctx, ps, func(ctx context.Context, p *plugin) Result { return h.turn(ctx, p, nonce, true) }), ignored...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ignoredResults are the unlisted executables that were not run, each with
// one core.plugin_unlisted info finding naming it (the caller holds mu).
func (h *Host) ignoredResults() []Result {
	out := make([]Result, 0, len(h.ignored))
	for name, path := range h.ignored {
		out = append(out, Result{Name: name, Path: path, Started: h.now(), Findings: []sdk.Finding{{
			Code: CodeUnlisted, Severity: DefaultSeverity(CodeUnlisted), Subject: name,
			Message: "the policy does not name the executable " + path + " and run_unlisted_plugins is off: it was not started (list it under plugins to run it)",
		}}})
	}
	return out
}

// Close stops every plugin and its whole process group or PID namespace.
// It is idempotent and safe to call concurrently with Measure, whose
// measurements then end at once with core.plugin_crashed findings ("host
// closed"); a plugin in the middle of its go-plugin handshake can make
// Close wait up to StartTimeout.
func (h *Host) Close() {
	h.closing.Do(func() {
		h.mu.Lock()
		h.state = stateClosed
		ps := h.all()
		h.mu.Unlock()
		h.cancel()
		h.inflight.Wait()
		var wg sync.WaitGroup
		for _, p := range ps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.mu.Lock()
				defer p.mu.Unlock()
				if p.inst != nil {
					h.stop(p, p.inst, true)
				}
			}()
		}
		wg.Wait()
		if h.quit != nil {
			close(h.quit)
			h.workers.Wait()
		}
		if h.runDir != "" {
			if err := os.RemoveAll(h.runDir); err != nil {
				h.log.Warn("cannot remove the plugins' private folder", "path", h.runDir, "error", err)
			}
		}
	})
}

// PIDs returns the process ids of the live plugin processes, sorted.
func (h *Host) PIDs() []int {
	h.mu.Lock()
	ps := h.all()
	h.mu.Unlock()
	var pids []int
	for _, p := range ps {
		if in := p.cur.Load(); in != nil && !in.client.Exited() {
			pids = append(pids, in.pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// loadSpecs turns Options.Plugins into plugins. An invalid spec is kept, so
// that Measure reports it, and returned as an error.
func (h *Host) loadSpecs() error {
	var errs []error
	for _, s := range h.opts.Plugins {
		if s.Enabled && len(s.ConfigJSON) == 0 {
			s.ConfigJSON = []byte("{}")
		}
		p := &plugin{name: s.Name, spec: s, listed: true, path: filepath.Join(h.opts.Dir, FilePrefix+s.Name)}
		switch {
		case !wire.ValidName(s.Name):
			p.badSpec = fmt.Sprintf("plugin name %q is not lowercase letters, digits and '_' starting with a letter", s.Name)
		case h.plugins[s.Name] != nil:
			errs = append(errs, fmt.Errorf("plugins.%s: named twice", s.Name))
			continue
		case s.SHA256 != "" && !validPin(s.SHA256):
			p.badSpec = fmt.Sprintf("sha256 pin %q is not 64 lowercase hex digits", s.SHA256)
		case s.Timeout < 0:
			p.badSpec = fmt.Sprintf("timeout %s is negative", s.Timeout)
		case s.Description != nil && s.Description.Name != s.Name:
			p.badSpec = fmt.Sprintf("its declared description names %q", s.Description.Name)
		case s.Description != nil && wire.ValidateDescription(*s.Description) != nil:
			p.badSpec = fmt.Sprintf("its declared description: %v", wire.ValidateDescription(*s.Description))
		}
		if p.badSpec != "" {
			errs = append(errs, fmt.Errorf("plugins.%s: %s", s.Name, p.badSpec))
			if !wire.ValidName(s.Name) {
				p.path = ""
			}
		}
		h.plugins[s.Name] = p
	}
	return errors.Join(errs...)
}

func validPin(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// prepare resolves the plugin directory, makes the private folder and
// starts the workers.
func (h *Host) prepare() {
	h.realDir = filepath.Clean(h.opts.Dir)
	if d, err := filepath.EvalSymlinks(h.opts.Dir); err == nil {
		h.realDir = d
	} else {
		h.log.Warn("cannot resolve the plugin directory", "dir", h.opts.Dir, "error", err)
	}
	if d, err := os.MkdirTemp(h.opts.SocketDir, "attestor-"); err == nil {
		h.runDir = d
	} else {
		h.log.Warn("cannot make the plugins' private folder: plugins get socket folders in the temporary folder", "error", err)
	}
	h.launcher = h.opts.Launcher
	if h.launcher == "" {
		var why string
		if h.launcher, why = launch.Default(); why != "" {
			h.log.Info("no dedicated launcher: the daemon's own executable confines each plugin (slower starts)", "reason", why)
		}
	}
	if abi := h.landlockABI(); abi > 0 {
		h.confinement = fmt.Sprintf("landlock v%d, seccomp, no_new_privs", abi)
	} else {
		h.unconfined = true
		h.confinement = "seccomp, no_new_privs; no landlock (the kernel has none): file access not confined"
		h.log.Warn("the kernel has no Landlock: plugins run under seccomp and no_new_privs, but their file access is not confined (core.plugin_unconfined)")
	}
	h.jobs = make(chan func())
	h.forks = make(chan forkJob)
	h.quit = make(chan struct{})
	for range h.opts.MaxParallel {
		h.workers.Add(2)
		go h.worker()
		go h.forker()
	}
}

// worker runs turns, at most MaxParallel at once. It forks no plugin
// itself: startProcess hands the start to a forker thread (fork.go).
func (h *Host) worker() {
	defer h.workers.Done()
	for {
		select {
		case job := <-h.jobs:
			job()
		case <-h.quit:
			return
		}
	}
}

// discoverLocked adds the unlisted plugins found in Dir (when RunUnlisted)
// and drops unlisted plugins whose file is gone.
func (h *Host) discoverLocked() {
	entries, err := os.ReadDir(h.opts.Dir)
	if err != nil {
		h.warnOnce("dir:"+h.opts.Dir, "cannot read the plugin directory", "dir", h.opts.Dir, "error", err)
		entries = nil
	}
	seen := map[string]bool{}
	clear(h.ignored)
	for _, e := range entries {
		file := e.Name()
		name, ok := strings.CutPrefix(file, FilePrefix)
		if !ok {
			continue
		}
		if !wire.ValidName(name) {
			h.warnOnce("name:"+file, "ignoring a file whose name is not a valid plugin name", "file", filepath.Join(h.opts.Dir, file))
			continue
		}
		seen[name] = true
		if h.plugins[name] != nil {
			continue
		}
		path := filepath.Join(h.opts.Dir, file)
		if !h.opts.RunUnlisted {
			if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				h.ignored[name] = path
			}
			h.infoOnce("unlisted:"+name, "ignoring a plugin the policy does not name (run_unlisted_plugins is off)", "path", path)
			continue
		}
		if fi, err := os.Stat(path); err != nil {
			h.warnOnce("unusable:"+name, "ignoring an unlisted plugin that cannot be read", "path", path, "error", err)
			continue
		} else if fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 == 0 {
			h.infoOnce("noexec:"+name, "ignoring an unlisted file that is not executable", "path", path)
			continue
		}
		h.plugins[name] = &plugin{name: name, path: path, spec: Spec{Name: name, Enabled: true, ConfigJSON: []byte("{}")}}
		h.log.Info("found an unlisted plugin", "plugin", name, "path", path)
	}
	for name, p := range h.plugins {
		if p.listed || seen[name] {
			continue
		}
		delete(h.plugins, name)
		h.log.Info("unlisted plugin removed from the plugin directory; stopping it", "plugin", name)
		h.inflight.Add(1)
		go func() {
			defer h.inflight.Done()
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.inst != nil {
				h.stop(p, p.inst, true)
			}
		}()
	}
}

func (h *Host) warnOnce(key, msg string, args ...any) {
	if !h.warned[key] {
		h.warned[key] = true
		h.log.Warn(msg, args...)
	}
}

func (h *Host) infoOnce(key, msg string, args ...any) {
	if !h.warned[key] {
		h.warned[key] = true
		h.log.Info(msg, args...)
	}
}

// runnable returns the enabled plugins sorted by name.
func (h *Host) runnable() []*plugin {
	var ps []*plugin
	for _, p := range h.plugins {
		if p.spec.Enabled {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
	return ps
}

func (h *Host) all() []*plugin {
	ps := make([]*plugin, 0, len(h.plugins))
	for _, p := range h.plugins {
		ps = append(ps, p)
	}
	return ps
}

func (h *Host) plugin(name string) *plugin {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.plugins[name]
}

// runAll runs fn for every plugin on the workers (at most MaxParallel at a
// time) and returns the results in the order of ps. A plugin still waiting
// for a worker when ctx ends gets an attestation-timeout result.
func (h *Host) runAll(ctx context.Context, ps []*plugin, fn func(context.Context, *plugin) Result) []Result {
	out := make([]Result, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		pauseBeforeTurn(ctx)
		h.mu.Lock()
		if h.state == stateClosed {
			h.mu.Unlock()
			out[i] = h.closedResult(p)
			continue
		}
		h.inflight.Add(1)
		h.mu.Unlock()
		wg.Add(1)
		job := func() {
			defer wg.Done()
			defer h.inflight.Done()
			out[i] = fn(ctx, p)
		}
		select {
		case h.jobs <- job:
		case <-ctx.Done():
			out[i] = h.faultResult(p, Result{Name: p.name, Path: p.path, Started: h.now()}, attestationTimeout(ctx, "before the plugin's turn came"))
			h.inflight.Done()
			wg.Done()
		}
	}
	wg.Wait()
	return out
}

func (h *Host) closedResult(p *plugin) Result {
	return h.faultResult(p, Result{Name: p.name, Path: p.path, Started: h.now()}, &fault{kind: FaultCrashed, msg: "the plugin host is closed"})
}

// delay is the backoff after n consecutive failures.
func (h *Host) delay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := h.backoffBase
	for i := 2; i < n && d < h.backoffMax; i++ {
		d *= 2
	}
	return min(d, h.backoffMax)
}
