package policy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsCoverEveryKey: docs/policy.md documents every top-level key, and
// its YAML example parses.
func TestDocsCoverEveryKey(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "policy.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range topKeys {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/policy.md has no row for %s", k)
		}
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1) {
		if _, err := Parse(m[1]); err != nil {
			t.Errorf("example in docs/policy.md: %v", err)
		}
	}
}
