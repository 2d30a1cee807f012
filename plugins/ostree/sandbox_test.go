package ostree_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/plugins/ostree"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// broad are folders no built-in plugin may be given whole.
var broad = []string{"/", "/proc", "/sys", "/dev", "/etc", "/run", "/usr", "/usr/bin", "/var", "/tmp"}

func hasMessage(fs []sdk.Finding, code, substr string) bool {
	for _, f := range fs {
		if f.Code == code && strings.Contains(f.Message, substr) {
			return true
		}
	}
	return false
}

// TestSandboxDeclared is not parallel: it sets PATH, on which rpm-ostree
// is looked up.
func TestSandboxDeclared(t *testing.T) {
	bin := t.TempDir()
	onPath := filepath.Join(bin, "rpm-ostree")
	must(t, os.WriteFile(onPath, []byte("#!/bin/sh\nexit 0\n"), 0o700))
	fake := fakeRPMOStree(t, "exit 0")
	t.Setenv("PATH", t.TempDir()) // no rpm-ostree
	readDefault := []string{"/boot", "/proc/cmdline", "/run/ostree", "/run/ostree-booted", "/sysroot"}
	for i, tc := range []struct {
		name string
		path string // PATH; "" leaves the empty one
		cfg  map[string]any
		want sdk.Sandbox
	}{
		{"default, no rpm-ostree on PATH: files only", "", map[string]any{}, sdk.Sandbox{ReadOnly: readDefault}},
		{"default, rpm-ostree on PATH", bin, map[string]any{},
			sdk.Sandbox{ReadOnly: readDefault, Exec: []string{onPath}, UnixSockets: []string{ostree.SystemBusSocket}}},
		{"an absolute rpm-ostree and fixture files", "",
			map[string]any{"rpm_ostree": fake, "run_ostree_booted": "/srv/m/run/ostree-booted", "sysroot": "/srv/m/sysroot/", "cmdline_path": "/srv/m/cmdline",
				"run_ostree_dir": "/srv/m/run/ostree", "boot_path": "/srv/m/boot"},
			sdk.Sandbox{ReadOnly: []string{"/srv/m/boot", "/srv/m/cmdline", "/srv/m/run/ostree", "/srv/m/run/ostree-booted", "/srv/m/sysroot"}, Exec: []string{fake}, UnixSockets: []string{ostree.SystemBusSocket}}},
		{"an absolute rpm-ostree that does not exist", "", map[string]any{"rpm_ostree": "/usr/bin/no-rpm-ostree"}, sdk.Sandbox{ReadOnly: readDefault}},
		{"a name not on PATH", bin, map[string]any{"rpm_ostree": "rpm-ostree-2"}, sdk.Sandbox{ReadOnly: readDefault}},
	} {
		if tc.path != "" {
			t.Setenv("PATH", tc.path)
		}
		raw, _ := json.Marshal(tc.cfg)
		sb, ok, err := sdk.DeclaredSandbox(context.Background(), ostree.New(), raw)
		if err != nil || !ok {
			t.Fatalf("Test %d (%s): DeclaredSandbox = %v, %v", i, tc.name, ok, err)
		}
		if want := tc.want.Merge(); !reflect.DeepEqual(sb, want) {
			t.Errorf("Test %d (%s): declared %+v\nwant     %+v", i, tc.name, sb, want)
		}
		if err := sandbox.Rules(sb).Validate(); err != nil {
			t.Errorf("Test %d (%s): Validate: %v", i, tc.name, err)
		}
		for _, p := range append(append(sb.ReadOnly, sb.Exec...), sb.UnixSockets...) {
			for _, b := range broad {
				if p == b {
					t.Errorf("Test %d (%s): declares all of %s", i, tc.name, b)
				}
			}
		}
		t.Setenv("PATH", t.TempDir())
	}
}

