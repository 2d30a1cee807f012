package ostree_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gowebpki/jcs"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/plugins/ostree"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m))
}

// Checksums of the booted deployments in the fixtures.
const (
	plainBooted     = "7df00cefdb9b4a6dc82e0f8675f5b16c4d4cc8b3217f01bef1943a040754f4e8"
	layeredBooted   = "e914be4225df42c56088c87d01d48745a7ca4d22f9226f8027d0889f6ec9ac69"
	stagedBooted    = "75a88ad4788ae23c4d185aacf067d56a3e651d3cccb9c87697f804825150be0b"
	containerBooted = "bda246d39d8d165d0d71e5f4dc65f9d064c4f268a9d2bcb8547d0703b22e7f29"
)

func fixturePath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeRPMOStree writes an executable that behaves like rpm-ostree asked
// for `status --json`: body runs only for exactly those arguments.
func fakeRPMOStree(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rpm-ostree")
	script := "#!/bin/sh\n" +
		"# Fake rpm-ostree for the ostree check's tests.\n" +
		"if [ \"$#\" -ne 2 ] || [ \"$1\" != status ] || [ \"$2\" != --json ]; then\n" +
		"  echo \"error: unexpected arguments: $*\" >&2\n  exit 2\nfi\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func printsFixture(t *testing.T, name string) string {
	return fakeRPMOStree(t, "exec cat '"+fixturePath(t, name)+"'")
}

// printsFixtureBuiltin is printsFixture for a sandboxed plugin, which may
// run the fake and its shell but no other program: the fixture's bytes are
// in the script, printed by the printf built-in.
func printsFixtureBuiltin(t *testing.T, name string) string {
	quoted := "'" + strings.ReplaceAll(mustRead(t, fixturePath(t, name)), "'", `'\''`) + "'"
	return fakeRPMOStree(t, "printf '%s' "+quoted)
}

// Fake rpm-ostree behaviours.
const (
	failing = `echo "error: Couldn't start daemon: Error setting up sysroot: loading sysroot: Unexpected state: /run/ostree-booted found, but no /boot/loader directory" >&2
exit 1`
	garbage = `printf '\001\002<html>502 Bad Gateway</html>\n'`
	huge    = `head -c 20971520 /dev/zero`
	silent  = `exit 0`
	hanging = `sleep 300 & wait`
	// hangingBuiltin hangs without running another program, which a
	// sandboxed plugin may not: it stops itself until killed.
	hangingBuiltin = `kill -STOP $$`
)

// machine is a fixture machine that is not an ostree system: a marker
// path, a sysroot path and a kernel command line.
type machine struct {
	marker, sysroot, cmdline string
}

// bootedMachine is a sysroot written by the real ostree tool with one
// deployment (commit version 41.20250309.0, the given origin file or
// ostree's own) booted.
func bootedMachine(t *testing.T, osname, origin string) (*sysroot, string) {
	t.Helper()
	s := newSysroot(t, osname)
	c := s.commit("41.20250309.0")
	s.deploy(osname+"/stable", origin)
	s.boot(c, 0)
	return s, c
}

// plainMachine is a machine that is not an ostree system.
func plainMachine(t *testing.T) machine {
	root := t.TempDir()
	m := machine{marker: filepath.Join(root, "run", "ostree-booted"), sysroot: filepath.Join(root, "sysroot"), cmdline: filepath.Join(root, "cmdline")}
	must(t, os.WriteFile(m.cmdline, []byte(mustRead(t, fixturePath(t, "cmdline-debian"))), 0o600))
	return m
}

func (m machine) config(rpmOstree string, extra ...any) map[string]any {
	c := map[string]any{"rpm_ostree": rpmOstree, "run_ostree_booted": m.marker, "sysroot": m.sysroot, "cmdline_path": m.cmdline, "timeout": "20s"}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

func codes(fs []sdk.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Code+":"+f.Severity.String())
	}
	sort.Strings(out)
	return out
}

// measure configures a fresh check with cfg and measures once.
func measure(t *testing.T, cfg map[string]any) *sdktest.Result {
	t.Helper()
	h := sdktest.New(t, ostree.New())
	if err := h.Configure(cfg); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return h.MustMeasure()
}

