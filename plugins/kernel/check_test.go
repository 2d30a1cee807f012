package kernel_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/plugins/kernel"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m))
}

// paths returns the config paths for a fixture tree laid out like / .
func paths(root string) map[string]any {
	return map[string]any{
		"cmdline_path":     filepath.Join(root, "proc", "cmdline"),
		"tainted_path":     filepath.Join(root, "proc", "sys", "kernel", "tainted"),
		"modules_path":     filepath.Join(root, "proc", "modules"),
		"lockdown_path":    filepath.Join(root, "sys", "kernel", "security", "lockdown"),
		"sig_enforce_path": filepath.Join(root, "sys", "module", "module", "parameters", "sig_enforce"),
	}
}

func fixture(t *testing.T, dir string, extra map[string]any) map[string]any {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg := paths(root)
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

func measure(t *testing.T, cfg map[string]any) *sdktest.Result {
	t.Helper()
	h := sdktest.New(t, kernel.New())
	if err := h.Configure(cfg); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return h.MustMeasure()
}

// codes renders findings as sorted "code:severity" strings.
func codes(fs []sdk.Finding) string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Code+":"+f.Severity.String())
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// raw returns a measurement's JSON, or "absent".
func raw(r *sdktest.Result, key string) string {
	v, ok := r.Measurements[key]
	if !ok {
		return "absent"
	}
	return string(v)
}

func hasMessage(fs []sdk.Finding, code, substr string) bool {
	for _, f := range fs {
		if f.Code == code && strings.Contains(f.Message, substr) {
			return true
		}
	}
	return false
}

var strict = map[string]any{
	"required_params":            []string{"lockdown=integrity", "module.sig_enforce=1", "init_on_free=1"},
	"forbidden_params":           []string{"init", "debugfs=on", "module.sig_enforce=0", "nokaslr"},
	"min_lockdown":               "integrity",
	"require_module_sig_enforce": true,
}

