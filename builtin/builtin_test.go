package builtin_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/builtin"
)

const module = "github.com/secure-ai/runtime-attestor"

// dirs lists the folders under root/parent whose name starts with prefix,
// without it.
func dirs(t *testing.T, parent, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("..", parent))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), prefix); ok && e.IsDir() {
			out = append(out, name)
		}
	}
	return out
}

// TestRegistryMatchesTree: the registry, the plugins/<name> folders and
// the cmd/attestor-check-<name> mains name the same plugins, and each main
// serves its own plugin's package. Adding a built-in without one of the
// three fails here.
func TestRegistryMatchesTree(t *testing.T) {
	t.Parallel()
	names := builtin.Names()
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("registry names %v: want sorted, each once", names)
	}
	if got := dirs(t, "plugins", ""); !slices.Equal(got, names) {
		t.Errorf("plugins/ holds %v, the registry names %v", got, names)
	}
	if got := dirs(t, "cmd", builtin.FilePrefix); !slices.Equal(got, names) {
		t.Errorf("cmd/ holds mains for %v, the registry names %v", got, names)
	}
	for _, name := range names {
		main := filepath.Join("..", "cmd", builtin.FilePrefix+name, "main.go")
		f, err := parser.ParseFile(token.NewFileSet(), main, nil, parser.ImportsOnly)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var imports []string
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			imports = append(imports, p)
		}
		if !slices.Contains(imports, module+"/plugins/"+name) {
			t.Errorf("%s does not import %s/plugins/%s (imports %v)", main, module, name, imports)
		}
	}
}

// TestRegistryEntries: names are valid plugin names, a bundle field or a
// policy key belongs to one plugin only, critical codes are the plugin's.
func TestRegistryEntries(t *testing.T) {
	t.Parallel()
	fields, keys := map[string]string{}, map[string]string{}
	for _, p := range builtin.All() {
		if p.Name == "" || strings.ToLower(p.Name) != p.Name || strings.ContainsAny(p.Name, "-./ ") {
			t.Errorf("name %q", p.Name)
		}
		for _, f := range p.Fills {
			if o, dup := fields[f]; dup {
				t.Errorf("field %s owned by %s and %s", f, o, p.Name)
			}
			fields[f] = p.Name
		}
		for _, k := range p.PolicyKeys {
			if o, dup := keys[k]; dup {
				t.Errorf("policy key %s injected into %s and %s", k, o, p.Name)
			}
			keys[k] = p.Name
		}
		for _, c := range p.Critical {
			if !strings.HasPrefix(c, p.Name+".") {
				t.Errorf("%s: critical code %s is not its own", p.Name, c)
			}
		}
		if got, ok := builtin.Lookup(p.Name); !ok || got.Name != p.Name || !builtin.Is(p.Name) {
			t.Errorf("Lookup(%s) = %v, %v", p.Name, got, ok)
		}
	}
	if builtin.Is("vendor") || builtin.Is("") {
		t.Error("Is answers true for a name the registry does not hold")
	}
	// All hands out a copy: a caller's edit does not reach the registry.
	all := builtin.All()
	all[0].Fills[0] = "edited"
	if builtin.All()[0].Fills[0] == "edited" {
		t.Error("All shares its slices")
	}
}
