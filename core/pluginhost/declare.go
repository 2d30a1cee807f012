package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/declare"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/filter"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// DefaultDeclareTimeout bounds one declare run: start, Configure, the
// declaration written, exit. A plugin takes a few milliseconds.
const DefaultDeclareTimeout = 5 * time.Second

// declareStderr bounds what the host keeps of a declare run's stderr.
const declareStderr = 8 << 10

// Declared is what a plugin executable declared under one configuration.
type Declared struct {
	Name   string // plugin name
	Path   string // the executable, in the plugin directory
	SHA256 string // lowercase hex digest of the file that declared it
	// Description is what the plugin describes, checked as a handshake's
	// Describe answer is.
	Description sdk.Description
	// Sandbox is the declared sandbox, checked by declare.CheckRules;
	// HasSandbox is false when the check declares none (no Sandboxer).
	Sandbox    sandbox.Rules
	HasSandbox bool
}

// DeclareError is a declare run that gave no declaration. Kind is a Fault*:
// missing or untrusted (the file; the plugin's turn reports it too),
// config (the plugin refused its configuration), timeout, crashed or
// protocol (what it printed is not a valid declaration).
type DeclareError struct {
	Plugin, Kind, Msg string
}

func (e *DeclareError) Error() string {
	return "plugin " + e.Plugin + ": declare run: " + e.Msg
}

// DeclarerOptions configure a Declarer.
type DeclarerOptions struct {
	// Launcher confines and starts each declare run, as Options.Launcher
	// does each plugin; default launch.Default(), as the host's.
	Launcher string
	// Digests, when set, is shared with the Host that starts the same
	// plugins (Options.Digests), so each file is hashed once.
	Digests  *Digests
	Timeout  time.Duration // default DefaultDeclareTimeout
	LogLevel string        // passed as wire.LogLevelEnv; default "info"
	Logger   hclog.Logger  // default: discard
	// CacheDir, when set with CacheSecret, keeps the declarations across
	// restarts in CacheDir/DeclareCacheFile (declare_cache.go): a folder
	// only the daemon uses (0700, made when missing), which no plugin's
	// grant may reach. CacheSecret is a daemon secret the file's MAC is
	// keyed from; a file whose MAC does not match is ignored and rewritten.
	CacheDir    string
	CacheSecret []byte
}

// Declarer learns plugins' declarations from their executables (package
// internal/declare) and remembers each by the file's SHA-256 and the
// configuration's, for the life of the Declarer (the daemon keeps one for
// its run): a declaration is computed once per executable and
// configuration, and a replaced executable declares again. Failures are
// remembered too, so a plugin that hangs costs its timeout once. With a
// CacheDir, the declarations (not the failures) are also kept across
// restarts: Save writes them, and a later Declarer reads them back,
// checking each as it checks a declare run's output.
type Declarer struct {
	opts   DeclarerOptions
	log    hclog.Logger
	runs   atomic.Int64  // declare runs started, for the tests
	hashes atomic.Int64  // plugin files hashed, for the tests
	margin time.Duration // the racy margin of its digests (racyMargin; the tests' shorter)
	// programs assembles the declare runs' seccomp filter once.
	programs filter.Programs
	noPIDNS  atomic.Bool // CLONE_NEWPID was refused (EPERM)

	mu      sync.Mutex // one declare at a time; guards what follows
	digests *Digests
	cache   map[declKey]declResult

	loaded    bool                        // the cache file was read (or found unusable)
	persisted map[declKey]json.RawMessage // the cache file's declarations
	used      []declKey                   // the declarations asked for since start, in order
	dirty     bool                        // the file lacks one of used, or is to be rewritten
}

// declKey names one declaration: the plugin's name (the same bytes under
// two names are two plugins, each with its own grant), the executable's
// digest and the configuration's.
type declKey struct{ name, sha, config string }

type declResult struct {
	d   *Declared
	err *DeclareError
	raw []byte // what the executable printed, when d is set
}

