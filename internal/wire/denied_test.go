package wire

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/sdk"
)

type named struct{}

func (named) Describe() sdk.Description { return sdk.Description{Name: "acme"} }
func (named) Measure(context.Context, sdk.Request) (*sdk.Result, error) {
	return sdk.NewResult(), nil
}

// TestDenialsExplained: a permission error is named the sandbox's only
// when an enforced layer (the host's grant, the check's declaration) does
// not cover the path, with the policy line that grants it; a permission
// error on a path both layers allow is left as it is.
func TestDenialsExplained(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	rules := func(ro ...string) *sandbox.Rules { return &sandbox.Rules{ReadOnly: ro} }
	for i, tc := range []struct {
		grant, declared *sandbox.Rules // nil: that layer is not enforced
		msg, want       string         // want "": msg unchanged
	}{
		{rules("/etc/a"), rules("/etc/a"), "cannot read: open /etc/a: permission denied", ""},
		{rules(), rules("/etc/a"), "open /etc/a: permission denied",
			`open /etc/a: permission denied — the plugin's sandbox does not allow it; grant it in the policy: plugins.acme.sandbox.read_only: ["/etc/a"]`},
		{rules("/etc"), rules(), "open /etc/a: permission denied",
			`open /etc/a: permission denied — the plugin's sandbox does not allow it; declare it in Sandbox() (the policy grants it)`},
		{rules(), rules(), "x: open /etc/a: permission denied; open /etc/b: permission denied",
			`x: open /etc/a: permission denied — the plugin's sandbox does not allow it; declare it in Sandbox() and grant it in the policy: plugins.acme.sandbox.read_only: ["/etc/a"]; open /etc/b: permission denied — the plugin's sandbox does not allow it; declare it in Sandbox() and grant it in the policy: plugins.acme.sandbox.read_only: ["/etc/b"]`},
		// Read is granted: a denied open may have asked to write, or met
		// file modes; a denied mkdir wrote.
		{rules("/var/x"), nil, "open /var/x/f: permission denied", ""},
		{rules("/var/x"), nil, "mkdir /var/x/d: permission denied",
			`mkdir /var/x/d: permission denied — the plugin's sandbox does not allow it; grant it in the policy: plugins.acme.sandbox.read_write: ["/var/x/d"]`},
		{rules(), nil, "fork/exec /usr/bin/tool: permission denied",
			`fork/exec /usr/bin/tool: permission denied — the plugin's sandbox does not allow it; grant it in the policy: plugins.acme.sandbox.exec: ["/usr/bin/tool"]`},
		{rules(), nil, "open /dev/tpmrm0: permission denied",
			`open /dev/tpmrm0: permission denied — the plugin's sandbox does not allow it; grant it in the policy: plugins.acme.sandbox.devices: ["/dev/tpmrm0"]`},
		{&sandbox.Rules{Devices: []string{"/dev/tpmrm0"}}, nil, "open /dev/tpmrm0: permission denied", ""},
		// Granted through the symbolic link's target, as Landlock sees it.
		{rules(target), rules(target), "open " + link + ": permission denied", ""},
		// Not a sandbox denial: not a Landlock-restricted operation, or no
		// layer enforced.
		{rules(), rules(), "stat /etc/a: permission denied", ""},
		{nil, nil, "open /etc/a: permission denied", ""},
		{rules(), rules(), "open /etc/a: no such file or directory", ""},
	} {
		d := &denials{check: named{}}
		d.once.Do(func() { d.name = "acme" })
		if tc.grant != nil {
			d.grant, d.hasGrant = *tc.grant, true
		}
		if tc.declared != nil {
			d.declare(*tc.declared)
		}
		want := tc.want
		if want == "" {
			want = tc.msg
		}
		if got := d.explain(tc.msg); got != want {
			t.Errorf("Test %d: explain(%q)\n got %q\nwant %q", i, tc.msg, got, want)
		}
	}
	// An explanation that would break the message limit is left out.
	d := &denials{check: named{}, hasGrant: true}
	long := strings.Repeat("x", maxMessageLen-40) + " open /etc/a: permission denied"
	if got := d.explain(long); got != long {
		t.Errorf("an over-long message was changed to %d bytes", len(got))
	}
}