// checkDigest verifies deployment_digest = sha256(JCS(deployment)) and
// returns the deployment object.
func checkDigest(t *testing.T, res *sdktest.Result) map[string]any {
	t.Helper()
	return checkHashed(t, res, "deployment_digest", "deployment")
}

// checkReference verifies deployment_reference = sha256(JCS(reference))
// and returns the reference object.
func checkReference(t *testing.T, res *sdktest.Result) map[string]any {
	t.Helper()
	return checkHashed(t, res, "deployment_reference", "reference")
}

// checkHashed verifies that measurement digestKey is the hex SHA-256 of
// the JCS form of measurement objKey, and returns that object.
func checkHashed(t *testing.T, res *sdktest.Result, digestKey, objKey string) map[string]any {
	t.Helper()
	var digest string
	if err := res.Decode(digestKey, &digest); err != nil {
		t.Fatalf("%s: %v", digestKey, err)
	}
	canon, err := jcs.Transform(res.Measurements[objKey])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(canon)
	if hex.EncodeToString(sum[:]) != digest {
		t.Fatalf("%s %s is not sha256(JCS(%s)) for %s", digestKey, digest, objKey, canon)
	}
	var obj map[string]any
	must(t, json.Unmarshal(res.Measurements[objKey], &obj))
	return obj
}

// refDigest is sha256(JCS(v)) in hex.
func refDigest(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	must(t, err)
	canon, err := jcs.Transform(raw)
	must(t, err)
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	d := sdktest.New(t, ostree.New()).Description()
	if d.Name != "ostree" || d.Version == "" || !reflect.DeepEqual(d.Fills, []string{"deployment_digest"}) {
		t.Fatalf("description = %+v", d)
	}
	want := map[string]sdk.Severity{
		"ostree.not_ostree": sdk.SeverityInfo, "ostree.rpm_ostree_missing": sdk.SeverityMedium, "ostree.rpm_ostree_failed": sdk.SeverityMedium,
		"ostree.bad_output": sdk.SeverityMedium, "ostree.no_booted_deployment": sdk.SeverityHigh, "ostree.layered_packages": sdk.SeverityLow,
		"ostree.checksum_mismatch": sdk.SeverityHigh, "ostree.staged": sdk.SeverityInfo, "ostree.fallback": sdk.SeverityInfo,
		"ostree.staged_unexpected": sdk.SeverityHigh, "ostree.booted_by_karg": sdk.SeverityLow, "ostree.unlocked": sdk.SeverityHigh,
		"ostree.live_applied": sdk.SeverityMedium, "ostree.unverified_origin": sdk.SeverityMedium, "ostree.unexpected_deployment": sdk.SeverityHigh,
		"ostree.composefs_mismatch": sdk.SeverityHigh,
	}
	got := map[string]sdk.Severity{}
	for _, f := range d.Findings {
		got[f.Code] = f.DefaultSeverity
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("findings = %v, want %v", got, want)
	}
	readme := mustRead(t, "README.md")
	for code, sev := range want {
		if !strings.Contains(readme, "`"+code+"` | "+sev.String()) {
			t.Errorf("README.md does not document %s with severity %s", code, sev)
		}
	}
}