func TestFixtures(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name     string
		dir      string
		extra    map[string]any
		lockdown string
		tainted  string
		flags    string
		sig      string
		sigCmd   string
		codes    string
		state    string
		messages map[string]string // code -> substring
	}{
		{"this machine, default policy", "firecracker_vm", nil,
			`"unavailable"`, "0", "[]", "absent", "false",
			"kernel.lockdown_unavailable:info,kernel.module_sig_unavailable:info", "attested",
			map[string]string{kernel.CodeModuleSigUnavailable: "no loadable module support", kernel.CodeLockdownUnavailable: "does not exist"}},
		{"this machine, module signatures required", "firecracker_vm", map[string]any{"require_module_sig_enforce": true},
			`"unavailable"`, "0", "[]", "absent", "false",
			"kernel.lockdown_unavailable:info,kernel.module_sig_unavailable:info", "attested", nil},
		{"this machine, lockdown required", "firecracker_vm", map[string]any{"min_lockdown": "integrity"},
			`"unavailable"`, "0", "[]", "absent", "false",
			"kernel.lockdown_below_minimum:high,kernel.lockdown_unavailable:info,kernel.module_sig_unavailable:info", "degraded",
			map[string]string{kernel.CodeLockdownBelowMinimum: "must be at least integrity but the kernel exposes no lockdown state"}},
		{"this machine, init args are not kernel parameters", "firecracker_vm", map[string]any{"forbidden_params": []string{"--auth-required", "--addr"}, "required_params": []string{"nomodule", "panic=1"}},
			`"unavailable"`, "0", "[]", "absent", "false",
			"kernel.lockdown_unavailable:info,kernel.module_sig_unavailable:info", "attested", nil},
		{"hardened, strict policy", "fcos_hardened", strict,
			`"integrity"`, "0", "[]", "true", "true", "", "attested", nil},
		{"hardened, confidentiality required", "fcos_hardened", map[string]any{"min_lockdown": "confidentiality"},
			`"integrity"`, "0", "[]", "true", "true", "kernel.lockdown_below_minimum:high", "degraded",
			map[string]string{kernel.CodeLockdownBelowMinimum: "kernel lockdown is integrity, below the minimum confidentiality"}},
		{"hardened, forbidden and missing parameters", "fcos_hardened", map[string]any{"forbidden_params": []string{"slab-nomerge", "rw"}, "required_params": []string{"lockdown=confidentiality", "ro"}},
			`"integrity"`, "0", "[]", "true", "true",
			"kernel.param_forbidden:high,kernel.param_forbidden:high,kernel.param_missing:high,kernel.param_missing:high", "degraded",
			map[string]string{
				kernel.CodeParamForbidden: `forbidden kernel parameter "slab-nomerge" is on the kernel command line: "slab_nomerge"`,
				kernel.CodeParamMissing:   `required kernel parameter "lockdown=confidentiality" is not in effect: the last lockdown on the kernel command line is "lockdown=integrity"`,
			}},
		{"nvidia workstation, default policy", "workstation_nvidia", nil,
			`"none"`, "12289", `[{"bit":0,"letter":"P","name":"proprietary_module"},{"bit":12,"letter":"O","name":"oot_module"},{"bit":13,"letter":"E","name":"unsigned_module"}]`,
			"false", "false", "kernel.tainted:medium,kernel.tainted:medium,kernel.tainted:medium", "degraded",
			map[string]string{kernel.CodeTainted: "the kernel is tainted: E (unsigned_module, bit 13): unsigned module was loaded"}},
		{"nvidia workstation, taints tolerated", "workstation_nvidia", map[string]any{"tolerated_taints": []string{"P", "oot_module", "E"}},
			`"none"`, "12289", `[{"bit":0,"letter":"P","name":"proprietary_module"},{"bit":12,"letter":"O","name":"oot_module"},{"bit":13,"letter":"E","name":"unsigned_module"}]`,
			"false", "false", "", "attested", nil},
		{"nvidia workstation, strict policy", "workstation_nvidia", merge(strict, map[string]any{"tolerated_taints": []string{"P", "O", "E"}}),
			`"none"`, "12289", "", "false", "false",
			"kernel.lockdown_below_minimum:high,kernel.module_sig_not_enforced:high,kernel.param_missing:high,kernel.param_missing:high,kernel.param_missing:high", "failed", // 5 x 20 reaches the failed threshold
			map[string]string{
				kernel.CodeModuleSigNotEnforced: "is N and lockdown is none: the kernel loads unsigned modules (module.sig_enforce=1 is not on the kernel command line)",
				kernel.CodeParamMissing:         `required kernel parameter "module.sig_enforce=1" is not on the kernel command line`,
			}},
		{"debian, warning taint", "debian_confidentiality", map[string]any{"min_lockdown": "confidentiality"},
			`"confidentiality"`, "512", `[{"bit":9,"letter":"W","name":"warn"}]`, "true", "false", "kernel.tainted:medium", "degraded",
			map[string]string{kernel.CodeTainted: "W (warn, bit 9)"}},
		{"debian, warning tolerated", "debian_confidentiality", map[string]any{"tolerated_taints": []string{"warn"}, "require_module_sig_enforce": true},
			`"confidentiality"`, "512", "", "true", "false", "", "attested", nil},
	} {
		r := measure(t, fixture(t, tc.dir, tc.extra))
		name := tc.name
		data, err := os.ReadFile(filepath.Join("testdata", tc.dir, "proc", "cmdline"))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(strings.TrimSuffix(string(data), "\n"))
		if got := raw(r, kernel.KeyCmdline); got != string(want) {
			t.Errorf("Test %d (%s): kernel_cmdline = %s, want %s", i, name, got, want)
		}
		for _, m := range []struct{ key, want string }{
			{kernel.KeyLockdown, tc.lockdown},
			{kernel.KeyTainted, tc.tainted},
			{kernel.KeyModuleSigEnforce, tc.sig},
			{kernel.KeyModuleSigEnforceCmdline, tc.sigCmd},
		} {
			if got := raw(r, m.key); got != m.want {
				t.Errorf("Test %d (%s): %s = %s, want %s", i, name, m.key, got, m.want)
			}
		}
		if tc.flags != "" {
			if got := raw(r, kernel.KeyTaintFlags); got != tc.flags {
				t.Errorf("Test %d (%s): taint_flags = %s, want %s", i, name, got, tc.flags)
			}
		}
		if got := codes(r.Findings); got != tc.codes {
			t.Errorf("Test %d (%s): findings %s, want %s\n%+v", i, name, got, tc.codes, r.Findings)
		}
		if got := plugintest.DefaultState(r.Findings); got != tc.state {
			t.Errorf("Test %d (%s): state %s, want %s", i, name, got, tc.state)
		}
		for code, msg := range tc.messages {
			if !hasMessage(r.Findings, code, msg) {
				t.Errorf("Test %d (%s): no %s finding containing %q in %+v", i, name, code, msg, r.Findings)
			}
		}
	}
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// copyTree copies the fixture dir into a temp dir and returns its root.
func copyTree(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", dir)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

type mutation func(t *testing.T, path string)

func content(b string) mutation {
	return func(t *testing.T, p string) {
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func remove(t *testing.T, p string) {
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func huge(t *testing.T, p string) {
	if err := os.Truncate(p, 8<<30); err != nil { // sparse 8 GiB
		t.Fatal(err)
	}
}

func directory(t *testing.T, p string) {
	remove(t, p)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

func fifo(t *testing.T, p string) {
	remove(t, p)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
}

func symlinkLoop(t *testing.T, p string) {
	remove(t, p)
	if err := os.Symlink(filepath.Base(p), p); err != nil {
		t.Fatal(err)
	}
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		file   string // config key
		mutate mutation
		code   string
		msg    string
		absent string // measurement that must be absent
		state  string
	}{
		{"cmdline_path", content(""), kernel.CodeMalformed, "malformed: empty: 0 bytes", kernel.KeyCmdline, "degraded"},
		{"cmdline_path", content("quiet\x00splash\n"), kernel.CodeMalformed, "NUL byte at offset 5", kernel.KeyCmdline, "degraded"},
		{"cmdline_path", huge, kernel.CodeMalformed, "too large: more than 65536 bytes", kernel.KeyCmdline, "degraded"},
		{"cmdline_path", remove, kernel.CodeUnreadable, "does not exist", kernel.KeyCmdline, "degraded"},
		{"cmdline_path", directory, kernel.CodeUnreadable, "not a regular file", kernel.KeyCmdline, "degraded"},
		{"cmdline_path", fifo, kernel.CodeUnreadable, "not a regular file", kernel.KeyCmdline, "degraded"},
		{"cmdline_path", symlinkLoop, kernel.CodeUnreadable, "too many levels of symbolic links", kernel.KeyCmdline, "degraded"},
		{"lockdown_path", content(""), kernel.CodeMalformed, "lockdown file", kernel.KeyLockdown, "degraded"},
		{"lockdown_path", content("none integrity confidentiality\n"), kernel.CodeMalformed, "no mode in brackets", kernel.KeyLockdown, "degraded"},
		{"lockdown_path", content("\x00\x01\x02garbage"), kernel.CodeMalformed, "is not one line", kernel.KeyLockdown, "degraded"},
		{"lockdown_path", huge, kernel.CodeMalformed, "too large", kernel.KeyLockdown, "degraded"},
		{"lockdown_path", fifo, kernel.CodeUnreadable, "not a regular file", kernel.KeyLockdown, "degraded"},
		{"tainted_path", content(""), kernel.CodeMalformed, "empty", kernel.KeyTainted, "degraded"},
		{"tainted_path", content("tainted\n"), kernel.CodeMalformed, `"tainted" is not a decimal unsigned integer`, kernel.KeyTaintFlags, "degraded"},
		{"tainted_path", content("99999999999999999999999\n"), kernel.CodeMalformed, "does not fit in 64 bits", kernel.KeyTainted, "degraded"},
		{"tainted_path", huge, kernel.CodeMalformed, "too large", kernel.KeyTainted, "degraded"},
		{"tainted_path", remove, kernel.CodeUnreadable, "kernel taint file", kernel.KeyTainted, "degraded"},
		{"sig_enforce_path", content("maybe\n"), kernel.CodeMalformed, `"maybe" is neither Y nor N`, kernel.KeyModuleSigEnforce, "degraded"},
		{"sig_enforce_path", content(""), kernel.CodeMalformed, "empty", kernel.KeyModuleSigEnforce, "degraded"},
		{"sig_enforce_path", directory, kernel.CodeUnreadable, "not a regular file", kernel.KeyModuleSigEnforce, "degraded"},
		{"sig_enforce_path", huge, kernel.CodeMalformed, "too large", kernel.KeyModuleSigEnforce, "degraded"},
	} {
		root := copyTree(t, "fcos_hardened")
		cfg := paths(root)
		tc.mutate(t, cfg[tc.file].(string))
		r := measure(t, cfg)
		f := r.Find(tc.code)
		if len(f) != 1 || !strings.Contains(f[0].Message, tc.msg) || f[0].Subject != cfg[tc.file] {
			t.Errorf("Test %d (%s): %s findings %+v, want one containing %q", i, tc.file, tc.code, r.Findings, tc.msg)
		}
		if len(r.Findings) != 1 {
			t.Errorf("Test %d (%s): findings %s, want only %s", i, tc.file, codes(r.Findings), tc.code)
		}
		if got := raw(r, tc.absent); got != "absent" {
			t.Errorf("Test %d (%s): %s = %s, want absent", i, tc.file, tc.absent, got)
		}
		if got := plugintest.DefaultState(r.Findings); got != tc.state {
			t.Errorf("Test %d (%s): state %s, want %s", i, tc.file, got, tc.state)
		}
	}
}

// TestUnverifiableRequirements: a requirement whose evidence cannot be read
// is reported as not met, with a message saying so.
func TestUnverifiableRequirements(t *testing.T) {
	t.Parallel()
	root := copyTree(t, "fcos_hardened")
	cfg := merge(paths(root), strict)
	for _, k := range []string{"cmdline_path", "sig_enforce_path"} {
		remove(t, cfg[k].(string))
	}
	content("garbage\n")(t, cfg["lockdown_path"].(string))
	r := measure(t, cfg)
	want := "kernel.lockdown_below_minimum:high,kernel.malformed:medium,kernel.module_sig_not_enforced:high," +
		"kernel.module_sig_unavailable:info," +
		strings.Repeat("kernel.param_forbidden:high,", 4) + strings.Repeat("kernel.param_missing:high,", 3) + "kernel.unreadable:medium"
	if got := codes(r.Findings); got != want {
		t.Fatalf("findings %s\nwant     %s", got, want)
	}
	for code, msg := range map[string]string{
		kernel.CodeParamMissing:         `required kernel parameter "lockdown=integrity" cannot be confirmed`,
		kernel.CodeParamForbidden:       `forbidden kernel parameter "init" cannot be confirmed absent`,
		kernel.CodeLockdownBelowMinimum: "lockdown mode cannot be confirmed",
		kernel.CodeModuleSigNotEnforced: "does not check module signatures",
	} {
		if !hasMessage(r.Findings, code, msg) {
			t.Errorf("no %s finding containing %q in %+v", code, msg, r.Findings)
		}
	}
	if raw(r, kernel.KeyModuleSigEnforceCmdline) != "absent" || raw(r, kernel.KeyModuleSigEnforce) != "false" {
		t.Errorf("measurements %v", r.Measurements)
	}
}

// TestSigEnforceFromCmdline: the cmdline asks for enforcement but the
// kernel reports N; the message says so.
func TestSigEnforceFromCmdline(t *testing.T) {
	t.Parallel()
	root := copyTree(t, "fcos_hardened")
	cfg := paths(root)
	cfg["require_module_sig_enforce"] = true
	content("N\n")(t, cfg["sig_enforce_path"].(string))
	content("[none] integrity confidentiality\n")(t, cfg["lockdown_path"].(string))
	r := measure(t, cfg)
	if !hasMessage(r.Findings, kernel.CodeModuleSigNotEnforced, "module.sig_enforce=1 is on the kernel command line but the kernel reports N") {
		t.Fatalf("findings %+v", r.Findings)
	}
	if raw(r, kernel.KeyModuleSigEnforceCmdline) != "true" || raw(r, kernel.KeyModuleSigEnforce) != "false" {
		t.Fatalf("measurements %v", r.Measurements)
	}
}

// TestModuleSigUnderLockdown: with lockdown integrity or confidentiality
// the kernel refuses unsigned modules whatever sig_enforce says (Debian and
// Ubuntu kernels under Secure Boot: CONFIG_MODULE_SIG without
// CONFIG_MODULE_SIG_FORCE, lockdown integrity, sig_enforce N), so
// require_module_sig_enforce holds; without lockdown it does not.
func TestModuleSigUnderLockdown(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		lockdown, sig string
		enforced      string
		reason        string
		codes         string
	}{
		{"none [integrity] confidentiality\n", "N\n", "true", `"lockdown"`, ""},
		{"none integrity [confidentiality]\n", "N\n", "true", `"lockdown"`, ""},
		{"[none] integrity confidentiality\n", "N\n", "false", `"none"`, "kernel.module_sig_not_enforced:high"},
		{"[none] integrity confidentiality\n", "Y\n", "true", `"sig_enforce"`, ""},
		{"none [integrity] confidentiality\n", "Y\n", "true", `"sig_enforce"`, ""},
		// sig_enforce unusable: lockdown still enforces, a lockdown
		// that cannot be read does not.
		{"none [integrity] confidentiality\n", "maybe\n", "true", `"lockdown"`, "kernel.malformed:medium"},
		{"garbage\n", "maybe\n", "absent", "absent", "kernel.malformed:medium,kernel.malformed:medium,kernel.module_sig_not_enforced:high"},
		{"[none] integrity confidentiality\n", "", "absent", "absent", "kernel.malformed:medium,kernel.module_sig_not_enforced:high"},
	} {
		root := copyTree(t, "fcos_hardened")
		cfg := paths(root)
		cfg["require_module_sig_enforce"] = true
		content(tc.lockdown)(t, cfg["lockdown_path"].(string))
		content(tc.sig)(t, cfg["sig_enforce_path"].(string))
		r := measure(t, cfg)
		if got := codes(r.Findings); got != tc.codes {
			t.Errorf("Test %d (%q, %q): findings %s, want %s\n%+v", i, tc.lockdown, tc.sig, got, tc.codes, r.Findings)
		}
		if got := raw(r, kernel.KeyModuleSigEnforced); got != tc.enforced {
			t.Errorf("Test %d (%q, %q): module_sig_enforced %s, want %s", i, tc.lockdown, tc.sig, got, tc.enforced)
		}
		if got := raw(r, kernel.KeyModuleSigEnforcedReason); got != tc.reason {
			t.Errorf("Test %d (%q, %q): module_sig_enforced_reason %s, want %s", i, tc.lockdown, tc.sig, got, tc.reason)
		}
	}
	// A kernel without signature checking loads unsigned modules under
	// lockdown too.
	root := copyTree(t, "fcos_hardened")
	cfg := paths(root)
	cfg["require_module_sig_enforce"] = true
	if err := os.Remove(cfg["sig_enforce_path"].(string)); err != nil {
		t.Fatal(err)
	}
	r := measure(t, cfg)
	if raw(r, kernel.KeyModuleSigEnforced) != "false" || !hasMessage(r.Findings, kernel.CodeModuleSigNotEnforced, "does not check module signatures") {
		t.Fatalf("no CONFIG_MODULE_SIG under lockdown: %v %+v", r.Measurements, r.Findings)
	}
}

func TestUnknownTaintBit(t *testing.T) {
	t.Parallel()
	root := copyTree(t, "fcos_hardened")
	cfg := paths(root)
	content("1052672\n")(t, cfg["tainted_path"].(string)) // bit 20 | bit 12
	cfg["tolerated_taints"] = []string{"O"}
	r := measure(t, cfg)
	if got := raw(r, kernel.KeyTaintFlags); got != `[{"bit":12,"letter":"O","name":"oot_module"},{"bit":20,"letter":"?","name":"unknown_bit_20"}]` {
		t.Fatalf("taint_flags = %s", got)
	}
	if !hasMessage(r.Findings, kernel.CodeTainted, "bit 20, which this plugin does not know") || len(r.Findings) != 1 {
		t.Fatalf("findings %+v", r.Findings)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		cfg  string
		want string
	}{
		{`{"cmdline_path": "proc/cmdline"}`, "cmdline_path: must be an absolute path"},
		{`{"lockdown_path": ""}`, "lockdown_path: must be an absolute path"},
		{`{"tainted_path": "."}`, "tainted_path: must be an absolute path"},
		{`{"sig_enforce_path": "x"}`, "sig_enforce_path: must be an absolute path"},
		{`{"modules_path": "x"}`, "modules_path: must be an absolute path"},
		{`{"min_lockdown": "strict"}`, `min_lockdown: unknown lockdown mode "strict"`},
		{`{"min_lockdown": "Integrity"}`, `min_lockdown: unknown lockdown mode`},
		{`{"tolerated_taints": ["O", "G"]}`, `tolerated_taints: entry 1: unknown taint flag "G"`},
		{`{"tolerated_taints": ["out_of_tree"]}`, `tolerated_taints: entry 0: unknown taint flag "out_of_tree"`},
		{`{"required_params": ["quiet", "=1"]}`, `required_params: entry 1: "=1" has no parameter name`},
		{`{"forbidden_params": ["a b"]}`, `forbidden_params: entry 0: parameter name "a b"`},
		{`{"required_params": ["lockdown=integrity"], "forbidden_params": ["lockdown"]}`, `forbidden_params: entry 0 "lockdown" forbids what required_params entry 0 "lockdown=integrity" requires`},
		{`{"required_params": "quiet"}`, "required_params: wrong type"},
		{`{"require_module_sig_enforce": 1}`, "require_module_sig_enforce: wrong type"},
		{`{"cmdline": "/proc/cmdline"}`, "cmdline: unknown key"},
	} {
		h := sdktest.New(t, kernel.New())
		err := h.Configure(json.RawMessage(tc.cfg))
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: Configure(%s) = %v, want ConfigError containing %q", i, tc.cfg, err, tc.want)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := kernel.New().Measure(ctx, sdk.Request{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Measure with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestRealSystem measures this machine with the default configuration and
// compares with what the kernel says directly.
func TestRealSystem(t *testing.T) {
	t.Parallel()
	r := sdktest.New(t, kernel.New()).MustMeasure()
	checkRealSystem(t, r.Measurements, r.Findings)
}

func checkRealSystem(t *testing.T, m map[string]json.RawMessage, findings []sdk.Finding) {
	t.Helper()
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(strings.TrimSuffix(string(cmdline), "\n"))
	if string(m[kernel.KeyCmdline]) != string(want) {
		t.Errorf("kernel_cmdline = %s, want %s", m[kernel.KeyCmdline], want)
	}
	tainted, err := os.ReadFile("/proc/sys/kernel/tainted")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m[kernel.KeyTainted]); got != strings.TrimSpace(string(tainted)) {
		t.Errorf("tainted = %s, want %s", got, tainted)
	}
	if _, err := os.Stat(kernel.DefaultLockdownPath); errors.Is(err, fs.ErrNotExist) {
		t.Log("this machine has no securityfs lockdown file")
		if string(m[kernel.KeyLockdown]) != `"unavailable"` {
			t.Errorf("kernel_lockdown = %s, want \"unavailable\"", m[kernel.KeyLockdown])
		}
		found := false
		for _, f := range findings {
			found = found || (f.Code == kernel.CodeLockdownUnavailable && f.Severity == sdk.SeverityInfo)
		}
		if !found {
			t.Errorf("no lockdown_unavailable info finding in %+v", findings)
		}
	}
	for _, f := range findings {
		if f.Code != kernel.CodeTainted && f.Severity != sdk.SeverityInfo {
			t.Errorf("unexpected finding on the real system: %+v", f)
		}
	}
}

func TestRunByHand(t *testing.T) {
	t.Parallel()
	plugintest.RunByHand(t, "kernel")
}

// TestSubprocess runs the real executable through go-plugin, as the daemon
// does, once on the real system and once on a fixture, each in a fresh
// process: the plugin sandboxes itself to its first configuration's files,
// so one process cannot be pointed elsewhere later (see
// TestSandboxedSubprocess).
func TestSubprocess(t *testing.T) {
	t.Parallel()
	t.Run("real system", func(t *testing.T) {
		t.Parallel()
		p := plugintest.Start(t, "kernel")
		p.MustConfigure(t, []byte(`{}`))
		m := p.MustMeasure(t)
		checkRealSystem(t, m.Measurements, m.Findings)
	})
	t.Run("fixture", func(t *testing.T) {
		t.Parallel()
		p := plugintest.Start(t, "kernel")
		cfg, _ := json.Marshal(merge(paths(copyTree(t, "workstation_nvidia")), map[string]any{"tolerated_taints": []string{"P", "O"}}))
		p.MustConfigure(t, cfg)
		m := p.MustMeasure(t)
		if len(m.Findings) != 1 || m.Findings[0].Code != kernel.CodeTainted || m.Findings[0].Subject != "unsigned_module" {
			t.Fatalf("findings %+v", m.Findings)
		}
		var ce *sdk.ConfigError
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Configure(ctx, []byte(`{"min_lockdown":"max"}`)); !errors.As(err, &ce) || !strings.Contains(err.Error(), "min_lockdown") {
			t.Fatalf("bad config over the wire = %v, want ConfigError naming min_lockdown", err)
		}
	})
}