// TestSandboxedSubprocess: the real plugin, started as the daemon starts
// it, measures the booted deployment through rpm-ostree, or from ostree's
// files when rpm-ostree is missing, after confining itself; reconfigured
// afterwards, it can neither run another rpm-ostree nor read another
// machine's files, while a fresh process can.
func TestSandboxedSubprocess(t *testing.T) {
	t.Parallel()
	booted, _ := bootedMachine(t, "fedora-iot", "")
	other, _ := bootedMachine(t, "fedora-iot", "[origin]\nrefspec=fedora-iot/stable\n\n[packages]\nrequested=vim-enhanced;htop;\n")
	plain, layered := printsFixtureBuiltin(t, "status-plain.json"), printsFixtureBuiltin(t, "status-layered.json")
	missing := filepath.Join(t.TempDir(), "rpm-ostree")
	cfg := func(m *sysroot, rpm string) []byte {
		b, _ := json.Marshal(m.config(rpm))
		return b
	}
	type want struct{ codes, source string }
	check := func(t *testing.T, what string, res map[string]json.RawMessage, findings []sdk.Finding, w want) {
		t.Helper()
		if got := strings.Join(codes(findings), ","); got != w.codes || string(res[ostree.KeySource]) != `"`+w.source+`"` || len(res[ostree.KeyDeploymentDigest]) != 66 {
			t.Fatalf("%s: findings %s source %s digest %s, want %s from %s\n%+v", what, got, res[ostree.KeySource], res[ostree.KeyDeploymentDigest], w.codes, w.source, findings)
		}
	}
	fromRPMOStree := want{"", ostree.SourceRPMOStree}
	fromFiles := want{ostree.CodeFallback + ":info," + ostree.CodeRPMOStreeMissing + ":info", ostree.SourceOstreeFiles}

	t.Run("rpm-ostree", func(t *testing.T) {
		t.Parallel()
		p := plugintest.Start(t, "ostree")
		p.MustConfigure(t, cfg(booted, plain))
		m := p.MustMeasure(t)
		check(t, "sandboxed rpm-ostree", m.Measurements, m.Findings, fromRPMOStree)

		fresh := plugintest.Start(t, "ostree")
		fresh.MustConfigure(t, cfg(booted, layered))
		m = fresh.MustMeasure(t)
		check(t, "another rpm-ostree in a fresh process", m.Measurements, m.Findings, want{ostree.CodeLayeredPackages + ":low", ostree.SourceRPMOStree})

		plugintest.NeedLandlock(t)
		p.MustConfigure(t, cfg(booted, layered))
		m = p.MustMeasure(t)
		if !hasMessage(m.Findings, ostree.CodeRPMOStreeFailed, layered+": permission denied") {
			t.Fatalf("rpm-ostree outside the sandbox: findings %+v, want it refused: permission denied", m.Findings)
		}
		check(t, "rpm-ostree outside the sandbox", m.Measurements, m.Findings, want{ostree.CodeFallback + ":info," + ostree.CodeRPMOStreeFailed + ":medium", ostree.SourceOstreeFiles})
	})
	t.Run("ostree files", func(t *testing.T) {
		t.Parallel()
		p := plugintest.Start(t, "ostree")
		p.MustConfigure(t, cfg(booted, missing))
		m := p.MustMeasure(t)
		check(t, "sandboxed fallback", m.Measurements, m.Findings, fromFiles)

		fresh := plugintest.Start(t, "ostree")
		fresh.MustConfigure(t, cfg(other, missing))
		m = fresh.MustMeasure(t)
		check(t, "another machine in a fresh process", m.Measurements, m.Findings, want{ostree.CodeFallback + ":info," + ostree.CodeLayeredPackages + ":low," + ostree.CodeRPMOStreeMissing + ":info", ostree.SourceOstreeFiles})

		plugintest.NeedLandlock(t)
		p.MustConfigure(t, cfg(other, missing))
		m = p.MustMeasure(t)
		if _, ok := m.Measurements[ostree.KeyDeploymentDigest]; ok || !hasMessage(m.Findings, ostree.CodeNoBootedDeployment, "permission denied") {
			t.Fatalf("another machine's files outside the sandbox: measurements %s findings %+v, want no deployment: permission denied", m.Measurements, m.Findings)
		}
	})
}
