package engine

import (
	"testing"

	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/core/bundle"
)

// TestRegistryFieldsHaveTargets: every bundle field the registry gives a
// built-in is a field of the bundle, owned by one plugin only.
func TestRegistryFieldsHaveTargets(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, p := range builtin.All() {
		for _, f := range p.Fills {
			if target(&bundle.Bundle{}, f) == nil {
				t.Errorf("builtin %s fills %q, which the bundle has no place for", p.Name, f)
			}
			if other, dup := seen[f]; dup {
				t.Errorf("bundle field %q owned by both %s and %s", f, other, p.Name)
			}
			seen[f] = p.Name
		}
	}
	if len(seen) == 0 {
		t.Fatal("the registry gives no plugin a bundle field")
	}
}
