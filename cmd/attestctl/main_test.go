package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitest"
	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

var testKey = []byte("k3y-0123456789abcdef0123456789abcdef")

const token = "tok-0f1e2d3c4b5a69788796a5b4c3d2e1f0"

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// attestctl runs the real binary with args, stdin and extra environment.
func attestctl(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := command(t, stdin, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run attestctl: %v", err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func command(t *testing.T, stdin string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	bin := testbin.Build(t, "./cmd/attestctl", "attestctl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // only against hangs
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ATTESTCTL_ADDR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// serve runs an api.Server for att on a real loopback socket.
func serve(t *testing.T, att api.Attestor, tok string) string {
	t.Helper()
	srv := api.New(api.Options{Attestor: att, Token: []byte(tok)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// deadAddr returns an address nothing listens on.
// deadAddr returns the URL of a loopback TCP socket that is bound but never
// listens. A connection to it is refused, and, since the socket holds its
// port (without SO_REUSEADDR) until the test ends, no server that another
// test starts meanwhile can be given that port and answer in its place.
func deadAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testBundle is a signed degraded bundle with checks and findings of every
// severity.
func testBundle(t *testing.T, st state.State) bundle.Bundle {
	t.Helper()
	digest := strings.Repeat("5e", 32)
	b := bundle.Bundle{
		BundleVersion:    bundle.Version,
		AttestorVersion:  "0.1.0",
		Sequence:         7,
		Nonce:            strings.Repeat("a1", 16),
		Timestamp:        bundle.FormatTime(time.Date(2026, 3, 13, 12, 0, 0, 0, time.UTC)),
		State:            st,
		Score:            26,
		BootMeasurements: bundle.BootMeasurements{SecureBoot: bundle.Ptr(true), SetupMode: bundle.Ptr(false), PCRs: map[string]string{"0": digest}},
		DeploymentDigest: bundle.Ptr(digest),
		ServiceDigests:   map[string]string{"agent": digest, "registry": digest},
		PolicyDigest:     bundle.Ptr(digest),
		KernelCmdline:    bundle.Ptr("root=/dev/vda1 ro quiet"),
		KernelLockdown:   bundle.Ptr("integrity"),
		TPMAvailable:     bundle.Ptr(false),
		TPMQuoteVerified: bundle.Ptr(false),
		Failures: []bundle.Failure{
			{Finding: bundle.Finding{Code: "binaries.missing", Severity: sdk.SeverityHigh, Subject: "/usr/libexec/secure-ai/mcp-firewall", Message: "binary is missing"}, Plugin: "binaries"},
			{Finding: bundle.Finding{Code: "kernel.tainted", Severity: sdk.SeverityLow, Subject: "taint", Message: "kernel is tainted\x1b[31m (flags W)"}, Plugin: "kernel"},
			{Finding: bundle.Finding{Code: "ostree.staged", Severity: sdk.SeverityMedium, Subject: "", Message: "a deployment is staged"}, Plugin: "ostree"},
		},
		Checks: map[string]bundle.Check{
			"binaries": {Name: "binaries", Version: bundle.Ptr("1.0.0"), DurationMS: 42, Measurements: json.RawMessage(`{}`),
				Findings: []bundle.Finding{{Code: "binaries.missing", Severity: sdk.SeverityHigh, Subject: "/usr/libexec/secure-ai/mcp-firewall", Message: "binary is missing"}}},
			"kernel": {Name: "kernel", Version: bundle.Ptr("1.1.0"), DurationMS: 3,
				Findings: []bundle.Finding{
					{Code: "kernel.cmdline_seen", Severity: sdk.SeverityInfo, Message: "informational only"},
					{Code: "kernel.tainted", Severity: sdk.SeverityLow, Subject: "taint", Message: "kernel is tainted"}}},
			"ostree": {Name: "ostree", Version: bundle.Ptr("0.9.0"), DurationMS: 1200,
				Findings: []bundle.Finding{{Code: "ostree.staged", Severity: sdk.SeverityMedium, Message: "a deployment is staged"}}},
			"tpm": {Name: "tpm", Version: nil, DurationMS: 5000,
				Findings: []bundle.Finding{{Code: "core.plugin_timeout", Severity: sdk.SeverityHigh, Subject: "tpm", Message: "timed out"}}},
		},
	}
	if err := b.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	return b
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func snapshotOf(t *testing.T, b bundle.Bundle) engine.Snapshot {
	return engine.Snapshot{
		State: b.State, Bundle: marshal(t, b), SecureBoot: true, ServiceCount: 2, FailureCount: len(b.Failures),
		PolicyDigest: *b.PolicyDigest, DeploymentDigest: *b.DeploymentDigest, Score: b.Score,
		LastAttested: time.Date(2026, 3, 13, 12, 0, 0, 0, time.UTC), AttestCount: 7, DegradeCount: 7, RefreshCount: 1,
		Plugins: []engine.PluginStatus{
			{Name: "binaries", Version: "1.0.0", Duration: 42 * time.Millisecond, Findings: 1},
			{Name: "kernel", Version: "1.1.0", Duration: 3 * time.Millisecond, Findings: 2},
			{Name: "ostree", Version: "0.9.0", Duration: 1200 * time.Millisecond, Findings: 1},
			{Name: "tpm", Duration: 5 * time.Second, Fault: "measurement timed out after 5s", FaultCount: 3, Findings: 1},
		},
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		args   []string
		code   int
		stdout string // wanted in stdout
		stderr string // wanted in stderr
	}{
		{nil, 2, "", "usage: attestctl"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"-h"}, 0, "", "Commands:"},
		{[]string{"help"}, 0, "verify-bundle", ""},
		{[]string{"help", "gate"}, 0, "-until", ""},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{[]string{"status", "-h"}, 0, "", "usage: attestctl status"},
		{[]string{"refresh", "--help"}, 0, "", "--token-file"},
		{[]string{"status", "extra"}, 2, "", "status takes no arguments"},
		{[]string{"--addr", "ftp://x", "status"}, 2, "", "scheme must be http or https"},
		{[]string{"status", "--bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"refresh"}, 2, "", "--token-file is required"},
		{[]string{"verify-bundle", "x.json"}, 2, "", "--key or --pubkey is required"},
		{[]string{"verify-bundle", "--key", "k", "a", "b"}, 2, "", "at most one bundle"},
		{[]string{"gate", "--until", "sometimes"}, 2, "", `--until "sometimes"`},
		{[]string{"gate", "--timeout", "0s"}, 2, "", "--timeout must be positive"},
		{[]string{"gate", "--interval", "-1s"}, 2, "", "--interval must be positive"},
		{[]string{"audit"}, 2, "", "audit needs a subcommand"},
		{[]string{"audit", "check", "x"}, 2, "", `unknown audit subcommand "check"`},
		{[]string{"audit", "verify"}, 2, "", "at least one LOG file"},
	} {
		r := attestctl(t, "", nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("Test %d: attestctl %q:\n%s\nwant exit %d, stdout with %q, stderr with %q", i, tc.args, r, tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	b := testBundle(t, state.Degraded)
	snap := snapshotOf(t, b)
	url := serve(t, apitest.New(snap), "")

	r := attestctl(t, "", nil, "--addr", url, "status")
	if r.code != 0 {
		t.Fatalf("status: %s", r)
	}
	for _, want := range []string{
		"State:          degraded (score 26)",
		"Last attested:  2026-03-13T12:00:00Z (",
		"Attestations:   7 run: 7 degraded, 0 failed; 1 by refresh",
		"TPM:            absent",
		"Secure Boot:    enabled",
		"Services:       2 digested",
		"Failures:       3",
		"Bundle:         sequence 7, 2026-03-13T12:00:00.000Z, bundle_hmac",
		`Signed by:      nobody: no bundle_signature (signing_key_path is "" or its key was unusable: core.signing_key)`,
		"CHECK     VERSION  DURATION  FINDINGS  FAULT",
		"binaries  1.0.0    42ms      1         -",
		"kernel    1.1.0    3ms       2         -",
		"ostree    0.9.0    1.2s      1         -",
		"tpm       -        5s        1         measurement timed out after 5s",
		"SEVERITY  CODE              PLUGIN    SUBJECT                              MESSAGE",
		"high      binaries.missing  binaries  /usr/libexec/secure-ai/mcp-firewall  binary is missing",
		"medium    ostree.staged     ostree    -                                    a deployment is staged",
		"low       kernel.tainted    kernel    taint                                kernel is tainted [31m (flags W)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "kernel.cmdline_seen") || strings.Contains(r.stdout, "\x1b") {
		t.Errorf("status shows an info finding or a raw escape:\n%s", r.stdout)
	}
	// Findings are listed by severity, highest first.
	if hi, med := strings.Index(r.stdout, "binaries.missing  binaries"), strings.Index(r.stdout, "ostree.staged"); hi > med {
		t.Errorf("findings not sorted by severity:\n%s", r.stdout)
	}

	// Values no plugin measured (null in the bundle) are not "absent" or "disabled".
	unmeasured := testBundle(t, state.Degraded)
	unmeasured.TPMAvailable, unmeasured.TPMQuoteVerified, unmeasured.BootMeasurements.SecureBoot = nil, nil, nil
	if err := unmeasured.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	r2 := attestctl(t, "", nil, "--addr", serve(t, apitest.New(snapshotOf(t, unmeasured)), ""), "status")
	if r2.code != 0 || !strings.Contains(r2.stdout, "TPM:            not measured") || !strings.Contains(r2.stdout, "Secure Boot:    not measured") {
		t.Errorf("status with unmeasured values: %s", r2)
	}

	// --json: both answers, the bundle verbatim; the address from the environment, host:port only.
	r = attestctl(t, "", []string{"ATTESTCTL_ADDR=" + strings.TrimPrefix(url, "http://")}, "status", "--json")
	if r.code != 0 {
		t.Fatalf("status --json: %s", r)
	}
	var out struct {
		Attest apitypes.AttestResponse
		Status apitypes.StatusResponse
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
	}
	if !bytes.Equal(out.Attest.Bundle, snap.Bundle) || out.Status.AttestationState != state.Degraded || len(out.Status.Plugins) != 4 {
		t.Errorf("status --json = %s", r.stdout)
	}
}

func TestStatusPendingAndUnreachable(t *testing.T) {
	t.Parallel()
	url := serve(t, apitest.New(engine.Snapshot{State: state.Pending}), "")
	r := attestctl(t, "", nil, "status", "--addr", url)
	if r.code != 0 || !strings.Contains(r.stdout, "State:          pending (score 0)") || !strings.Contains(r.stdout, "TPM:            absent") ||
		!strings.Contains(r.stdout, "Last attested:  never (pending)") || !strings.Contains(r.stdout, "No checks have run yet.") {
		t.Errorf("pending status: %s", r)
	}
	r = attestctl(t, "", nil, "--addr", deadAddr(t), "status")
	if r.code != 1 || !strings.Contains(r.stderr, "attestor unreachable:") || !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("unreachable status: %s", r)
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	b := testBundle(t, state.Attested)
	newSnap := snapshotOf(t, b)
	tokFile := writeFile(t, "token", []byte(token+"\n"))

	t.Run("ok", func(t *testing.T) {
		t.Parallel()
		att := apitest.New(engine.Snapshot{State: state.Degraded})
		att.SetNext(func(engine.Snapshot) (engine.Snapshot, error) { return newSnap, nil })
		url := serve(t, att, token)
		r := attestctl(t, "", nil, "--addr", url, "refresh", "--token-file", tokFile)
		if r.code != 0 || r.stdout != "refreshed: state attested (attestation 7 at 2026-03-13T12:00:00.000Z, score 26)\n" {
			t.Fatalf("refresh: %s", r)
		}
		if runs, _, _ := att.Stats(); runs != 1 {
			t.Errorf("%d attestations ran", runs)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		url := serve(t, apitest.New(newSnap), token)
		noTokenURL := serve(t, apitest.New(newSnap), "")
		broken := apitest.New(newSnap)
		broken.SetNext(func(engine.Snapshot) (engine.Snapshot, error) {
			return engine.Snapshot{}, fmt.Errorf("engine is shut down")
		})
		brokenURL := serve(t, broken, token)
		for i, tc := range []struct {
			url, file string
			code      int
			stderr    string
		}{
			{url, writeFile(t, "wrong", []byte("not-the-token")), 1, "refresh refused (401 Unauthorized): the attestor did not accept the token in"},
			{url, writeFile(t, "almost", []byte(token[:len(token)-1]+"x")), 1, "(unauthorized: wrong token)"},
			{noTokenURL, tokFile, 1, "refresh refused (403 Forbidden): the attestor has no API token configured"},
			{brokenURL, tokFile, 1, "refresh failed (HTTP 503): refresh failed: engine is shut down"},
			{deadAddr(t), tokFile, 1, "refresh: attestor unreachable:"},
			{url, writeFile(t, "empty", []byte(" \n")), 2, "api token is empty"},
			{url, writeFile(t, "spaced", []byte("two words")), 2, "api token holds white space"},
			{url, filepath.Join(t.TempDir(), "missing"), 2, "read token:"},
		} {
			r := attestctl(t, "", nil, "--addr", tc.url, "refresh", "--token-file", tc.file)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) || r.stdout != "" {
				t.Errorf("Test %d: %s\nwant exit %d with %q", i, r, tc.code, tc.stderr)
			}
			if strings.Contains(r.stderr, token) {
				t.Errorf("Test %d: the token is printed: %s", i, r.stderr)
			}
		}
	})
}

func TestVerifyBundle(t *testing.T) {
	t.Parallel()
	b := testBundle(t, state.Degraded)
	raw := marshal(t, b)
	indented, err := json.MarshalIndent(b, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, "key", testKey)

	// The answer of the real API, saved as a client would.
	url := serve(t, apitest.New(snapshotOf(t, b)), "")
	resp, err := http.Get(url + "/api/v1/attest")
	if err != nil {
		t.Fatal(err)
	}
	apiAnswer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}

	ok := func(t *testing.T, stdin string, args ...string) {
		t.Helper()
		r := attestctl(t, stdin, nil, append([]string{"verify-bundle", "--key", keyFile}, args...)...)
		want := "bundle signature OK: state degraded, attestation 7 at 2026-03-13T12:00:00.000Z\n" +
			"  bundle_hmac:      HMAC-SHA256, verified with " + keyFile + " (key fingerprint " + fingerprint(testKey) + ")\n" +
			"  bundle_signature: none\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("verify-bundle %q: %s", args, r)
		}
	}
	ok(t, "", writeFile(t, "b.json", raw))
	ok(t, "", writeFile(t, "indented.json", indented))
	ok(t, "", writeFile(t, "answer.json", apiAnswer))
	ok(t, string(raw), "-")
	ok(t, string(apiAnswer)) // stdin by default
	// Flags after the argument work too.
	if r := attestctl(t, "", nil, "verify-bundle", writeFile(t, "b.json", raw), "--key", keyFile); r.code != 0 {
		t.Errorf("flag after argument: %s", r)
	}

	bad := func(t *testing.T, name string, data []byte, key, want string) {
		t.Helper()
		r := attestctl(t, "", nil, "verify-bundle", "--key", key, writeFile(t, "bad.json", data))
		if r.code != 1 || !strings.Contains(r.stderr, want) || r.stdout != "" {
			t.Errorf("%s: %s\nwant exit 1 with %q", name, r, want)
		}
	}
	bad(t, "other key", raw, writeFile(t, "key2", append([]byte(nil), append(testKey, '\n')...)), "bundle_hmac does not match the bundle")
	bad(t, "not JSON", []byte("hello"), keyFile, "not a JSON object")
	bad(t, "pending answer", []byte(`{"state":"pending","bundle":null}`), keyFile, "still pending")

	// Tamper with each top-level field in turn, and with nested ones.
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	tampered := 0
	for k := range top {
		if k == "bundle_hmac" {
			continue
		}
		m := cloneMap(t, top)
		m[k] = tamper(m[k])
		bad(t, "tampered "+k, marshal(t, m), keyFile, "bundle signature INVALID: verify bundle: bundle_hmac does not match the bundle")
		tampered++
	}
	if tampered < 18 {
		t.Fatalf("only %d fields tampered", tampered)
	}
	for name, edit := range map[string]func(m map[string]any){
		"finding message": func(m map[string]any) {
			m["checks"].(map[string]any)["binaries"].(map[string]any)["findings"].([]any)[0].(map[string]any)["message"] = "all fine"
		},
		"pcr": func(m map[string]any) {
			m["boot_measurements"].(map[string]any)["pcrs"].(map[string]any)["0"] = strings.Repeat("00", 32)
		},
		"removed member": func(m map[string]any) { delete(m, "failures") },
		"added member":   func(m map[string]any) { m["note"] = "hello" },
		"hmac digit": func(m map[string]any) {
			s := m["bundle_hmac"].(string)
			m["bundle_hmac"] = s[:10] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", s[10])+1)%16]) + s[11:]
		},
	} {
		m := cloneMap(t, top)
		edit(m)
		bad(t, name, marshal(t, m), keyFile, "does not match")
	}
	m := cloneMap(t, top)
	delete(m, "bundle_hmac")
	bad(t, "unsigned", marshal(t, m), keyFile, "bundle is unsigned")

	// Usage and I/O errors exit 2.
	for i, args := range [][]string{
		{"verify-bundle", "--key", filepath.Join(t.TempDir(), "nokey"), writeFile(t, "b.json", raw)},
		{"verify-bundle", "--key", writeFile(t, "empty", nil), writeFile(t, "b.json", raw)},
		{"verify-bundle", "--key", keyFile, filepath.Join(t.TempDir(), "nobundle.json")},
	} {
		if r := attestctl(t, "", nil, args...); r.code != 2 {
			t.Errorf("Test %d: %q: %s, want exit 2", i, args, r)
		}
	}
}

func cloneMap(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(marshal(t, m), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// tamper returns v changed by the smallest edit of its type.
func tamper(v any) any {
	switch x := v.(type) {
	case nil:
		return "x"
	case bool:
		return !x
	case float64:
		return x + 1
	case string:
		return x + "x"
	case []any:
		return append(x, "x")
	case map[string]any:
		x["x"] = 1
		return x
	}
	panic(fmt.Sprintf("tamper %T", v))
}

func TestGate(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		st     state.State
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{state.Attested, nil, 0, "attestor state attested\n", ""},
		{state.Degraded, []string{"--until", "degraded"}, 0, "attestor state degraded\n", ""},
		{state.Attested, []string{"--until", "degraded"}, 0, "attestor state attested\n", ""},
		// failed exits at once, long before the timeout.
		{state.Failed, []string{"--timeout", "1h"}, 1, "", "gate: attestor state is failed (it holds until the attestor restarts)"},
		{state.Failed, []string{"--until", "degraded", "--timeout", "1h"}, 1, "", "attestor state is failed"},
		{state.Pending, []string{"--timeout", "300ms", "--interval", "50ms"}, 1, "", "gate: timed out after 300ms: attestor state is pending"},
		{state.Degraded, []string{"--timeout", "300ms", "--interval", "50ms"}, 1, "", "gate: timed out after 300ms: attestor state is degraded"},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			url := serve(t, apitest.New(engine.Snapshot{State: tc.st}), "")
			r := attestctl(t, "", nil, append([]string{"gate", "--addr", url}, tc.args...)...)
			if r.code != tc.code || r.stdout != tc.stdout || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("Test %d: gate %q against %s: %s", i, tc.args, tc.st, r)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		r := attestctl(t, "", []string{"ATTESTCTL_ADDR=" + deadAddr(t)}, "gate", "--timeout", "300ms", "--interval", "50ms")
		if r.code != 1 || !strings.Contains(r.stderr, "gate: timed out after 300ms: attestor unreachable: dial tcp") ||
			!strings.Contains(r.stderr, "connection refused") {
			t.Errorf("gate unreachable: %s", r)
		}
	})

	t.Run("pending then attested", func(t *testing.T) {
		t.Parallel()
		att := apitest.New(engine.Snapshot{State: state.Pending})
		url := serve(t, att, "")
		cmd := command(t, "", nil, "gate", "--addr", url, "--timeout", "1m", "--interval", "20ms")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once the gate has seen pending, the attestation ends.
		sc := bufio.NewScanner(stderr)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "attestctl: gate: warning: no --pubkey") {
			t.Fatalf("gate's first line: %q, want the warning that it trusts the port", sc.Text())
		}
		if !sc.Scan() || sc.Text() != "attestctl: gate: waiting: attestor state is pending" {
			t.Fatalf("gate's second line: %q", sc.Text())
		}
		att.Set(engine.Snapshot{State: state.Attested})
		_, _ = io.Copy(io.Discard, stderr)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("gate: %v (stdout %q)", err, stdout.String())
		}
		if stdout.String() != "attestor state attested\n" {
			t.Errorf("gate stdout %q", stdout.String())
		}
	})
}
