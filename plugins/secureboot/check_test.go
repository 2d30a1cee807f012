package secureboot_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/plugins/secureboot"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m))
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fixture returns a config for a testdata tree laid out like
// /sys/firmware/efi (the tree) and /sys/firmware/efi/efivars.
func fixture(t *testing.T, dir string, require bool) map[string]any {
	root := abs(t, filepath.Join("testdata", dir))
	return map[string]any{"efi_dir": root, "efivars_dir": filepath.Join(root, "efivars"), "require_secure_boot": require}
}

func measure(t *testing.T, cfg map[string]any) *sdktest.Result {
	t.Helper()
	h := sdktest.New(t, secureboot.New())
	if err := h.Configure(cfg); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return h.MustMeasure()
}

// codes renders findings as sorted "code:severity" strings.
func codes(fs []sdk.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Code+":"+f.Severity.String())
	}
	sort.Strings(out)
	return out
}

// boolKey returns "true", "false" or "absent" for a measurement.
func boolKey(t *testing.T, r *sdktest.Result, key string) string {
	t.Helper()
	raw, ok := r.Measurements[key]
	if !ok {
		return "absent"
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("%s = %s: %v", key, raw, err)
	}
	if b {
		return "true"
	}
	return "false"
}

func TestFixtures(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		dir        string
		require    bool
		secureBoot string
		setupMode  string
		codes      []string
		state      string
	}{
		{"enabled", false, "true", "false", []string{}, "attested"},
		{"enabled", true, "true", "false", []string{}, "attested"},
		{"enabled_nv", true, "true", "false", []string{}, "attested"},
		{"disabled", false, "false", "false", []string{"secureboot.disabled:info"}, "attested"},
		{"disabled", true, "false", "false", []string{"secureboot.disabled:critical"}, "failed"},
		{"setup_mode", false, "false", "true", []string{"secureboot.disabled:info", "secureboot.setup_mode:info"}, "attested"},
		{"setup_mode", true, "false", "true", []string{"secureboot.disabled:critical", "secureboot.setup_mode:high"}, "failed"},
		{"no_sb_support", false, "false", "absent", []string{"secureboot.disabled:info", "secureboot.variable_missing:info", "secureboot.variable_missing:info"}, "attested"},
		{"no_sb_support", true, "false", "absent", []string{"secureboot.disabled:critical", "secureboot.variable_missing:info", "secureboot.variable_missing:info"}, "failed"},
	} {
		r := measure(t, fixture(t, tc.dir, tc.require))
		if got := boolKey(t, r, secureboot.KeySecureBoot); got != tc.secureBoot {
			t.Errorf("Test %d (%s): secure_boot = %s, want %s", i, tc.dir, got, tc.secureBoot)
		}
		if got := boolKey(t, r, secureboot.KeySetupMode); got != tc.setupMode {
			t.Errorf("Test %d (%s): setup_mode = %s, want %s", i, tc.dir, got, tc.setupMode)
		}
		if got := codes(r.Findings); strings.Join(got, ",") != strings.Join(tc.codes, ",") {
			t.Errorf("Test %d (%s, require=%v): findings %v, want %v", i, tc.dir, tc.require, got, tc.codes)
		}
		if got := plugintest.DefaultState(r.Findings); got != tc.state {
			t.Errorf("Test %d (%s, require=%v): default-policy state %s, want %s", i, tc.dir, tc.require, got, tc.state)
		}
	}
}

func TestSetupModeMessage(t *testing.T) {
	t.Parallel()
	r := measure(t, fixture(t, "setup_mode", true))
	f := r.Find(secureboot.CodeSetupMode)
	if len(f) != 1 || !strings.Contains(f[0].Message, "Setup Mode") || !strings.Contains(f[0].Message, "require_secure_boot") ||
		!strings.HasSuffix(f[0].Subject, secureboot.SetupModeFile) {
		t.Fatalf("setup mode finding = %+v", f)
	}
}

// TestNoEFI is this machine's case: no /sys/firmware/efi at all.
func TestNoEFI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, tc := range []struct {
		require bool
		codes   string
		state   string
	}{
		{false, "secureboot.disabled:info,secureboot.unavailable:info", "attested"},
		{true, "secureboot.disabled:critical,secureboot.unavailable:info", "failed"},
	} {
		r := measure(t, map[string]any{"efi_dir": filepath.Join(dir, "efi"), "efivars_dir": filepath.Join(dir, "efi", "efivars"), "require_secure_boot": tc.require})
		if got := strings.Join(codes(r.Findings), ","); got != tc.codes {
			t.Errorf("Test %d: findings %s, want %s", i, got, tc.codes)
		}
		if got := boolKey(t, r, secureboot.KeySecureBoot); got != "false" {
			t.Errorf("Test %d: secure_boot = %s, want false (no UEFI: Secure Boot is certainly off)", i, got)
		}
		if got := boolKey(t, r, secureboot.KeySetupMode); got != "absent" {
			t.Errorf("Test %d: setup_mode = %s, want absent", i, got)
		}
		if got := plugintest.DefaultState(r.Findings); got != tc.state {
			t.Errorf("Test %d: state %s, want %s", i, got, tc.state)
		}
		u := r.Find(secureboot.CodeUnavailable)
		if len(u) != 1 || !strings.Contains(u[0].Message, "legacy BIOS") {
			t.Errorf("Test %d: unavailable = %+v", i, u)
		}
	}
}

