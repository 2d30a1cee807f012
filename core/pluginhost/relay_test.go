package pluginhost

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"

	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestParseLogLine(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		line string
		want logLine
	}{
		{`{"@level":"error","@message":"check panicked","@module":"tpm","@timestamp":"2026-01-01T00:00:00.000000Z","op":"measure","n":3}`,
			logLine{json: true, level: hclog.Error, msg: "check panicked", args: []any{"n", float64(3), "op", "measure"}}},
		{`{"@level":"warn","@message":"x"}`, logLine{json: true, level: hclog.Warn, msg: "x"}},
		// go-plugin's own parser panics on these.
		{`{"@message": 42, "@level": ["error"], "@timestamp": 7, "k": {"nested": true}}`,
			logLine{json: true, level: hclog.Info, msg: "42", args: []any{"k", map[string]any{"nested": true}}}},
		{`{"@message": null}`, logLine{json: true, level: hclog.Info, msg: ""}},
		{`{"no_message": "at all", "@level": "bogus"}`, logLine{json: true, level: hclog.Info, args: []any{"no_message", "at all"}}},
		{`{"@level":"off","@message":"hidden"}`, logLine{json: true, level: hclog.Off, msg: "hidden"}},
		{`plain text`, logLine{level: hclog.Debug, msg: "plain text"}},
		{`{not json`, logLine{level: hclog.Debug, msg: "{not json"}},
		{`["an","array"]`, logLine{level: hclog.Debug, msg: `["an","array"]`}},
		{``, logLine{level: hclog.Debug, msg: ""}},
	} {
		got := parseLogLine([]byte(tc.line))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Test %d: parseLogLine(%s) = %#v, want %#v", i, tc.line, got, tc.want)
		}
	}
}

func TestRelay(t *testing.T) {
	t.Parallel()
	var out logBuffer
	r := newRelay(hclog.New(&hclog.LoggerOptions{Name: "p", Output: &out, Level: hclog.Debug}))
	// go-plugin writes a line, then its newline; a long line in pieces.
	for _, s := range []string{`{"@level":"info","@message":"hello","k":"v"}`, "\n", "part one, ", "part two", "\n", "\n",
		"panic: boom\n", "goroutine 1 [running]:\n"} {
		if n, err := r.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	long := strings.Repeat("x", maxLogLine+100)
	if _, err := r.Write([]byte(long + "\n")); err != nil {
		t.Fatal(err)
	}
	logs := out.String()
	for _, want := range []string{
		"[INFO]  p: hello: k=v",
		"[DEBUG] p: part one, part two",
		"[ERROR] p: panic: boom",
		"[ERROR] p: goroutine 1 [running]:",
		"truncated_at=16384",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("relayed logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, strings.Repeat("x", maxLogLine+1)) {
		t.Error("a line longer than the limit was relayed whole")
	}
	tail := r.tail()
	if len(tail) != 5 || tail[0] != `{"@level":"info","@message":"hello","k":"v"}` || len(tail[4]) != tailLineLen {
		t.Errorf("tail = %q", tail)
	}
	for i := range 20 {
		fmt.Fprintf(r, "line %d\n", i)
	}
	if tail := r.tail(); len(tail) != tailLines || tail[tailLines-1] != "line 19" {
		t.Errorf("tail = %q", tail)
	}
}

func TestRefusedHandshake(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		tail []string
		want bool
	}{
		{[]string{"This binary is a plugin. These are not meant to be executed directly.", "Please execute the program"}, true},
		{[]string{"attestor-check-x: this is a runtime-attestor check plugin; the runtime-attestor daemon starts it, it is not run by hand"}, true},
		{[]string{"exitstart: giving up before the handshake"}, false},
		{nil, false},
	} {
		if got := refusedHandshake(tc.tail); got != tc.want {
			t.Errorf("Test %d: refusedHandshake(%q) = %v", i, tc.tail, got)
		}
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"two\nlines\x1b[31m", "two lines [31m"},
		{strings.Repeat("é", 200), strings.Repeat("é", 150) + "…"},
	} {
		if got := clip(tc.in); got != tc.want {
			t.Errorf("Test %d: clip(%q) = %q, want %q", i, tc.in, got, tc.want)
		}
	}
}

// FuzzParseLogLine: whatever a plugin writes to stderr, parsing never
// panics, and the relay and clip stay within their bounds.
func FuzzParseLogLine(f *testing.F) {
	for _, s := range []string{
		`{"@level":"error","@message":"x","@timestamp":"2026-01-01T00:00:00.000000Z","k":1}`,
		`{"@message": 42, "@level": ["error"], "@timestamp": 7}`,
		`{"@message":"\u0000\n"}`,
		"panic: boom",
		"{",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e := parseLogLine(line)
		if len(e.args)%2 != 0 {
			t.Fatalf("odd args %v", e.args)
		}
		r := newRelay(hclog.NewNullLogger())
		if _, err := r.Write(line); err != nil {
			t.Fatal(err)
		}
		_, _ = r.Write([]byte("\n"))
		for _, l := range r.tail() {
			if len(l) > tailLineLen {
				t.Fatalf("tail line of %d bytes", len(l))
			}
		}
		c := clip(string(line))
		if !utf8.ValidString(c) || utf8.RuneCountInString(c) > 301 {
			t.Fatalf("clip(%q) = %q", line, c)
		}
		for _, r := range c {
			if unicode.IsControl(r) {
				t.Fatalf("clip(%q) kept control character %U", line, r)
			}
		}
	})
}

