package rig

import (
	"github.com/secure-ai/runtime-attestor/builtin"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "../../..")
}

// fakeBins lays out stand-in executables: New only copies and hashes
// nothing, so their content does not matter here (the suite's smoke test
// runs the real ones).
func fakeBins(t *testing.T) Bins {
	t.Helper()
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p string) string {
		if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, p := range builtin.Names() {
		write(filepath.Join(plugins, "attestor-check-"+p))
	}
	return Bins{
		Daemon:    write(filepath.Join(dir, "runtime-attestor")),
		Attestctl: write(filepath.Join(dir, "attestctl")),
		Plugins:   plugins,
		Light:     write(filepath.Join(dir, "light")),
	}
}

func TestNewDevelopmentPolicy(t *testing.T) {
	t.Parallel()
	b := fakeBins(t)
	l, err := New(repoRoot(t), t.TempDir(), b, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.LoadPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if p.ResidentPlugins {
		t.Error("resident_plugins set although the Spec left the policy's default")
	}
	if p.Listen != l.Addr || p.PluginDir != l.PluginDir || p.RefreshInterval != time.Hour || p.LogLevel != LogLevel {
		t.Errorf("policy listen %s dir %s refresh %s log %s", p.Listen, p.PluginDir, p.RefreshInterval, p.LogLevel)
	}
	if p.HMACKeyPath != l.KeyPath || p.APITokenPath != l.TokenPath || p.AuditLogPath != l.AuditPath {
		t.Errorf("policy paths %s %s %s", p.HMACKeyPath, p.APITokenPath, p.AuditLogPath)
	}
	for _, name := range builtin.Names() {
		if !p.PluginEnabled(name) {
			t.Errorf("built-in %s disabled", name)
		}
		fi, err := os.Stat(filepath.Join(l.PluginDir, "attestor-check-"+name))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("plugin %s: %v %v", name, fi, err)
		}
	}
	if p.ServiceBinaries["runtime-attestor"].Path != b.Daemon || p.ServiceBinaries["attestctl"].Path != b.Attestctl {
		t.Errorf("service_binaries %v", p.ServiceBinaries)
	}
	if tok, err := os.ReadFile(l.TokenPath); err != nil || strings.TrimSpace(string(tok)) != l.Token || len(l.Token) < 32 {
		t.Errorf("token file %q, %v", tok, err)
	}
	for _, f := range []string{l.KeyPath, l.TokenPath, l.PolicyPath} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	if l.URL("/health") != "http://"+l.Addr+"/health" {
		t.Errorf("URL = %s", l.URL("/health"))
	}
}

func TestNewLightsOnly(t *testing.T) {
	t.Parallel()
	b := fakeBins(t)
	svc := filepath.Join(t.TempDir(), "svc")
	if err := os.WriteFile(svc, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	yes := true
	l, err := New(repoRoot(t), t.TempDir(), b, Spec{Builtins: []string{}, Lights: 3, ServiceBinaries: map[string]string{"svc0000": svc}, Resident: &yes})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.LoadPolicy()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range builtin.Names() {
		if p.PluginEnabled(name) {
			t.Errorf("built-in %s enabled", name)
		}
	}
	if !p.ResidentPlugins {
		t.Error("resident_plugins not set")
	}
	if !p.PluginEnabled("light03") || len(p.ServiceBinaries) != 1 || p.ServiceBinaries["svc0000"].Path != svc {
		t.Errorf("lights or service_binaries wrong: %v", p.ServiceBinaries)
	}
	ents, err := os.ReadDir(l.PluginDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "attestor-check-light01 attestor-check-light02 attestor-check-light03" {
		t.Errorf("plugin dir holds %v", names)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	b := fakeBins(t)
	if _, err := New(t.TempDir(), t.TempDir(), b, Spec{}); err == nil || !strings.Contains(err.Error(), "policy template") {
		t.Errorf("missing template: %v", err)
	}
	nb := b
	nb.Plugins = t.TempDir()
	if _, err := New(repoRoot(t), t.TempDir(), nb, Spec{}); err == nil || !strings.Contains(err.Error(), "install plugin") {
		t.Errorf("missing plugin: %v", err)
	}
	if _, err := New(repoRoot(t), t.TempDir(), b, Spec{ServiceBinaries: map[string]string{"x": "relative/path"}}); err == nil {
		t.Error("a bad policy was accepted")
	}
}

func TestParseAttest(t *testing.T) {
	t.Parallel()
	a, err := ParseAttest([]byte(`{"state":"attested","bundle":{"state":"attested","checks":{"kernel":{"duration_ms":3},"tpm":{"duration_ms":0}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.State != "attested" || a.CheckMS["kernel"] != 3 || len(a.CheckMS) != 2 {
		t.Fatalf("ParseAttest = %+v", a)
	}
	for i, bad := range []string{
		`{`,
		`{"state":"pending","bundle":null}`,
		`{"bundle":{"checks":{}}}`,
		`{"bundle":{"state":"attested","checks":{"k":{}}}}`,
		`{"bundle":{"state":"attested","checks":{"k":{"duration_ms":"3"}}}}`,
	} {
		if _, err := ParseAttest([]byte(bad)); err == nil {
			t.Errorf("Test %d: ParseAttest(%s) did not fail", i, bad)
		}
	}
}

func FuzzParseAttest(f *testing.F) {
	f.Add([]byte(`{"state":"attested","bundle":{"state":"degraded","checks":{}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAttest(b)
		if err == nil && (a.State == "" || a.CheckMS == nil) {
			t.Fatalf("ParseAttest(%q) = %+v without error", b, a)
		}
	})
}

func TestTail(t *testing.T) {
	t.Parallel()
	tl := &tail{max: 5}
	for _, s := range []string{"abc", "defg", "h"} {
		if n, err := tl.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := tl.String(); got != "defgh" {
		t.Fatalf("tail = %q, want defgh", got)
	}
}