// TestRPMOStree measures fixture outputs of the real rpm-ostree.
func TestRPMOStree(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name     string
		fixture  string
		extra    []any
		checksum string
		findings []string
		state    string
		check    func(t *testing.T, dep map[string]any, res *sdktest.Result)
	}{
		{name: "plain", fixture: "status-plain.json", checksum: plainBooted, findings: []string{}, state: "attested",
			check: func(t *testing.T, dep map[string]any, _ *sdktest.Result) {
				if dep["osname"] != "fedora-iot" || dep["origin"] != "fedora-iot:fedora/stable/x86_64/iot" || dep["version"] != "41.20250309.0" || dep["base_checksum"] != "" {
					t.Errorf("deployment = %v", dep)
				}
			}},
		{name: "layered", fixture: "status-layered.json", checksum: layeredBooted, findings: []string{"ostree.layered_packages:low"}, state: "attested",
			check: func(t *testing.T, dep map[string]any, res *sdktest.Result) {
				if !reflect.DeepEqual(dep["packages"], []any{"htop", "vim-enhanced"}) || !reflect.DeepEqual(dep["requested_local_packages"], []any{"secure-ai-agent-1.4.2-1.fc41.x86_64"}) {
					t.Errorf("deployment = %v", dep)
				}
				msg := res.Find("ostree.layered_packages")[0].Message
				if !strings.Contains(msg, "2688ebd8bb07649adacee7717120b40d8f8d02dad66a0018f89f1e2b1d9f9762") || !strings.Contains(msg, "secure-ai-agent") {
					t.Errorf("layered message = %q", msg)
				}
			}},
		{name: "staged", fixture: "status-staged.json", checksum: stagedBooted, findings: []string{"ostree.staged:info"}, state: "attested",
			check: func(t *testing.T, _ map[string]any, res *sdktest.Result) {
				f := res.Find("ostree.staged")[0]
				if f.Subject != "cb3b6510f51c7d2f6dc9fdbf44805ed4bfa47923c0af18751326b98826008431" || !strings.Contains(f.Message, "9.5.20250305") {
					t.Errorf("staged finding = %+v", f)
				}
			}},
		{name: "container", fixture: "status-container.json", checksum: containerBooted, findings: []string{}, state: "attested",
			check: func(t *testing.T, dep map[string]any, _ *sdktest.Result) {
				if dep["container_image_reference"] != "ostree-remote-registry:fedora:quay.io/fedora/fedora-coreos:stable" || dep["origin"] != "" {
					t.Errorf("deployment = %v", dep)
				}
			}},
		{name: "pinned checksum matches", fixture: "status-plain.json", extra: []any{"expected_checksum", strings.ToUpper(plainBooted)}, checksum: plainBooted, findings: []string{}, state: "attested"},
		{name: "pinned checksum differs", fixture: "status-staged.json", extra: []any{"expected_checksum", plainBooted}, checksum: stagedBooted,
			findings: []string{"ostree.checksum_mismatch:high", "ostree.staged:info"}, state: "degraded"},
	} {
		m, _ := bootedMachine(t, "fedora-iot", "")
		res := measure(t, m.config(printsFixture(t, tc.fixture), tc.extra...))
		if got := codes(res.Findings); !reflect.DeepEqual(got, tc.findings) {
			t.Errorf("Test %d (%s): findings = %v, want %v", i, tc.name, got, tc.findings)
		}
		if got := plugintest.DefaultState(res.Findings); got != tc.state {
			t.Errorf("Test %d (%s): state %s, want %s", i, tc.name, got, tc.state)
		}
		var source string
		if err := res.Decode("source", &source); err != nil || source != "rpm-ostree" {
			t.Errorf("Test %d (%s): source = %q, %v", i, tc.name, source, err)
		}
		dep := checkDigest(t, res)
		if dep["checksum"] != tc.checksum || dep["source"] != "rpm-ostree" {
			t.Errorf("Test %d (%s): deployment = %v", i, tc.name, dep)
		}
		if tc.check != nil {
			tc.check(t, dep, res)
		}
	}
}

// TestDigestStableAndDistinct: the same deployment measures the same every
// time; another deployment measures differently.
func TestDigestStableAndDistinct(t *testing.T) {
	t.Parallel()
	m, _ := bootedMachine(t, "fedora-iot", "")
	h := sdktest.New(t, ostree.New())
	must(t, h.Configure(m.config(printsFixture(t, "status-plain.json"))))
	var a, b, c string
	must(t, h.MustMeasure().Decode("deployment_digest", &a))
	must(t, h.MustMeasure().Decode("deployment_digest", &b))
	must(t, measure(t, m.config(printsFixture(t, "status-layered.json"))).Decode("deployment_digest", &c))
	if a != b || a == c || len(a) != 64 {
		t.Fatalf("digests %s %s %s: want the first two equal and the third different", a, b, c)
	}
}

