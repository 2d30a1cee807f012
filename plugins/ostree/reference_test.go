package ostree_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/plugins/ostree"
)

// shell runs a command line with sh and returns its standard output.
func shell(t *testing.T, script string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh -c %q: %v: %s", script, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// The documented recipes (plugins/ostree/README.md, docs/bundle.md) that a
// release pipeline runs.
const (
	recipeCommit = `printf '{"base":"%s","composefs":"%s","packages":[],"version":"%s"}' "$COMMIT" "$COMPOSEFS" "$VERSION" | sha256sum | cut -d' ' -f1`
	recipeImage  = `printf '{"base":"%s","composefs":"","packages":[],"version":"%s"}' "$DIGEST" "$VERSION" | sha256sum | cut -d' ' -f1`
)

// TestReferenceRecomputed: a release pipeline recomputes
// deployment_reference with the documented shell line from what it
// published (the commit checksum and version `ostree commit` gave, the
// image digest), and expected_deployments holds the result.
func TestReferenceRecomputed(t *testing.T) {
	t.Parallel()
	// An ostree commit, as the release built it; booted, then an update
	// deployed and not yet booted.
	sc := pendingUpdate(t)
	s, a, b := sc.s, sc.booted, sc.next
	refA := shell(t, recipeCommit, "COMMIT="+a, "COMPOSEFS=", "VERSION=41.1")
	refB := shell(t, recipeCommit, "COMMIT="+b, "COMPOSEFS=", "VERSION=41.2")
	res := fallbackResult(t, scenario{s: s})
	if got := str(t, res, "deployment_reference"); got != refA {
		t.Fatalf("deployment_reference %s, the release computes %s", got, refA)
	}
	checkNext(t, "update", res, map[string]any{"kind": "pending", "checksum": b, "deployment_reference": refB})
	for _, tc := range []struct {
		expected []string
		codes    []string
	}{
		{[]string{refA, refB}, []string{"ostree.staged:info"}},
		{[]string{refA}, []string{"ostree.staged_unexpected:high"}},
		{[]string{refB}, []string{"ostree.staged:info", "ostree.unexpected_deployment:high"}},
	} {
		res := fallbackResult(t, scenario{s: s}, "expected_deployments", tc.expected)
		want := append([]string{"ostree.fallback:info", "ostree.rpm_ostree_missing:info"}, tc.codes...)
		wantCodes(t, "expected "+strings.Join(tc.codes, ","), res, want...)
	}

	// A container image: the release knows the manifest digest.
	m, _ := bootedMachine(t, "fedora-coreos", "")
	img := measure(t, m.config(printsJSON(t, zincati(t, "zincati-rpm-ostree-status.json"))))
	if got, want := str(t, img, "deployment_reference"), shell(t, recipeImage, "DIGEST="+manifestDigest, "VERSION=43.20251024.3.0"); got != want {
		t.Fatalf("image deployment_reference %s, the release computes %s", got, want)
	}
}

// toolDigest is `fsverity digest`'s SHA-256 digest of a file, in hex.
func toolDigest(t *testing.T, tool, path string) string {
	t.Helper()
	out := shell(t, `"$TOOL" digest --compact "$FILE"`, "TOOL="+tool, "FILE="+path)
	return strings.TrimPrefix(out, "sha256:")
}

// TestFSVerityDigest: the digest is what `fsverity digest` computes, for
// sizes around the block and tree boundaries.
func TestFSVerityDigest(t *testing.T) {
	t.Parallel()
	tool := needTool(t, "fsverity")
	dir := t.TempDir()
	for _, n := range []int{0, 1, 4095, 4096, 4097, 8192, 128 * 4096, 128*4096 + 1, 600_000, 1<<20 + 1} {
		p := filepath.Join(dir, "f")
		data := bytes.Repeat([]byte{byte(n), byte(n >> 8), 0x5a}, n/3+1)[:n]
		must(t, os.WriteFile(p, data, 0o600))
		got, err := ostree.FSVerityDigest(bytes.NewReader(data), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if want := toolDigest(t, tool, p); got != want {
			t.Errorf("%d bytes: digest %s, fsverity digest says %s", n, got, want)
		}
	}
	if _, err := ostree.FSVerityDigest(bytes.NewReader(make([]byte, 10000)), 4096); err == nil {
		t.Error("a file over the limit was digested")
	}
}

// TestComposefs: the composefs= kernel argument against the booted
// deployment's composefs image. Debian's ostree 2022.7 is built without
// composefs, so the image is a file at the place ostree writes it
// (<deployment>/.ostree.cfs), its digest computed by fsverity digest.
func TestComposefs(t *testing.T) {
	t.Parallel()
	tool := needTool(t, "fsverity")
	for i, tc := range []struct {
		name  string
		image bool
		karg  string // "image": the image's digest
		codes []string
		ref   string // "image", "karg" or ""
	}{
		{name: "karg matches the image", image: true, karg: "image", ref: "image"},
		{name: "image without karg", image: true, ref: "image"},
		{name: "karg differs from the image", image: true, karg: strings.Repeat("ab", 32), codes: []string{"ostree.composefs_mismatch:high"}, ref: "karg"},
		{name: "karg without an image", karg: strings.Repeat("cd", 32), codes: []string{"ostree.composefs_mismatch:high"}, ref: "karg"},
		{name: "karg malformed", image: true, karg: "xyz", codes: []string{"ostree.composefs_mismatch:high"}, ref: "image"},
	} {
		s, c := bootedMachine(t, "fedora-iot", "")
		image := filepath.Join(s.dir(c, 0), ".ostree.cfs")
		digest := ""
		if tc.image {
			must(t, os.WriteFile(image, bytes.Repeat([]byte("composefs image\x00"), 700), 0o644))
			digest = toolDigest(t, tool, image)
		}
		karg := tc.karg
		if karg == "image" {
			karg = digest
		}
		if karg != "" {
			cmdline := strings.TrimSpace(mustRead(t, s.cmdline)) + " composefs=" + karg + "\n"
			must(t, os.WriteFile(s.cmdline, []byte(cmdline), 0o644))
		}
		res := fallbackResult(t, scenario{s: s})
		if !wantCodes(t, tc.name, res, append([]string{"ostree.fallback:info", "ostree.rpm_ostree_missing:info"}, tc.codes...)...) {
			continue
		}
		want := map[string]string{"image": digest, "karg": karg, "": ""}[tc.ref]
		if ref := checkReference(t, res); ref["composefs"] != want {
			t.Errorf("Test %d (%s): reference composefs %v, want %s", i, tc.name, ref["composefs"], want)
		}
		if _, ok := res.Measurements["composefs"]; ok != (tc.ref == "karg" || tc.karg == "image") {
			t.Errorf("Test %d (%s): composefs measurement %s", i, tc.name, res.Measurements["composefs"])
		}
	}
}

// TestComposefsImageNotAFile: an .ostree.cfs that is a symlink (to a
// device that never ends) or a FIFO (that would block) is refused, not
// read.
func TestComposefsImageNotAFile(t *testing.T) {
	t.Parallel()
	for i, mk := range []func(p string) error{
		func(p string) error { return os.Symlink("/dev/zero", p) },
		mkfifo,
	} {
		s, c := bootedMachine(t, "fedora-iot", "")
		must(t, mk(filepath.Join(s.dir(c, 0), ".ostree.cfs")))
		res := fallbackResult(t, scenario{s: s})
		if wantCodes(t, "image", res, "ostree.composefs_mismatch:high", "ostree.fallback:info", "ostree.rpm_ostree_missing:info") {
			if f := res.Find("ostree.composefs_mismatch")[0]; !strings.Contains(f.Message, "cannot be read") {
				t.Errorf("Test %d: message %q", i, f.Message)
			}
		}
	}
}
