package sdktest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// TestStartConfines: a plugin run by Start may read only what both the
// grant and its declaration allow, and a denial names the layer that lacks
// the path and the policy line that grants it.
func TestStartConfines(t *testing.T) {
	t.Parallel()
	if sandbox.ABI() == 0 {
		t.Skip("the kernel has no Landlock: nothing is denied")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "watched")
	if err := os.WriteFile(file, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	for i, tc := range []struct {
		grant   []string
		declare []string
		want    string // "" = readable
	}{
		{[]string{dir}, []string{file}, ""},
		{[]string{dir}, []string{other}, "open " + file + ": permission denied — the plugin's sandbox does not allow it; declare it in Sandbox() (the policy grants it)"},
		{nil, []string{file}, "open " + file + `: permission denied — the plugin's sandbox does not allow it; grant it in the policy: plugins.reader.sandbox.read_only: ["` + file + `"]`},
		{[]string{other}, []string{other}, "open " + file + `: permission denied — the plugin's sandbox does not allow it; declare it in Sandbox() and grant it in the policy: plugins.reader.sandbox.read_only: ["` + file + `"]`},
	} {
		h := sdktest.Start(t, sdktest.Options{Package: "./testdata/reader", Grant: sdk.Sandbox{ReadOnly: tc.grant}})
		if d := h.Description(); d.Name != "reader" {
			t.Fatalf("Test %d: description %+v", i, d)
		}
		if err := h.Configure(map[string]any{"read": []string{file}, "declare": tc.declare}); err != nil {
			t.Fatalf("Test %d: configure: %v", i, err)
		}
		fs := h.MustMeasure().Find("reader.unreadable")
		switch {
		case tc.want == "" && len(fs) != 0:
			t.Errorf("Test %d: findings %+v, want none", i, fs)
		case tc.want != "" && (len(fs) != 1 || fs[0].Message != tc.want):
			t.Errorf("Test %d: findings %+v\nwant the message %q", i, fs, tc.want)
		}
	}
}
