package daemon

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, 0},
		{[]string{"-h"}, 0},
		{[]string{"--no-such-flag"}, ExitNoRun},
	} {
		var out, errb bytes.Buffer
		if code := Main(tc.args, &out, &errb); code != tc.code {
			t.Errorf("Test %d: %v exit %d, want %d", i, tc.args, code, tc.code)
		}
		if !strings.Contains(errb.String(), "-config") {
			t.Errorf("Test %d: %v printed no usage:\n%s", i, tc.args, errb.String())
		}
	}
}
