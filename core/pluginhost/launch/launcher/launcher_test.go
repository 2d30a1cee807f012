package launcher

import (
	"strings"
	"testing"
)

// TestRunRefusesOtherDescriptors: the launcher takes only the descriptor
// layout the host uses.
func TestRunRefusesOtherDescriptors(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "3", "5,6", "3,4,5", "/bin/sh"} {
		if err := run(v); err == nil || !strings.Contains(err.Error(), "want 3,4") {
			t.Errorf("run(%q) = %v, want a refusal", v, err)
		}
	}
}
