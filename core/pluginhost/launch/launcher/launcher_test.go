package launcher

import (
	"strings"
	"testing"
)

// TestParse: the launcher takes exactly the two forms Value writes.
func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v       string
		ruleset int
		flags   uint32
	}{
		{Value(true, 0), RulesetFD, 0},
		{Value(true, 7), RulesetFD, 7},
		{Value(false, 0), -1, 0},
	} {
		rs, flags, err := parse(c.v)
		if err != nil || rs != c.ruleset || flags != c.flags {
			t.Errorf("parse(%q) = %d, %d, %v; want %d, %d", c.v, rs, flags, err, c.ruleset, c.flags)
		}
	}
	for _, v := range []string{"", "3", "3,4", "3,4,5,6", "3,5,6", "3,5,6,", "3,5,6,0", "3,-,6,0", "v1,3,5,6", "v1,3,5,6,", "v1,3,5,6,-1", "v1,3,5,6,4294967296", "v1,3,-,6,1", "v1,4,5,6,0", "v1,3,5,7,0", "v1,3,5,6,0,0", "1,3,5,6,0", "/bin/sh"} {
		if _, _, err := parse(v); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("parse(%q) = %v, want a refusal", v, err)
		}
	}
	// Another version of the contract: the daemon and its launcher are not
	// from the same build.
	for _, v := range []string{"v2,3,5,6,0", "v0,3,5,6,0", "v1", "v", "v10,3,5,6,0"} {
		if _, _, err := parse(v); err == nil || !strings.Contains(err.Error(), "install the attestor-launcher built with this daemon") {
			t.Errorf("parse(%q) = %v, want a refusal naming the version", v, err)
		}
	}
}