// TestBrokenRPMOStree: every way rpm-ostree can misbehave is a finding,
// and the check falls back to ostree's files.
func TestBrokenRPMOStree(t *testing.T) {
	t.Parallel()
	truncated := fakeRPMOStree(t, "head -c 700 '"+fixturePath(t, "status-plain.json")+"'")
	for i, tc := range []struct {
		name    string
		rpm     func(t *testing.T) string
		extra   []any
		code    string
		message string
	}{
		{name: "fails", rpm: func(t *testing.T) string { return fakeRPMOStree(t, failing) }, code: "ostree.rpm_ostree_failed:medium", message: "exit status 1; stderr: error: Couldn't start daemon"},
		{name: "hangs", rpm: func(t *testing.T) string { return fakeRPMOStree(t, hanging) }, extra: []any{"timeout", "500ms"}, code: "ostree.rpm_ostree_failed:medium", message: "did not finish within 500ms"},
		{name: "garbage", rpm: func(t *testing.T) string { return fakeRPMOStree(t, garbage) }, code: "ostree.bad_output:medium", message: "not rpm-ostree status JSON"},
		{name: "silent", rpm: func(t *testing.T) string { return fakeRPMOStree(t, silent) }, code: "ostree.bad_output:medium", message: "empty output"},
		{name: "truncated", rpm: func(*testing.T) string { return truncated }, code: "ostree.bad_output:medium", message: "unexpected end of JSON input"},
		{name: "20 MiB", rpm: func(t *testing.T) string { return fakeRPMOStree(t, huge) }, code: "ostree.bad_output:medium", message: "more than max_output_bytes (16777216 bytes)"},
		{name: "over a small limit", rpm: func(t *testing.T) string { return printsFixture(t, "status-plain.json") }, extra: []any{"max_output_bytes", 1024}, code: "ostree.bad_output:medium", message: "more than max_output_bytes (1024 bytes)"},
		// rpm-ostree missing is info when the fallback measured everything.
		{name: "missing", rpm: func(t *testing.T) string { return filepath.Join(t.TempDir(), "rpm-ostree") }, code: "ostree.rpm_ostree_missing:info", message: "does not exist"},
		{name: "not on PATH", rpm: func(*testing.T) string { return "rpm-ostree-not-installed-here" }, code: "ostree.rpm_ostree_missing:info", message: "not found"},
	} {
		m, booted := bootedMachine(t, "fedora-iot", "")
		res := measure(t, m.config(tc.rpm(t), tc.extra...))
		want := []string{"ostree.fallback:info", tc.code}
		sort.Strings(want)
		if got := codes(res.Findings); !reflect.DeepEqual(got, want) {
			t.Errorf("Test %d (%s): findings = %v, want %v", i, tc.name, got, want)
			continue
		}
		f := res.Find(strings.Split(tc.code, ":")[0])[0]
		if !strings.Contains(f.Message, tc.message) {
			t.Errorf("Test %d (%s): message %q, want it to contain %q", i, tc.name, f.Message, tc.message)
		}
		wantState := "degraded"
		if strings.HasSuffix(tc.code, ":info") {
			wantState = "attested"
		}
		if got := plugintest.DefaultState(res.Findings); got != wantState {
			t.Errorf("Test %d (%s): state %s, want %s", i, tc.name, got, wantState)
		}
		dep := checkDigest(t, res)
		if dep["source"] != "ostree-files" || dep["checksum"] != booted || dep["osname"] != "fedora-iot" {
			t.Errorf("Test %d (%s): fallback deployment = %v", i, tc.name, dep)
		}
	}
}

// TestBrokenRPMOStreeNoFallback: rpm-ostree fails and ostree's files do not
// lead to a deployment either: no digest, a high finding.
func TestBrokenRPMOStreeNoFallback(t *testing.T) {
	t.Parallel()
	m, _ := bootedMachine(t, "fedora-iot", "")
	m.oldRecord()
	must(t, os.WriteFile(m.cmdline, []byte(mustRead(t, fixturePath(t, "cmdline-debian"))), 0o600))
	res := measure(t, m.config(fakeRPMOStree(t, failing)))
	if got := codes(res.Findings); !reflect.DeepEqual(got, []string{"ostree.no_booted_deployment:high", "ostree.rpm_ostree_failed:medium"}) {
		t.Fatalf("findings = %v", got)
	}
	if _, ok := res.Measurements["deployment_digest"]; ok {
		t.Fatal("deployment_digest present without a deployment")
	}
	if msg := res.Find("ostree.no_booted_deployment")[0].Message; !strings.Contains(msg, "no ostree= argument") {
		t.Fatalf("message %q", msg)
	}
}

