package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the check failed, the request was refused, the attestor is unreachable
	exitUsage = 2 // bad command line, unreadable local file
)

const (
	defaultAddr = "http://127.0.0.1:8505"
	addrEnv     = "ATTESTCTL_ADDR"
)

// app is one invocation of attestctl.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	addr    string        // --addr
	timeout time.Duration // --timeout; 0: the command's default
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *app {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, addr: defaultAddr}
	if v := strings.TrimSpace(getenv(addrEnv)); v != "" {
		a.addr = v
	}
	return a
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(a *app, args []string) int
}

func commands() []command {
	return []command{
		{"status", "show the attestation state, counters, checks and findings", (*app).status},
		{"refresh", "run an attestation now (needs the API token)", (*app).refresh},
		{"verify-bundle", "verify a bundle's HMAC (--key) or signature (--pubkey)", (*app).verifyBundle},
		{"verify-evidence", "verify TPM evidence from /api/v1/evidence against the AK and your nonce", (*app).verifyEvidence},
		{"verdict-pcr", "the verdict PCR value a fleet verifier pins for a known-good bundle", (*app).verdictPCR},
		{"gate", "wait until the attestor is attested (for ExecStartPre)", (*app).gate},
		{"keygen", "create the attestor's signing key pair (signing_key_path)", (*app).keygen},
		{"baseline", "write a production policy pinning what this machine measures", (*app).baseline},
		{"audit", "audit verify FILE: check the audit log's hash chain", (*app).audit},
		{"boot-reference", "boot-reference record: write a boot reference from this machine's event log", (*app).bootReference},
		{"help", "help [COMMAND]: show this help or a command's", (*app).help},
	}
}

func (a *app) run(args []string) int {
	fs := flag.NewFlagSet("attestctl", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() { a.usage(a.stderr) }
	a.addrFlag(fs)
	fs.DurationVar(&a.timeout, "timeout", 0, "how long one request may take (default 10s; 100s for refresh)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		a.usage(a.stderr)
		return exitUsage
	}
	name := fs.Arg(0)
	for _, c := range commands() {
		if c.name == name {
			return c.run(a, fs.Args()[1:])
		}
	}
	fmt.Fprintf(a.stderr, "attestctl: unknown command %q\n\n", name)
	a.usage(a.stderr)
	return exitUsage
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: attestctl [--addr URL] [--timeout D] <command> [flags] [args]\n\n")
	fmt.Fprintf(w, "The client of runtime-attestor.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n")
	fmt.Fprintf(w, "  --addr URL     the attestor's API (default %s, or $%s)\n", defaultAddr, addrEnv)
	fmt.Fprintf(w, "  --timeout D    how long one request may take (default 10s; 100s for refresh)\n")
	fmt.Fprintf(w, "\nExit status: 0 success; 1 the check failed, the request was refused or the\n")
	fmt.Fprintf(w, "attestor is unreachable; 2 usage or local I/O error.\n")
	fmt.Fprintf(w, "Run 'attestctl help COMMAND' or 'attestctl COMMAND -h' for a command's flags.\n")
}

func (a *app) help(args []string) int {
	if len(args) == 0 {
		a.usage(a.stdout)
		return exitOK
	}
	if len(args) > 1 {
		fmt.Fprintln(a.stderr, "attestctl: help takes at most one command")
		return exitUsage
	}
	for _, c := range commands() {
		if c.name == args[0] && c.name != "help" {
			// Every command prints its usage on -h and returns exitOK.
			saved := a.stderr
			a.stderr = a.stdout
			defer func() { a.stderr = saved }()
			return c.run(a, []string{"-h"})
		}
	}
	fmt.Fprintf(a.stderr, "attestctl: unknown command %q\n", args[0])
	return exitUsage
}

// flagSet returns a subcommand's flag set; its usage prints synopsis and
// text, then the flags.
func (a *app) flagSet(name, synopsis, text string) *flag.FlagSet {
	fs := flag.NewFlagSet("attestctl "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: attestctl %s %s\n\n%s\n", name, synopsis, text)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func (a *app) addrFlag(fs *flag.FlagSet) {
	fs.StringVar(&a.addr, "addr", a.addr, "the attestor's API base URL (env "+addrEnv+")")
}

// clientFlags adds --addr and --timeout (per request) to a command that
// talks to the attestor.
func (a *app) clientFlags(fs *flag.FlagSet, def time.Duration) {
	a.addrFlag(fs)
	fs.DurationVar(&a.timeout, "timeout", a.timeout, fmt.Sprintf("how long the request may take (0: %s)", def))
}

// parse parses args with fs, allowing flags after positional arguments
// ("verify-bundle b.json --key k"); everything after "--" is positional.
// ok is false when the command must exit with code (0 after -h).
func parse(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), 0, true
		}
		if len(rest) == 0 {
			return pos, 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError prints msg and the command's usage and returns exitUsage.
func (a *app) usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(a.stderr, "attestctl: "+format+"\n\n", args...)
	fs.Usage()
	return exitUsage
}

// fail prints an error and returns code.
func (a *app) fail(code int, format string, args ...any) int {
	fmt.Fprintf(a.stderr, "attestctl: "+format+"\n", args...)
	return code
}

// baseURL returns --addr as a URL without a trailing slash; a bare
// host:port means http.
func (a *app) baseURL() (string, error) {
	s := strings.TrimSpace(a.addr)
	if s == "" {
		return "", errors.New("--addr is empty")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("--addr %q: %w", a.addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("--addr %q: scheme must be http or https", a.addr)
	}
	if u.Host == "" {
		return "", fmt.Errorf("--addr %q: no host", a.addr)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--addr %q: no query or fragment allowed", a.addr)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// readInput reads path, or stdin for "-", at most limit bytes.
func (a *app) readInput(path string, limit int64) ([]byte, error) {
	r := a.stdin
	name := "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, path
	}
	raw, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, limit)
	}
	return raw, nil
}
