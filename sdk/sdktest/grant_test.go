package sdktest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// fatalTB records a Fatalf and stops the call, as a test would stop.
type fatalTB struct {
	testing.TB
	msg string
}

type stopped struct{}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func (f *fatalTB) Helper() {}

func documented(t *testing.T, readme string) (sb sdk.Sandbox, fatal string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
			fatal = tb.msg
		}
	}()
	return sdktest.DocumentedGrant(tb, path, "acme"), ""
}

// TestDocumentedGrant: the grant is the first yaml block that sets
// plugins.<name>.sandbox; a key the policy does not know, or no such block,
// fails the test.
func TestDocumentedGrant(t *testing.T) {
	t.Parallel()
	const other = "```yaml\nplugins:\n  acme:\n    config: {root: /x}\n  other:\n    sandbox: {read_only: [/y]}\n```\n"
	for i, tc := range []struct {
		readme string
		want   sdk.Sandbox
		fatal  string
	}{
		{"# acme\n\n" + other + "text\n\n```yaml\nplugins:\n  acme:\n    sandbox:\n      read_only: [/sys/firmware/acme]\n      connect_tcp: [443]\n```\n",
			sdk.Sandbox{ReadOnly: []string{"/sys/firmware/acme"}, ConnectTCP: []uint16{443}}, ""},
		{"```yml\nplugins: {acme: {sandbox: {devices: [/dev/tpmrm0]}}}\n```\n", sdk.Sandbox{Devices: []string{"/dev/tpmrm0"}}, ""},
		{"```yaml\nplugins:\n  acme:\n    sandbox:\n      read_onyl: [/x]\n```\n", sdk.Sandbox{}, `unknown field "read_onyl"`},
		{other, sdk.Sandbox{}, "no yaml block with plugins.acme.sandbox"},
		{"```yaml\nplugins: [\n```\n", sdk.Sandbox{}, "a yaml block of"},
	} {
		got, fatal := documented(t, tc.readme)
		if !reflect.DeepEqual(got, tc.want) || (tc.fatal == "") != (fatal == "") || !strings.Contains(fatal, tc.fatal) {
			t.Errorf("Test %d: %+v, fatal %q; want %+v, fatal %q", i, got, fatal, tc.want, tc.fatal)
		}
	}
}
