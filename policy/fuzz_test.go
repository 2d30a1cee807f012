package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, name := range []string{"production.yaml", "development.yaml.in"} {
		data, err := os.ReadFile(filepath.Join("examples", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("plugins:\n  kernel:\n    config:\n      a: [1, {b: 2.5}, null, true]\n"))
	f.Add([]byte("expected_pcrs: {7: abc}\n"))
	f.Add([]byte("a: &x 1\nb: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if len(Problems(err)) == 0 {
				t.Fatalf("error without a *policy.Error: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		for name := range p.Plugins {
			raw, err := p.PluginConfigJSON(name)
			if err != nil {
				t.Fatalf("PluginConfigJSON(%s): %v", name, err)
			}
			var obj map[string]any
			if err := json.Unmarshal(raw, &obj); err != nil {
				t.Fatalf("PluginConfigJSON(%s) is not an object: %v", name, err)
			}
		}
	})
}