// TestDefaultSeverities pins the core codes' severities to
// docs/architecture.md.
func TestDefaultSeverities(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]sdk.Severity{
		"core.plugin_missing":      sdk.SeverityHigh,
		"core.plugin_untrusted":    sdk.SeverityCritical,
		"core.plugin_crashed":      sdk.SeverityHigh,
		"core.plugin_timeout":      sdk.SeverityHigh,
		"core.plugin_protocol":     sdk.SeverityHigh,
		"core.plugin_failed":       sdk.SeverityHigh,
		"core.plugin_config":       sdk.SeverityHigh,
		"core.attestation_timeout": sdk.SeverityHigh,
	} {
		if got := DefaultSeverity(code); got != want {
			t.Errorf("DefaultSeverity(%s) = %s, want %s", code, got, want)
		}
	}
	for kind, code := range faultCodes {
		if !strings.HasPrefix(code, "core.plugin_"+kind[:2]) {
			t.Errorf("fault %s has code %s", kind, code)
		}
	}
}

// TestClassifyStart maps go-plugin's start errors (as v1.8.0 words them)
// to faults; the real plugins in TestFaults cover the common ones end to
// end, this covers the rest.
func TestClassifyStart(t *testing.T) {
	t.Parallel()
	h := New(Options{StartTimeout: 7 * time.Second})
	for i, tc := range []struct {
		se   startError
		kind string
		msg  string
	}{
		{startError{err: errors.New("plugin exited before we could connect"), status: "exit status 125", tail: []string{launch.Failed + "landlock restrict (ABI v7): invalid argument"}}, FaultCrashed, "could not confine and start the plugin: landlock restrict (ABI v7): invalid argument (exit status 125)"},
		{startError{err: &fs.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOEXEC}}, FaultCrashed, "cannot execute the plugin: exec format error"},
		{startError{err: errors.New("timeout while waiting for plugin to start")}, FaultTimeout, "no handshake within the 7s start timeout"},
		{startError{err: errors.New("plugin exited before we could connect"), status: "exit status 1", tail: []string{"This binary is a plugin. These are not meant to be executed directly."}}, FaultProtocol, "magic cookie mismatch"},
		{startError{err: errors.New("plugin exited before we could connect"), status: "exit status 3"}, FaultCrashed, "exited before the handshake (exit status 3)"},
		{startError{err: errors.New("Unrecognized remote plugin message: \nFailed to read any lines from plugin's stdout\nThis usually means...")}, FaultCrashed, "exited before the handshake"},
		{startError{err: errors.New("Unrecognized remote plugin message: hello\nThis usually means...")}, FaultProtocol, "not a go-plugin handshake (stdout belongs to the protocol): Unrecognized remote plugin message: hello"},
		{startError{err: errors.New("incompatible API version with plugin. Plugin version: 99, Client versions: [1]")}, FaultProtocol, "protocol version this daemon does not"},
		{startError{err: errors.New(`unsupported plugin protocol "netrpc". Supported: [grpc]`)}, FaultProtocol, "bad handshake: unsupported plugin protocol"},
	} {
		f := h.classifyStart(&tc.se)
		if f.kind != tc.kind || !strings.Contains(f.msg, tc.msg) {
			t.Errorf("Test %d: classifyStart(%v) = %s %q, want %s containing %q", i, tc.se.err, f.kind, f.msg, tc.kind, tc.msg)
		}
	}
}

// TestRelayRateLimit: a plugin flooding stderr gets relayBurst lines
// through, then relayRate per second, and one "N lines suppressed" line
// says how many were not relayed.
func TestRelayRateLimit(t *testing.T) {
	t.Parallel()
	var out logBuffer
	r := newRelay(hclog.New(&hclog.LoggerOptions{Name: "p", Output: &out, Level: hclog.Debug}))
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(r, "flood line %d\n", i)
	}
	if n := strings.Count(out.String(), "flood line"); n != relayBurst {
		t.Fatalf("%d lines relayed at once, want %d", n, relayBurst)
	}
	now = now.Add(time.Second) // relayRate more may pass
	fmt.Fprintf(r, "after a second\n")
	want := fmt.Sprintf("%d lines suppressed", 10000-relayBurst)
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "after a second") {
		t.Fatalf("log does not say %q and relay the next line:\n%.2000s", want, out.String()[max(0, len(out.String())-2000):])
	}
	if got := r.tail(); len(got) == 0 || got[len(got)-1] != "after a second" {
		t.Errorf("tail %q: the diagnosis buffer keeps every line", got)
	}
}
