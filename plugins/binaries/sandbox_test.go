package binaries_test

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
	"github.com/secure-ai/runtime-attestor/plugins/binaries"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// broad are folders no built-in plugin may be given whole.
var broad = []string{"/", "/proc", "/sys", "/dev", "/etc", "/run", "/usr", "/var", "/tmp"}

func TestSandboxDeclared(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	dir := filepath.Join(root, "usr", "libexec", "secure-ai")
	in := func(name string) string { return filepath.Join(dir, name) }
	tmp := filepath.Join(root, "tmp")
	opt := filepath.Join(root, "opt", "vendor")
	link := filepath.Join(root, "srv", "svc") // a folder symlink to tmp
	for _, l := range []struct{ target, name string }{
		{"gone", in("dangling")},
		{filepath.Join(tmp, "evil"), filepath.Join(opt, "airlock")},
		{in("agent"), filepath.Join(opt, "agent")},
		{in("agent"), filepath.Join(tmp, "back")},
		{tmp, link},
	} {
		if err := os.MkdirAll(filepath.Dir(l.name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l.target, l.name); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		name  string
		svcs  map[string]string // service name -> path
		roots []string          // allowed_symlink_roots; nil: unset
		want  []string          // read-only; nothing else
	}{
		{"default: no services", nil, nil, nil},
		{"regular, symlinked in policy, missing, dangling: their folder",
			map[string]string{"engine": in("policy-engine"), "current": in("policy-engine-current"), "missing": in("missing"), "dangling": in("dangling")}, nil,
			[]string{dir}},
		{"a symlink out of policy is left out, folder, target and all",
			map[string]string{"airlock": filepath.Join(opt, "airlock"), "registry": in("registry")}, nil,
			[]string{dir}},
		{"a folder is left out, and so is its parent", map[string]string{"dir": dir, "agent": in("agent")}, nil, []string{dir}},
		{"allowed_symlink_roots decide which targets are declared",
			map[string]string{"airlock": filepath.Join(opt, "airlock"), "current": in("policy-engine-current")}, []string{tmp, opt},
			[]string{opt, tmp}},
		{"a symlink to another folder: both folders", map[string]string{"agent": filepath.Join(opt, "agent")}, []string{dir},
			[]string{dir, opt}},
		{"a folder reached through symlinks out of the roots is left out, an allowed target's folder is not",
			map[string]string{"back": filepath.Join(link, "back"), "ghost": filepath.Join(link, "ghost")}, []string{dir},
			[]string{dir}},
		{"a folder reached through symlinks in the roots is declared as written",
			map[string]string{"ghost": filepath.Join(link, "ghost")}, []string{tmp},
			[]string{link}},
		{"under / or a top-level folder: the file alone",
			map[string]string{"top": "/x-runtime-attestor-test-missing", "usr": "/usr/x-runtime-attestor-test-missing"}, nil,
			[]string{"/usr/x-runtime-attestor-test-missing", "/x-runtime-attestor-test-missing"}},
	} {
		cfg := map[string]any{}
		svcs := map[string]svc{}
		for n, p := range tc.svcs {
			svcs[n] = svc{Path: p}
		}
		cfg["service_binaries"] = svcs
		if tc.roots != nil {
			cfg["allowed_symlink_roots"] = tc.roots
		}
		raw, _ := json.Marshal(cfg)
		sb, ok, err := sdk.DeclaredSandbox(context.Background(), binaries.New(), raw)
		if err != nil || !ok {
			t.Fatalf("Test %d (%s): DeclaredSandbox = %v, %v", i, tc.name, ok, err)
		}
		if want := (sdk.Sandbox{}.Merge(sdk.Sandbox{ReadOnly: tc.want})); !reflect.DeepEqual(sb, want) {
			t.Errorf("Test %d (%s): declared %+v\nwant     %+v", i, tc.name, sb, want)
		}
		if err := sandbox.Rules(sb).Validate(); err != nil {
			t.Errorf("Test %d (%s): Validate: %v", i, tc.name, err)
		}
		for _, p := range sb.ReadOnly {
			for _, b := range append(broad, root, filepath.Dir(dir), filepath.Dir(opt)) {
				if p == b {
					t.Errorf("Test %d (%s): declares all of %s", i, tc.name, b)
				}
			}
		}
	}
}

// replaceByRename writes data to a new file next to p and renames it over
// p, as a package manager or an editor does: p names another inode after.
func replaceByRename(t *testing.T, p, data string) {
	t.Helper()
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// TestSandboxedSubprocess: the real plugin, started as the daemon starts
// it, hashes its service binaries (one through a symlink) after confining
// itself to their folders, still refuses a symlink out of policy, measures
// binaries replaced by a rename (the new digest, a mismatch when pinned)
// in the same process, and cannot read a binary in another folder it was
// not configured with at first, while a fresh process can.
func TestSandboxedSubprocess(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	dir := filepath.Join(root, "usr", "libexec", "secure-ai")
	other := filepath.Join(root, "opt", "vendor", "agent")
	if err := os.MkdirAll(filepath.Dir(other), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("agent v2"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := func(svcs map[string]svc) []byte {
		b, _ := json.Marshal(map[string]any{"service_binaries": svcs})
		return b
	}
	first := map[string]svc{
		"policy-engine": {Path: filepath.Join(dir, "policy-engine-current"), SHA256: sumABC},
		"registry":      {Path: filepath.Join(dir, "registry")},
		"airlock":       {Path: filepath.Join(dir, "airlock")},
	}
	later := map[string]svc{"agent": {Path: other}}

	p := plugintest.Start(t, "binaries")
	p.MustConfigure(t, cfg(first))
	m := p.MustMeasure(t)
	if got, want := string(m.Measurements[binaries.KeyServiceDigests]), `{"policy-engine":"`+sumABC+`","registry":"`+sumEmpty+`"}`; got != want {
		t.Fatalf("service_digests = %s, want %s; findings %+v", got, want, m.Findings)
	}
	if got := strings.Join(codes(m.Findings), ","); got != binaries.CodeSymlinkOutOfPolicy+":high" {
		t.Fatalf("findings %+v, want only airlock out of policy", m.Findings)
	}

	// An update replaces both binaries by a rename (the pinned one behind
	// its symlink): the same sandboxed process reads the new files.
	replaceByRename(t, filepath.Join(dir, "policy-engine"), "abcd")
	replaceByRename(t, filepath.Join(dir, "registry"), "registry v2")
	m = p.MustMeasure(t)
	if got, want := string(m.Measurements[binaries.KeyServiceDigests]), `{"policy-engine":"`+sha256Hex("abcd")+`","registry":"`+sha256Hex("registry v2")+`"}`; got != want {
		t.Fatalf("after a rename: service_digests = %s, want %s; findings %+v", got, want, m.Findings)
	}
	if got, want := strings.Join(codes(m.Findings), ","), binaries.CodeDigestMismatch+":high,"+binaries.CodeSymlinkOutOfPolicy+":high"; got != want {
		t.Fatalf("after a rename: findings %+v, want %s", m.Findings, want)
	}

	fresh := plugintest.Start(t, "binaries")
	fresh.MustConfigure(t, cfg(later))
	if m := fresh.MustMeasure(t); string(m.Measurements[binaries.KeyServiceDigests]) != `{"agent":"`+sha256Hex("agent v2")+`"}` {
		t.Fatalf("fresh process: measurements %s findings %+v", m.Measurements, m.Findings)
	}

	plugintest.NeedLandlock(t)
	p.MustConfigure(t, cfg(later))
	m = p.MustMeasure(t)
	if got := string(m.Measurements[binaries.KeyServiceDigests]); got != "{}" {
		t.Fatalf("service_digests = %s with the binary outside the sandbox", got)
	}
	if f := m.Findings; len(f) != 1 || f[0].Code != binaries.CodeUnreadable || !strings.Contains(f[0].Message, "permission denied") {
		t.Fatalf("findings %+v, want agent unreadable: permission denied", f)
	}
}
