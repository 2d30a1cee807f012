package daemontest

import (
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// EditPolicy renders the development policy, hands it to edit as a YAML
// document (nested map[string]any; see SetPolicyKey) and writes the result
// as the policy file.
func (e *Env) EditPolicy(edit func(doc map[string]any)) {
	e.t.Helper()
	doc := map[string]any{}
	if err := yaml.Unmarshal([]byte(e.DevelopmentPolicy()), &doc); err != nil {
		e.t.Fatalf("parse the development policy: %v", err)
	}
	edit(doc)
	out, err := yaml.Marshal(doc)
	if err != nil {
		e.t.Fatalf("encode the edited policy: %v", err)
	}
	e.WritePolicy(string(out))
}

// SetPolicyKey sets value at path (e.g. "plugins", "orphan", "config") in a
// policy document, creating the mappings on the way.
func SetPolicyKey(doc map[string]any, value any, path ...string) {
	m := doc
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = value
}

// InstallTestPlugin builds the misbehaving test plugin ./testplugins/<kind>
// and installs it into the plugin directory as attestor-check-<name>, mode
// 0755, returning its path. The file appears at once, complete (written
// under a temporary name and renamed, as a package manager installs), so a
// running daemon never discovers it half-written.
func (e *Env) InstallTestPlugin(kind, name string) string {
	e.t.Helper()
	src := testbin.Build(e.t, "./testplugins/"+kind, "attestor-check-"+kind)
	tmpDir := filepath.Join(e.Dir, "install")
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	tmp := testbin.Install(e.t, src, tmpDir, "attestor-check-"+name)
	dst := filepath.Join(e.PluginDir, "attestor-check-"+name)
	if err := os.Rename(tmp, dst); err != nil {
		e.t.Fatalf("install plugin %s: %v", name, err)
	}
	return dst
}
