package policies_test

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
	"github.com/secure-ai/runtime-attestor/plugins/policies"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// broad are folders no built-in plugin may be given whole.
var broad = []string{"/", "/proc", "/sys", "/dev", "/etc", "/run", "/usr", "/var", "/tmp"}

func TestSandboxDeclared(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("version: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	agent := mk("etc/agent.yaml")
	policy, target := filepath.Join(root, "etc", "policy.yaml"), mk("store/policy-v2.yaml")
	if err := os.Symlink("../store/policy-v2.yaml", policy); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(root, "etc")
	if err := os.Symlink("gone", filepath.Join(folder, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name string
		cfg  map[string]any
		want []string // read-only; nothing else
	}{
		{"default", map[string]any{}, []string{"/etc/secure-ai/policy", "/var/lib/secure-ai/registry"}},
		{"files' folders, a symlink's target's folder and the manifest's folder",
			map[string]any{"policy_files": []string{policy, agent}, "registry_manifest_path": filepath.Join(root, "registry", "manifest.json")},
			[]string{folder, filepath.Join(root, "registry"), filepath.Dir(target)}},
		{"missing files and dangling symlinks: their folder",
			map[string]any{"policy_files": []string{"/srv/none/a.yaml", filepath.Join(folder, "dangling.yaml")}, "registry_manifest_path": "/srv/none/registry/m.json"},
			[]string{folder, "/srv/none", "/srv/none/registry"}},
		{"a folder in policy_files is left out",
			map[string]any{"policy_files": []string{folder, agent}, "registry_manifest_path": "/srv/registry/manifest.json"},
			[]string{folder, "/srv/registry"}},
		{"a policy file under / or a top-level folder: the file alone",
			map[string]any{"policy_files": []string{"/x-runtime-attestor-test.yaml", "/etc/x-runtime-attestor-test.yaml"}, "registry_manifest_path": "/srv/registry/manifest.json"},
			[]string{"/etc/x-runtime-attestor-test.yaml", "/srv/registry", "/x-runtime-attestor-test.yaml"}},
		{"a manifest at the root: the file alone",
			map[string]any{"policy_files": []string{}, "registry_manifest_path": "/manifest.json"},
			[]string{"/manifest.json"}},
	} {
		raw, _ := json.Marshal(tc.cfg)
		sb, ok, err := sdk.DeclaredSandbox(context.Background(), policies.New(), raw)
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
			for _, b := range append(broad, root, filepath.Dir(root)) {
				if p == b {
					t.Errorf("Test %d (%s): declares all of %s", i, tc.name, b)
				}
			}
		}
	}
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceByRename writes data to a new file next to p and renames it over
// p, as sed -i or an editor's atomic save does: p names another inode after.
func replaceByRename(t *testing.T, p, data string) {
	t.Helper()
	tmp := p + ".new"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// TestSandboxedSubprocess: the real plugin, started as the daemon starts
// it, hashes its policy files (one through a symlink) after confining
// itself to their folders, reads a manifest that appears in the manifest's
// folder afterwards, reads policy files replaced by a rename in the same
// process, and cannot read a file in another folder it was not configured
// with at first, nor a manifest whose folder did not exist when it
// confined itself.
func TestSandboxedSubprocess(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	// policy.yaml becomes a symlink to a file in another folder.
	store := filepath.Join(tr.root, "store", "policy.yaml")
	writeFile(t, store, string(fileOf(t, tr.policy).Content))
	if err := os.Remove(tr.policy); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(store, tr.policy); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(tr.manifest); err != nil {
		t.Fatal(err)
	}
	// Next to the policy folder, not in it.
	extra := filepath.Join(filepath.Dir(filepath.Dir(tr.agent)), "extra.yaml")
	writeFile(t, extra, "extra: true\n")
	cfg := func(files []string, manifest string) []byte {
		b, _ := json.Marshal(map[string]any{"policy_files": files, "registry_manifest_path": manifest})
		return b
	}
	digest := func(files ...string) string {
		var fs []policies.File
		for _, f := range files {
			fs = append(fs, fileOf(t, f))
		}
		return `"` + policies.DigestFiles(fs) + `"`
	}

	p := plugintest.Start(t, "policies")
	p.MustConfigure(t, cfg([]string{tr.policy, tr.agent}, tr.manifest))
	m := p.MustMeasure(t)
	before := digest(tr.policy, tr.agent)
	if got := string(m.Measurements[policies.KeyPolicyDigest]); got != before {
		t.Fatalf("policy_digest = %s, want %s; findings %+v", got, before, m.Findings)
	}
	if len(m.Findings) != 1 || m.Findings[0].Code != policies.CodeManifestMissing {
		t.Fatalf("findings %+v, want only the manifest missing", m.Findings)
	}
	// The registry writes its manifest after the attestor started.
	writeFile(t, tr.manifest, `{"models":[]}`+"\n")
	m = p.MustMeasure(t)
	if got := string(m.Measurements[policies.KeyRegistryManifestHash]); got != `"`+sha(t, tr.manifest)+`"` || len(m.Findings) != 0 {
		t.Fatalf("registry_manifest_hash = %s findings %+v, want the new manifest's hash", got, m.Findings)
	}

	// A policy update replaces both files by a rename (one behind its
	// symlink), and the registry its manifest: the same sandboxed process
	// reads the new files.
	replaceByRename(t, tr.agent, string(fileOf(t, tr.agent).Content)+"# reviewed\n")
	replaceByRename(t, store, string(fileOf(t, store).Content)+"# reviewed\n")
	replaceByRename(t, tr.manifest, `{"models":["m"]}`+"\n")
	m = p.MustMeasure(t)
	after := digest(tr.policy, tr.agent)
	if after == before {
		t.Fatal("the renamed files did not change the digest")
	}
	if got := string(m.Measurements[policies.KeyPolicyDigest]); got != after || len(m.Findings) != 0 {
		t.Fatalf("after a rename: policy_digest = %s, want %s; findings %+v", got, after, m.Findings)
	}
	if got := string(m.Measurements[policies.KeyRegistryManifestHash]); got != `"`+sha(t, tr.manifest)+`"` {
		t.Fatalf("after a rename: registry_manifest_hash = %s, want the new manifest's hash", got)
	}

	// Elsewhere: a file in another folder than the allowed ones, and a
	// manifest in a folder made after the sandbox. A fresh process reads
	// them.
	lateManifest := filepath.Join(tr.root, "registry2", "manifest.json")
	lateProcess := plugintest.Start(t, "policies")
	lateProcess.MustConfigure(t, cfg([]string{tr.agent}, lateManifest))
	writeFile(t, lateManifest, `{"models":[]}`+"\n")
	wider := cfg([]string{tr.policy, tr.agent, extra}, lateManifest)
	fresh := plugintest.Start(t, "policies")
	fresh.MustConfigure(t, wider)
	if m := fresh.MustMeasure(t); string(m.Measurements[policies.KeyPolicyDigest]) != digest(tr.policy, tr.agent, extra) || len(m.Findings) != 0 {
		t.Fatalf("fresh process: measurements %s findings %+v", m.Measurements, m.Findings)
	}

	plugintest.NeedLandlock(t)
	// The manifest's folder did not exist when the plugin confined
	// itself: the manifest stays denied.
	m = lateProcess.MustMeasure(t)
	if f := m.Findings; len(f) != 1 || f[0].Code != policies.CodeManifestUnreadable || !strings.Contains(f[0].Message, "permission denied") {
		t.Fatalf("manifest whose folder appeared after the sandbox: findings %+v, want manifest_unreadable, permission denied", f)
	}

	p.MustConfigure(t, wider)
	m = p.MustMeasure(t)
	if v, ok := m.Measurements[policies.KeyPolicyDigest]; ok {
		t.Fatalf("policy_digest = %s with a file outside the sandbox", v)
	}
	got := map[string]string{}
	for _, f := range m.Findings {
		got[f.Subject] = f.Code
		if !strings.Contains(f.Message, "permission denied") {
			t.Errorf("finding %+v, want permission denied", f)
		}
	}
	if want := map[string]string{extra: policies.CodeFileUnreadable, lateManifest: policies.CodeManifestUnreadable}; !reflect.DeepEqual(got, want) {
		t.Fatalf("findings %+v, want %v", m.Findings, want)
	}
}
