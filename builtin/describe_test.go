package builtin_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
)

var update = flag.Bool("update", false, "rewrite the plugins' README finding tables from their executables' Describe")

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// declared runs the built executable of every built-in in a declare run
// under the default policy's configuration.
func declared(t *testing.T) map[string]*pluginhost.Declared {
	t.Helper()
	dir := t.TempDir()
	for _, name := range builtin.Names() {
		testbin.Plugin(t, dir, name)
	}
	d := pluginhost.NewDeclarer(pluginhost.DeclarerOptions{Launcher: testbin.Build(t, "./cmd/runtime-attestor", "runtime-attestor")})
	pol := policy.Default()
	out := map[string]*pluginhost.Declared{}
	for _, name := range builtin.Names() {
		cfg, err := pol.PluginConfigJSON(name)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		decl, err := d.Declare(ctx, dir, name, "", cfg)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = decl
	}
	return out
}

// TestExecutablesMatchRegistry: each built-in's executable describes
// itself under its registry name, fills exactly the registry's bundle
// fields, declares critical exactly the registry's critical codes, and
// declares a sandbox under the default configuration, computed in the
// declare run's deny-everything sandbox.
func TestExecutablesMatchRegistry(t *testing.T) {
	t.Parallel()
	decls := declared(t)
	for _, p := range builtin.All() {
		d := decls[p.Name].Description
		if d.Name != p.Name {
			t.Errorf("%s describes itself as %q", p.Name, d.Name)
		}
		if got, want := slices.Sorted(slices.Values(d.Fills)), slices.Sorted(slices.Values(p.Fills)); !slices.Equal(got, want) {
			t.Errorf("%s fills %v, the registry says %v", p.Name, got, want)
		}
		var critical []string
		for _, f := range d.Findings {
			if f.DefaultSeverity == sdk.SeverityCritical {
				critical = append(critical, f.Code)
			}
		}
		if got, want := slices.Sorted(slices.Values(critical)), slices.Sorted(slices.Values(p.Critical)); !slices.Equal(got, want) {
			t.Errorf("%s declares critical %v, the registry says %v", p.Name, got, want)
		}
		if s := decls[p.Name].Sandbox; !decls[p.Name].HasSandbox || len(s.ReadOnly)+len(s.Devices)+len(s.UnixSockets) == 0 {
			t.Errorf("%s declares no sandbox under the default configuration: %+v", p.Name, s)
		}
	}
}

// TestDeclareResolvesSymlinks: the declare run confines the plugin to no
// file, yet what a check's Sandbox needs from the file system (stat and
// readlink, which Landlock does not restrict) still works: binaries
// declares the folder a service's symbolic link leads to.
func TestDeclareResolvesSymlinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testbin.Plugin(t, dir, "binaries")
	root := t.TempDir()
	for _, d := range []string{"libexec/secure-ai", "opt/agent"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(root, "opt/agent/agent")
	if err := os.WriteFile(target, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "libexec/secure-ai/agent")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"service_binaries":      map[string]any{"agent": map[string]string{"path": link}},
		"allowed_symlink_roots": []string{root},
	})
	d := pluginhost.NewDeclarer(pluginhost.DeclarerOptions{Launcher: testbin.Build(t, "./cmd/runtime-attestor", "runtime-attestor")})
	decl, err := d.Declare(context.Background(), dir, "binaries", "", cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Dir(link), filepath.Dir(target)}
	slices.Sort(want)
	if !slices.Equal(decl.Sandbox.ReadOnly, want) {
		t.Errorf("declared read_only %v, want %v", decl.Sandbox.ReadOnly, want)
	}
}

// TestREADMEFindingTables: every built-in's README.md has a finding table
// (code | default severity | description | details) whose code, default
// severity and description are exactly its executable's Describe, one row
// per code. go test ./builtin -run TestREADMEFindingTables -update
// rewrites the tables, keeping each row's details.
func TestREADMEFindingTables(t *testing.T) {
	t.Parallel()
	decls := declared(t)
	for _, name := range builtin.Names() {
		path := filepath.Join("..", "plugins", name, "README.md")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		doc, err := parseREADME(string(raw))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		desc := decls[name].Description
		if *update {
			if err := os.WriteFile(path, []byte(doc.render(desc)), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, problem := range doc.compare(desc) {
			t.Errorf("%s: %s", path, problem)
		}
	}
}

// compare lists how the table differs from desc.
func (d *readme) compare(desc sdk.Description) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range desc.Findings {
		seen[f.Code] = true
		r, ok := d.row(f.Code)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("no row for %s", f.Code))
		case r.severity != f.DefaultSeverity.String():
			out = append(out, fmt.Sprintf("%s: default severity %q, Describe says %q", f.Code, r.severity, f.DefaultSeverity))
		case r.description != escapeCell(f.Description):
			out = append(out, fmt.Sprintf("%s: description %q, Describe says %q", f.Code, r.description, f.Description))
		}
	}
	for _, r := range d.rows {
		if !seen[r.code] {
			out = append(out, fmt.Sprintf("row for %s, which Describe does not list", r.code))
		}
	}
	if len(d.rows) != len(seen) {
		out = append(out, fmt.Sprintf("%d rows for %d codes", len(d.rows), len(seen)))
	}
	return out
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