// NewDeclarer returns a Declarer for opts, applying defaults.
func NewDeclarer(opts DeclarerOptions) *Declarer {
	if opts.Launcher == "" {
		opts.Launcher, _ = launch.Default() // the host logs why when it is the daemon itself
	}
	if opts.Digests == nil {
		opts.Digests = NewDigests()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultDeclareTimeout
	}
	if opts.LogLevel == "" {
		opts.LogLevel = DefaultLogLevel
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Declarer{opts: opts, log: log, margin: racyMargin, digests: opts.Digests, cache: map[declKey]declResult{}}
}

// Digests returns the digests the Declarer remembers, for the Host that
// starts the same plugins (Options.Digests).
func (d *Declarer) Digests() *Digests { return d.digests }

// Runs is how many declare runs the Declarer started.
func (d *Declarer) Runs() int64 { return d.runs.Load() }

// Declare returns what the plugin executable dir/attestor-check-<name>
// declares under config (a JSON object). The file is checked as the host
// checks it before a start (owner, mode, symbolic links inside dir) and its
// digest compared with pin ("" = unpinned); the declare run executes the
// descriptor that was hashed, confined to nothing. The error is a
// *DeclareError.
func (d *Declarer) Declare(ctx context.Context, dir, name, pin string, config []byte) (*Declared, error) {
	if !wire.ValidName(name) {
		return nil, &DeclareError{Plugin: name, Kind: FaultConfig, Msg: "not a valid plugin name"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		d.load() // before verify: the digests remembered across restarts
	}
	h := d.trustHost(dir)
	p := &plugin{name: name, path: filepath.Join(dir, FilePrefix+name), spec: Spec{Name: name, SHA256: pin}}
	bf, f := h.verify(p)
	d.hashes.Add(h.hashes.Load())
	if f != nil {
		return nil, &DeclareError{Plugin: name, Kind: f.kind, Msg: f.msg}
	}
	defer bf.close()
	sum := sha256.Sum256(config)
	key := declKey{name: name, sha: bf.sha, config: hex.EncodeToString(sum[:])}
	r, ok := d.cache[key]
	if !ok {
		r, ok = d.recall(p, bf, key)
	}
	if !ok {
		r = d.declare(ctx, p, bf, config)
		d.dirty = d.dirty || r.err == nil
		// A run out of time says nothing of the executable (a loaded
		// machine, or a local process starving it): the next reload runs it
		// again. Any other outcome is the executable's own.
		if r.err == nil || r.err.Kind != FaultTimeout {
			d.cache[key] = r
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	d.use(key)
	out := *r.d
	out.Path = p.path
	return &out, nil
}

// trustHost is a host that only verifies files of dir (trust.go).
func (d *Declarer) trustHost(dir string) *Host {
	real := filepath.Clean(dir)
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		real = r
	}
	return &Host{opts: Options{Dir: dir}, log: d.log, euid: os.Geteuid(), racyMargin: d.margin, realDir: real, digests: d.digests}
}

// declare runs bf and checks what it printed.
func (d *Declarer) declare(ctx context.Context, p *plugin, bf *binFile, config []byte) declResult {
	fail := func(kind, msg string) declResult {
		d.log.Warn("declare run failed", "plugin", p.name, "sha256", bf.sha, "kind", kind, "message", msg)
		return declResult{err: &DeclareError{Plugin: p.name, Kind: kind, Msg: msg}}
	}
	start := time.Now()
	out, f := d.run(ctx, p, bf, config)
	if f != nil {
		return fail(f.kind, f.msg)
	}
	r := d.judge(p, bf, out)
	if r.err != nil {
		return fail(r.err.Kind, r.err.Msg)
	}
	d.log.Debug("declared", "plugin", p.name, "sha256", bf.sha, "duration", time.Since(start), "sandbox", r.d.Sandbox)
	return r
}

// judge checks what bf printed in a declare run (out), as the declaration
// of the plugin p: a Declaration that declare.Decode accepts, without a
// configuration error, whose description is valid and names p.
func (d *Declarer) judge(p *plugin, bf *binFile, out []byte) declResult {
	fail := func(kind, msg string) declResult {
		return declResult{err: &DeclareError{Plugin: p.name, Kind: kind, Msg: msg}}
	}
	decl, err := declare.Decode(out)
	if err != nil {
		return fail(FaultProtocol, clip(err.Error()))
	}
	if decl.ConfigError != "" {
		return fail(FaultConfig, clip(decl.ConfigError))
	}
	desc, err := description(decl)
	if err != nil {
		return fail(FaultProtocol, clip(err.Error()))
	}
	if desc.Name != p.name {
		return fail(FaultProtocol, fmt.Sprintf("the executable attestor-check-%s describes itself as %q", p.name, clip(desc.Name)))
	}
	res := &Declared{Name: p.name, SHA256: bf.sha, Description: desc, HasSandbox: decl.Sandbox != nil}
	if decl.Sandbox != nil {
		res.Sandbox = decl.Sandbox.Merge()
	}
	return declResult{d: res, raw: out}
}

// description is decl's description, checked as a Describe answer.
func description(decl declare.Declaration) (sdk.Description, error) {
	desc := sdk.Description{Name: decl.Name, Version: decl.Version, Summary: decl.Summary, Fills: decl.Fills}
	for _, f := range decl.Findings {
		sev, err := sdk.ParseSeverity(f.Severity)
		if err != nil {
			return sdk.Description{}, fmt.Errorf("finding %q: %w", f.Code, err)
		}
		desc.Findings = append(desc.Findings, sdk.FindingSpec{Code: f.Code, DefaultSeverity: sev, Description: f.Description})
	}
	if err := wire.ValidateDescription(desc); err != nil {
		return sdk.Description{}, fmt.Errorf("description: %w", err)
	}
	return desc, nil
}