// TestEFIWithoutEFIVarFS: UEFI boot, efivarfs not mounted. Secure Boot
// is unknown, so both fields stay absent.
func TestEFIWithoutEFIVarFS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, tc := range []struct {
		require bool
		codes   string
	}{
		{false, "secureboot.unavailable:info"},
		{true, "secureboot.disabled:critical,secureboot.unavailable:info"},
	} {
		r := measure(t, map[string]any{"efi_dir": dir, "efivars_dir": filepath.Join(dir, "efivars"), "require_secure_boot": tc.require})
		if got := strings.Join(codes(r.Findings), ","); got != tc.codes {
			t.Errorf("Test %d: findings %s, want %s", i, got, tc.codes)
		}
		if boolKey(t, r, secureboot.KeySecureBoot) != "absent" || boolKey(t, r, secureboot.KeySetupMode) != "absent" {
			t.Errorf("Test %d: measurements %v, want none", i, r.Measurements)
		}
		if u := r.Find(secureboot.CodeUnavailable); len(u) != 1 || !strings.Contains(u[0].Message, "efivarfs is not mounted") {
			t.Errorf("Test %d: unavailable = %+v", i, u)
		}
	}
}

// efivarsWith copies the enabled fixture into a temp tree and lets mutate
// replace the SecureBoot variable.
func efivarsWith(t *testing.T, mutate func(t *testing.T, path string)) (efi, efivars string) {
	t.Helper()
	efi = t.TempDir()
	efivars = filepath.Join(efi, "efivars")
	if err := os.Mkdir(efivars, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{secureboot.SecureBootFile, secureboot.SetupModeFile} {
		data, err := os.ReadFile(filepath.Join("testdata", "enabled", "efivars", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(efivars, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(efivars, secureboot.SecureBootFile)
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	mutate(t, target)
	return efi, efivars
}

func writeBytes(b []byte) func(*testing.T, string) {
	return func(t *testing.T, p string) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadVariables(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name   string
		mutate func(*testing.T, string)
		code   string
		msg    string
	}{
		{"empty", writeBytes(nil), secureboot.CodeMalformed, "empty: 0 bytes"},
		{"truncated", writeBytes([]byte{0x06, 0x00, 0x00}), secureboot.CodeMalformed, "truncated: 3 bytes"},
		{"attributes only", writeBytes([]byte{0x06, 0, 0, 0}), secureboot.CodeMalformed, "no value"},
		{"garbage value", writeBytes([]byte{0x06, 0, 0, 0, 0x7f}), secureboot.CodeMalformed, "value 0x7f"},
		{"garbage text", writeBytes([]byte("Secure Boot: enabled\n")), secureboot.CodeMalformed, "UEFI does not define"},
		{"long value", writeBytes([]byte{0x06, 0, 0, 0, 1, 1, 1}), secureboot.CodeMalformed, "value is 3 bytes"},
		{"huge", func(t *testing.T, p string) {
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(8 << 30); err != nil { // sparse 8 GiB
				t.Fatal(err)
			}
		}, secureboot.CodeMalformed, "larger than 4096 bytes"},
		{"directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}, secureboot.CodeUnreadable, "not a regular file"},
		{"fifo", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}, secureboot.CodeUnreadable, "not a regular file"},
		{"symlink loop", func(t *testing.T, p string) {
			if err := os.Symlink(filepath.Base(p), p); err != nil {
				t.Fatal(err)
			}
		}, secureboot.CodeUnreadable, "too many levels of symbolic links"},
	} {
		efi, efivars := efivarsWith(t, tc.mutate)
		for _, require := range []bool{false, true} {
			r := measure(t, map[string]any{"efi_dir": efi, "efivars_dir": efivars, "require_secure_boot": require})
			f := r.Find(tc.code)
			if len(f) != 1 || !strings.Contains(f[0].Message, tc.msg) || f[0].Severity != sdk.SeverityMedium ||
				!strings.Contains(f[0].Message, "SecureBoot") || f[0].Subject != filepath.Join(efivars, secureboot.SecureBootFile) {
				t.Errorf("Test %d (%s): %s findings %+v, want one containing %q", i, tc.name, tc.code, r.Findings, tc.msg)
			}
			if got := boolKey(t, r, secureboot.KeySecureBoot); got != "absent" {
				t.Errorf("Test %d (%s): secure_boot = %s, want absent (unknown)", i, tc.name, got)
			}
			if got := boolKey(t, r, secureboot.KeySetupMode); got != "false" {
				t.Errorf("Test %d (%s): setup_mode = %s, want false (its variable is fine)", i, tc.name, got)
			}
			d := r.Find(secureboot.CodeDisabled)
			if require && (len(d) != 1 || d[0].Severity != sdk.SeverityCritical || !strings.Contains(d[0].Message, "cannot be confirmed")) {
				t.Errorf("Test %d (%s): required, disabled = %+v", i, tc.name, d)
			}
			if !require && len(d) != 0 {
				t.Errorf("Test %d (%s): not required, disabled = %+v, want none (state unknown)", i, tc.name, d)
			}
			want := "degraded"
			if require {
				want = "failed"
			}
			if got := plugintest.DefaultState(r.Findings); got != want {
				t.Errorf("Test %d (%s, require=%v): state %s, want %s", i, tc.name, require, got, want)
			}
		}
	}
}

func TestEFIVarsNotADirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "efivars")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := measure(t, map[string]any{"efi_dir": dir, "efivars_dir": file, "require_secure_boot": true})
	if got := strings.Join(codes(r.Findings), ","); got != "secureboot.disabled:critical,secureboot.unreadable:medium" {
		t.Fatalf("findings %s", got)
	}
	if len(r.Measurements) != 0 {
		t.Fatalf("measurements %v, want none", r.Measurements)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		cfg  string
		want string
	}{
		{`{"efivars_dir": "sys/firmware/efi/efivars"}`, "efivars_dir: must be an absolute path"},
		{`{"efi_dir": ""}`, "efi_dir: must be an absolute path"},
		{`{"efivar_dir": "/x"}`, "efivar_dir: unknown key"},
		{`{"require_secure_boot": "yes"}`, "require_secure_boot: wrong type"},
	} {
		h := sdktest.New(t, secureboot.New())
		err := h.Configure(json.RawMessage(tc.cfg))
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: Configure(%s) = %v, want ConfigError containing %q", i, tc.cfg, err, tc.want)
		}
	}
}

// TestRefusedConfigKeepsPrevious: a refused configuration leaves the
// previous one in force.
func TestRefusedConfigKeepsPrevious(t *testing.T) {
	t.Parallel()
	h := sdktest.New(t, secureboot.New())
	if err := h.Configure(fixture(t, "enabled", false)); err != nil {
		t.Fatal(err)
	}
	if err := h.Configure(map[string]any{"efivars_dir": "relative"}); err == nil {
		t.Fatal("relative path accepted")
	}
	if got := boolKey(t, h.MustMeasure(), secureboot.KeySecureBoot); got != "true" {
		t.Fatalf("secure_boot = %s after a refused config, want true from the previous config", got)
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := secureboot.New().Measure(ctx, sdk.Request{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Measure with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestRealSystem measures this machine with the default configuration.
func TestRealSystem(t *testing.T) {
	t.Parallel()
	h := sdktest.New(t, secureboot.New())
	r := h.MustMeasure()
	if _, err := os.Stat(secureboot.DefaultEFIDir); errors.Is(err, os.ErrNotExist) {
		t.Log("this machine has no UEFI")
		if got := strings.Join(codes(r.Findings), ","); got != "secureboot.disabled:info,secureboot.unavailable:info" {
			t.Fatalf("findings %s", got)
		}
		if boolKey(t, r, secureboot.KeySecureBoot) != "false" {
			t.Fatalf("measurements %v", r.Measurements)
		}
		if plugintest.DefaultState(r.Findings) != "attested" {
			t.Fatal("a machine without UEFI must be attested when Secure Boot is not required")
		}
		return
	}
	t.Logf("this machine booted through UEFI: %v %v", r.Measurements, r.Findings)
}

func TestRunByHand(t *testing.T) {
	t.Parallel()
	plugintest.RunByHand(t, "secureboot")
}

// TestSubprocess runs the real executable through go-plugin, as the daemon
// does, against a fixture tree.
func TestSubprocess(t *testing.T) {
	t.Parallel()
	p := plugintest.Start(t, "secureboot")
	c, d := p.Client, p.Desc
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, _ := json.Marshal(fixture(t, "setup_mode", true))
	if err := c.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	m, err := c.Measure(ctx, d, []byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Measurements[secureboot.KeySecureBoot]) != "false" || string(m.Measurements[secureboot.KeySetupMode]) != "true" {
		t.Fatalf("measurements %v", m.Measurements)
	}
	if got := strings.Join(codes(m.Findings), ","); got != "secureboot.disabled:critical,secureboot.setup_mode:high" {
		t.Fatalf("findings %s", got)
	}
	var ce *sdk.ConfigError
	if err := c.Configure(ctx, []byte(`{"efivars_dir":"x"}`)); !errors.As(err, &ce) {
		t.Fatalf("bad config over the wire = %v, want ConfigError", err)
	}
}