func TestNoBootedDeployment(t *testing.T) {
	t.Parallel()
	m, _ := bootedMachine(t, "fedora-iot", "")
	res := measure(t, m.config(printsFixture(t, "status-no-booted.json")))
	if got := codes(res.Findings); !reflect.DeepEqual(got, []string{"ostree.no_booted_deployment:high"}) {
		t.Fatalf("findings = %v", got)
	}
	if _, ok := res.Measurements["deployment_digest"]; ok {
		t.Fatal("deployment_digest present without a booted deployment")
	}
}

func TestNotOstree(t *testing.T) {
	t.Parallel()
	m := plainMachine(t)
	ran := filepath.Join(t.TempDir(), "ran")
	rpm := fakeRPMOStree(t, "touch '"+ran+"'\nexec cat '"+fixturePath(t, "status-plain.json")+"'")
	res := measure(t, m.config(rpm))
	if got := codes(res.Findings); !reflect.DeepEqual(got, []string{"ostree.not_ostree:info"}) {
		t.Fatalf("findings = %v", got)
	}
	if plugintest.DefaultState(res.Findings) != "attested" {
		t.Fatal("a non-ostree machine must not degrade the state")
	}
	var sys bool
	if err := res.Decode("ostree_system", &sys); err != nil || sys {
		t.Fatalf("ostree_system = %v, %v", sys, err)
	}
	for _, k := range []string{"deployment_digest", "deployment", "source"} {
		if _, ok := res.Measurements[k]; ok {
			t.Errorf("%s measured on a non-ostree machine", k)
		}
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("rpm-ostree was run on a non-ostree machine")
	}

	// A sysroot with ostree/ but no marker is still an ostree system.
	must(t, os.MkdirAll(filepath.Join(m.sysroot, "ostree"), 0o700))
	res = measure(t, m.config(rpm))
	if got := codes(res.Findings); !reflect.DeepEqual(got, []string{}) {
		t.Fatalf("sysroot/ostree without marker: findings = %v", got)
	}
}

// TestThisMachine measures the real system with the default configuration.
// On a machine that is not ostree-booted (a development machine, CI) the
// result is an honest info finding and no digest.
func TestThisMachine(t *testing.T) {
	t.Parallel()
	h := sdktest.New(t, ostree.New())
	res := h.MustMeasure()
	_, markerErr := os.Stat("/run/ostree-booted")
	fi, sysErr := os.Stat("/sysroot/ostree")
	if markerErr != nil && (sysErr != nil || !fi.IsDir()) {
		if got := codes(res.Findings); !reflect.DeepEqual(got, []string{"ostree.not_ostree:info"}) {
			t.Fatalf("findings = %v", got)
		}
		if _, ok := res.Measurements["deployment_digest"]; ok {
			t.Fatal("digest on a non-ostree machine")
		}
		return
	}
	t.Logf("this machine is an ostree system: %s %v", res.Measurements["deployment_digest"], res.Findings)
}

func TestConfigureRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		cfg  any
		want string
	}{
		{map[string]any{"nope": 1}, "nope: unknown key"},
		{map[string]any{"timeout": "forever"}, "timeout: not a duration"},
		{map[string]any{"rpm_ostree": "./rpm-ostree"}, "rpm_ostree:"},
		{map[string]any{"expected_checksum": "deadbeef"}, "expected_checksum:"},
		{map[string]any{"sysroot": "sysroot"}, "sysroot: must be an absolute path"},
	} {
		h := sdktest.New(t, ostree.New())
		err := h.Configure(tc.cfg)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: Configure(%v) = %v, want a ConfigError containing %q", i, tc.cfg, err, tc.want)
		}
	}
}

func TestRunByHand(t *testing.T) {
	t.Parallel()
	plugintest.RunByHand(t, "ostree")
}

