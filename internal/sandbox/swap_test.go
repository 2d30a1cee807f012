package sandbox_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/sandbox/internal/probe"
)

// relink points link at to, atomically (a new link renamed over it); with
// to "" it replaces link by a folder holding a file "x".
func relink(link, to string) error {
	if to == "" {
		if err := os.Remove(link); err != nil {
			return err
		}
		if err := os.Mkdir(link, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(link, "x"), []byte("planted\n"), 0o644)
	}
	tmp := link + ".new"
	if err := os.Symlink(to, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// swapLayout is a plugin whose absolute DT_NEEDED names a link, in a
// folder the attacker writes, to a real library, and a secrets folder.
type swapLayout struct {
	plugin, link, lib, secrets, key string
}

func newSwapLayout(t *testing.T) swapLayout {
	t.Helper()
	dir := t.TempDir()
	l := swapLayout{lib: filepath.Join(dir, "lib", "libok.so"), link: filepath.Join(dir, "shm", "libevil.so"),
		secrets: filepath.Join(dir, "secrets"), plugin: filepath.Join(dir, "bin", "plugin")}
	l.key = filepath.Join(l.secrets, "signing-key")
	for _, d := range []string{filepath.Dir(l.lib), filepath.Dir(l.link), l.secrets, filepath.Dir(l.plugin)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{l.lib: sandbox.FixtureELF("", nil, nil, nil), l.key: []byte("KEY!secret\n"),
		l.plugin: sandbox.FixtureELF("", []string{l.link}, nil, nil)}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(l.lib, l.link); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLibrarySwappedAfterCheck: the library a plugin's DT_NEEDED names is
// an ELF file when the launcher examines it, and is then swapped, before
// the rules are made, for a link to the secrets folder, a link to the key
// itself, or a folder. The grant stays the one file examined: the key
// and the planted folder are refused by the kernel, the library readable.
func TestLibrarySwappedAfterCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, to, read string }{
		{"link to the secrets folder", "secrets", "signing-key"},
		{"link to the key", "key", ""},
		{"a folder", "", "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newSwapLayout(t)
			to := map[string]string{"secrets": l.secrets, "key": l.key, "": ""}[c.to]
			target := filepath.Join(l.link, c.read)
			out := runSandboxed(t, childSpec{Mode: "landlock-swap", Rules: sandbox.Rules{Exec: []string{l.plugin}}, Swap: l.link, SwapTo: to,
				Ops: []probe.Op{{Kind: "read", Target: l.lib}, {Kind: "read", Target: target}, {Kind: "read", Target: l.key}}})
			if out.Error != "" {
				t.Fatalf("child: %s", out.Error)
			}
			want(t, out.Results, 0, "read", true, "")
			landlockOrSkip(t, out.Status)
			want(t, out.Results, 1, "read", false, "EACCES")
			want(t, out.Results, 2, "read", false, "EACCES")
		})
	}
}

// TestGrantLinkFlippedAfterGuard: a granted path is a link, in a folder
// the attacker writes, to a harmless folder when the guard (the daemon's
// check that no grant reaches its files) is shown the real paths, and is
// flipped to the secrets folder right after. The guard saw the harmless
// folder, and the rule is bound to it: the secrets stay refused.
func TestGrantLinkFlippedAfterGuard(t *testing.T) {
	t.Parallel()
	dir, err := filepath.EvalSymlinks(t.TempDir()) // the guard sees real paths
	if err != nil {
		t.Fatal(err)
	}
	harmless, secrets, link := filepath.Join(dir, "data"), filepath.Join(dir, "secrets"), filepath.Join(dir, "shm", "data")
	for _, d := range []string{harmless, secrets, filepath.Dir(link)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, b := range map[string]string{filepath.Join(harmless, "a"): "data\n", filepath.Join(secrets, "signing-key"): "KEY!secret\n"} {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(harmless, link); err != nil {
		t.Fatal(err)
	}
	out := runSandboxed(t, childSpec{Mode: "landlock-guard-swap", Rules: sandbox.Rules{ReadOnly: []string{link}}, Swap: link, SwapTo: secrets,
		Ops: []probe.Op{{Kind: "read", Target: filepath.Join(harmless, "a")}, {Kind: "read", Target: filepath.Join(link, "signing-key")}, {Kind: "read", Target: filepath.Join(secrets, "signing-key")}}})
	if out.Error != "" {
		t.Fatalf("child: %s", out.Error)
	}
	if len(out.Seen.ReadOnly) != 1 || out.Seen.ReadOnly[0] != harmless {
		t.Errorf("the guard saw %q, want the link's target then, %s", out.Seen.ReadOnly, harmless)
	}
	want(t, out.Results, 0, "read", true, "")
	landlockOrSkip(t, out.Status)
	want(t, out.Results, 1, "read", false, "EACCES")
	want(t, out.Results, 2, "read", false, "EACCES")
}