// TestSubprocess runs the real executable through go-plugin, as the daemon
// does, with a fake rpm-ostree that hangs (and must be killed) and then
// with one that answers. Each runs in a fresh process: the plugin sandboxes
// itself to its first configuration's rpm-ostree, so the fakes use shell
// built-ins only.
func TestSubprocess(t *testing.T) {
	t.Parallel()
	m, _ := bootedMachine(t, "fedora-iot", "")
	for i, step := range []struct {
		rpm   string
		extra []any
		codes string
		src   string
		msg   string
	}{
		{rpm: fakeRPMOStree(t, hangingBuiltin), extra: []any{"timeout", "300ms"}, codes: "ostree.fallback:info,ostree.rpm_ostree_failed:medium", src: `"ostree-files"`,
			msg: "status --json did not finish within 300ms; it and its process group were killed"},
		{rpm: printsFixtureBuiltin(t, "status-layered.json"), codes: "ostree.layered_packages:low", src: `"rpm-ostree"`},
	} {
		p := plugintest.Start(t, "ostree")
		cfg, _ := json.Marshal(m.config(step.rpm, step.extra...))
		p.MustConfigure(t, cfg)
		res := p.MustMeasure(t)
		if got := strings.Join(codes(res.Findings), ","); got != step.codes || string(res.Measurements["source"]) != step.src {
			t.Fatalf("step %d: findings %s source %s, want %s %s\n%+v", i, got, res.Measurements["source"], step.codes, step.src, res.Findings)
		}
		if step.msg != "" && !hasMessage(res.Findings, ostree.CodeRPMOStreeFailed, step.msg) {
			t.Fatalf("step %d: findings %+v, want a message containing %q", i, res.Findings, step.msg)
		}
		if len(res.Measurements["deployment_digest"]) != 66 {
			t.Fatalf("step %d: deployment_digest = %s", i, res.Measurements["deployment_digest"])
		}
		var ce *sdk.ConfigError
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := p.Configure(ctx, []byte(`{"timeout":"0s"}`)); !errors.As(err, &ce) {
			t.Fatalf("bad config over the wire = %v, want ConfigError", err)
		}
		cancel()
	}
}

// TestPluginKilledKillsRPMOStree: when the daemon kills the plugin in the
// middle of a measurement, rpm-ostree does not survive it.
func TestPluginKilledKillsRPMOStree(t *testing.T) {
	t.Parallel()
	p := plugintest.Start(t, "ostree")
	m, _ := bootedMachine(t, "fedora-iot", "")
	fake := fakeRPMOStree(t, hangingBuiltin)
	cfg, _ := json.Marshal(m.config(fake, "timeout", "5m"))
	p.MustConfigure(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ended := make(chan string, 1)
	go func() {
		res, err := p.Measure(ctx, p.Desc, []byte("nonce"))
		if err != nil {
			ended <- err.Error()
			return
		}
		ended <- fmt.Sprintf("%+v", res.Findings)
	}()
	pid := waitChild(t, p.PID, fake, ended)
	p.Kill()
	waitGone(t, pid, fake)
}

// waitChild waits for the child of process parent whose command line
// names path (a fake rpm-ostree), and returns its pid. It fails when the
// measurement ends first (ended says how).
func waitChild(t *testing.T, parent int, path string, ended <-chan string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case how := <-ended:
			t.Fatalf("the measurement ended before %s was seen running: %s", path, how)
		default:
		}
		procs, err := filepath.Glob("/proc/[0-9]*")
		must(t, err)
		for _, dir := range procs {
			pid, err := strconv.Atoi(filepath.Base(dir))
			if err != nil || ppid(pid) != parent {
				continue
			}
			if cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline")); bytes.Contains(cmdline, []byte(path)) {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never ran %s", parent, path)
	return 0
}

// ppid returns the parent of pid, 0 when it is gone.
func ppid(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := bytes.LastIndexByte(stat, ')')
	if err != nil || i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(fields[1])
	return n
}

// waitGone waits until pid is no longer a running process whose command
// line names path (exited, a zombie, or its pid reused by something else).
func waitGone(t *testing.T, pid int, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z' || !bytes.Contains(cmdline, []byte(path)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("rpm-ostree (pid %d) outlived the plugin", pid)
}
