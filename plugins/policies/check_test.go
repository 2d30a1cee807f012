package policies_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/plugins/policies"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m))
}

func codes(fs []sdk.Finding) string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Code+":"+f.Severity.String())
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func raw(r *sdktest.Result, key string) string {
	v, ok := r.Measurements[key]
	if !ok {
		return "absent"
	}
	return string(v)
}

// tree copies the fixture tree (etc/secure-ai/policy, var/lib/secure-ai/
// registry) into a temp dir and returns the config that points at it.
type tree struct {
	root, policy, agent, manifest string
}

func newTree(t *testing.T) tree {
	t.Helper()
	root := t.TempDir()
	tr := tree{
		root:     root,
		policy:   filepath.Join(root, "etc", "secure-ai", "policy", "policy.yaml"),
		agent:    filepath.Join(root, "etc", "secure-ai", "policy", "agent.yaml"),
		manifest: filepath.Join(root, "var", "lib", "secure-ai", "registry", "manifest.json"),
	}
	for _, p := range []string{tr.policy, tr.agent, tr.manifest} {
		rel, _ := filepath.Rel(root, p)
		data, err := os.ReadFile(filepath.Join("testdata", rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func (tr tree) cfg() map[string]any {
	return map[string]any{"policy_files": []string{tr.policy, tr.agent}, "registry_manifest_path": tr.manifest}
}

func measure(t *testing.T, cfg map[string]any) *sdktest.Result {
	t.Helper()
	h := sdktest.New(t, policies.New())
	if err := h.Configure(cfg); err != nil {
		t.Fatalf("configure: %v", err)
	}
	return h.MustMeasure()
}

func sha(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func fileOf(t *testing.T, path string) policies.File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return policies.File{Path: path, Content: data}
}

func TestFixtures(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	r := measure(t, tr.cfg())
	if len(r.Findings) != 0 {
		t.Fatalf("findings %+v", r.Findings)
	}
	want := policies.DigestFiles([]policies.File{fileOf(t, tr.policy), fileOf(t, tr.agent)})
	if got := raw(r, policies.KeyPolicyDigest); got != `"`+want+`"` {
		t.Errorf("policy_digest = %s, want %s", got, want)
	}
	if got := raw(r, policies.KeyRegistryManifestHash); got != `"`+sha(t, tr.manifest)+`"` {
		t.Errorf("registry_manifest_hash = %s", got)
	}
	var files []policies.FileDigest
	if err := r.Decode(policies.KeyPolicyFiles, &files); err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != tr.policy || files[1].Path != tr.agent ||
		files[0].SHA256 != sha(t, tr.policy) || files[1].SHA256 != sha(t, tr.agent) ||
		files[0].Size == nil || *files[0].Size != int64(len(fileOf(t, tr.policy).Content)) || files[0].Error != "" {
		t.Errorf("policy_files = %+v", files)
	}
	if got := raw(r, policies.KeyRegistryManifestPath); got != `"`+tr.manifest+`"` {
		t.Errorf("registry_manifest_path = %s", got)
	}

	// Swapping the order changes the digest.
	swapped := measure(t, map[string]any{"policy_files": []string{tr.agent, tr.policy}, "registry_manifest_path": tr.manifest})
	if raw(swapped, policies.KeyPolicyDigest) == raw(r, policies.KeyPolicyDigest) {
		t.Error("swapping the policy files did not change policy_digest")
	}
}

// TestShellAgrees: the documented coreutils script (README.md) computes the
// same policy_digest as the plugin, on the fixtures and with a path that
// has spaces and non-ASCII bytes.
func TestShellAgrees(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	tr := newTree(t)
	odd := filepath.Join(tr.root, "etc", "secure-ai", "policy", "tools – extra.yaml")
	if err := os.WriteFile(odd, []byte("tools: [\"a b\"]\n\x00\xff"), 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "policy_digest.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for i, files := range [][]string{{tr.policy, tr.agent}, {tr.agent, tr.policy}, {tr.policy, odd, tr.agent}} {
		out, err := exec.Command("bash", append([]string{script}, files...)...).Output()
		if err != nil {
			t.Fatalf("Test %d: %s: %v", i, script, err)
		}
		r := measure(t, map[string]any{"policy_files": files, "registry_manifest_path": tr.manifest})
		if got, want := raw(r, policies.KeyPolicyDigest), `"`+strings.TrimSpace(string(out))+`"`; got != want {
			t.Errorf("Test %d: plugin %s, script %s", i, got, want)
		}
	}
}

// TestMovedBytes: moving a line from one file to the other changes the
// digest although the concatenated bytes are the same.
func TestMovedBytes(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	before := raw(measure(t, tr.cfg()), policies.KeyPolicyDigest)
	a, b := fileOf(t, tr.policy).Content, fileOf(t, tr.agent).Content
	cut := len(a) - 13
	if err := os.WriteFile(tr.policy, a[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tr.agent, append(append([]byte{}, a[cut:]...), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	after := raw(measure(t, tr.cfg()), policies.KeyPolicyDigest)
	if before == after || after == "absent" {
		t.Fatalf("digest %s before, %s after moving bytes", before, after)
	}
}

type mutation func(t *testing.T, path string)

func remove(t *testing.T, p string) {
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func replace(t *testing.T, p string, make func(string) error) {
	remove(t, p)
	if err := make(p); err != nil {
		t.Fatal(err)
	}
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name   string
		target func(tree) string
		mutate mutation
		extra  map[string]any
		code   string
		msg    string
		state  string
	}{
		{"policy missing", func(tr tree) string { return tr.agent }, remove, nil,
			policies.CodeFileMissing, "does not exist; policy_digest is not computed", "degraded"},
		{"policy is a directory", func(tr tree) string { return tr.policy }, func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return os.Mkdir(p, 0o700) })
		}, nil, policies.CodeFileUnreadable, "not a regular file", "degraded"},
		{"policy is a fifo", func(tr tree) string { return tr.policy }, func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return syscall.Mkfifo(p, 0o600) })
		}, nil, policies.CodeFileUnreadable, "not a regular file", "degraded"},
		{"policy is a symlink loop", func(tr tree) string { return tr.agent }, func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return os.Symlink(filepath.Base(p), p) })
		}, nil, policies.CodeFileUnreadable, "too many levels of symbolic links", "degraded"},
		{"policy under a file", func(tr tree) string { return tr.policy }, func(*testing.T, string) {}, map[string]any{"policy_files_suffix": "/x"}, policies.CodeFileUnreadable, "not a directory", "degraded"},
		{"policy huge", func(tr tree) string { return tr.policy }, func(t *testing.T, p string) {
			if err := os.Truncate(p, 1<<40); err != nil { // sparse 1 TiB
				t.Fatal(err)
			}
		}, nil, policies.CodeFileUnreadable, "1099511627776 bytes, larger than max_file_bytes (67108864)", "degraded"},
		{"policy over max_file_bytes", func(tr tree) string { return tr.policy }, func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte(strings.Repeat("a", 701)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, map[string]any{"max_file_bytes": 700}, policies.CodeFileUnreadable, "701 bytes, larger than max_file_bytes (700)", "degraded"},
		{"policy reports size 0 but has content", func(tr tree) string { return tr.policy }, func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return os.Symlink("/proc/self/status", p) })
		}, nil, policies.CodeFileUnreadable, "changed while being read", "degraded"},
		{"manifest missing", func(tr tree) string { return tr.manifest }, remove, nil,
			policies.CodeManifestMissing, "does not exist; registry_manifest_hash is not computed", "attested"},
		{"manifest is a directory", func(tr tree) string { return tr.manifest }, func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return os.Mkdir(p, 0o700) })
		}, nil, policies.CodeManifestUnreadable, "not a regular file", "degraded"},
		{"manifest huge", func(tr tree) string { return tr.manifest }, func(t *testing.T, p string) {
			if err := os.Truncate(p, 1<<40); err != nil {
				t.Fatal(err)
			}
		}, nil, policies.CodeManifestUnreadable, "larger than max_file_bytes", "degraded"},
	} {
		tr := newTree(t)
		target := tc.target(tr)
		tc.mutate(t, target)
		cfg := tr.cfg()
		subject := target
		for k, v := range tc.extra {
			if k == "policy_files_suffix" {
				subject = target + v.(string)
				cfg["policy_files"] = []string{subject, tr.agent}
				continue
			}
			cfg[k] = v
		}
		r := measure(t, cfg)
		f := r.Find(tc.code)
		if len(f) != 1 || !strings.Contains(f[0].Message, tc.msg) || f[0].Subject != subject || !strings.Contains(f[0].Message, subject) {
			t.Errorf("Test %d (%s): %s findings %+v, want one naming %s and containing %q", i, tc.name, tc.code, r.Findings, subject, tc.msg)
		}
		if len(r.Findings) != 1 {
			t.Errorf("Test %d (%s): findings %s, want only %s", i, tc.name, codes(r.Findings), tc.code)
		}
		isManifest := strings.HasPrefix(tc.code, "policies.manifest")
		if got := raw(r, policies.KeyPolicyDigest); (got == "absent") == isManifest {
			t.Errorf("Test %d (%s): policy_digest = %s", i, tc.name, got)
		}
		if got := raw(r, policies.KeyRegistryManifestHash); (got == "absent") != isManifest {
			t.Errorf("Test %d (%s): registry_manifest_hash = %s", i, tc.name, got)
		}
		if got := plugintest.DefaultState(r.Findings); got != tc.state {
			t.Errorf("Test %d (%s): state %s, want %s", i, tc.name, got, tc.state)
		}
		if !isManifest {
			var files []policies.FileDigest
			if err := r.Decode(policies.KeyPolicyFiles, &files); err != nil {
				t.Fatal(err)
			}
			for _, fd := range files {
				bad := fd.Path == subject
				if bad != (fd.Error != "") || bad != (fd.SHA256 == "") || bad != (fd.Size == nil) {
					t.Errorf("Test %d (%s): policy_files entry %+v", i, tc.name, fd)
				}
			}
		}
	}
}

// TestEmptyFileIsNotNothing: an empty policy file has a digest; no policy
// files at all have none.
func TestEmptyFileIsNotNothing(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	if err := os.WriteFile(tr.policy, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := measure(t, map[string]any{"policy_files": []string{tr.policy}, "registry_manifest_path": tr.manifest})
	if got := raw(r, policies.KeyPolicyDigest); got != `"`+policies.DigestFiles([]policies.File{{Path: tr.policy}})+`"` || len(r.Findings) != 0 {
		t.Fatalf("policy_digest %s, findings %+v", got, r.Findings)
	}
	for _, list := range []any{[]string{}, nil} {
		r = measure(t, map[string]any{"policy_files": list, "registry_manifest_path": tr.manifest})
		if raw(r, policies.KeyPolicyDigest) != "absent" || codes(r.Findings) != "policies.no_policy_files:info" || raw(r, policies.KeyPolicyFiles) != "[]" {
			t.Fatalf("policy_files=%v: measurements %v findings %+v", list, r.Measurements, r.Findings)
		}
	}
}

// TestAllMissing names every missing file, not only the first.
func TestAllMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	r := measure(t, map[string]any{"policy_files": []string{a, b}, "registry_manifest_path": filepath.Join(dir, "m.json")})
	got := r.Find(policies.CodeFileMissing)
	if len(got) != 2 || got[0].Subject != a || got[1].Subject != b || !r.Has(policies.CodeManifestMissing) {
		t.Fatalf("findings %+v", r.Findings)
	}
	if len(r.Measurements) != 2 { // policy_files and registry_manifest_path only
		t.Fatalf("measurements %v", r.Measurements)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		cfg  string
		want string
	}{
		{`{"policy_files": ["etc/policy.yaml"]}`, `policy_files: entry 0: must be an absolute path, got "etc/policy.yaml"`},
		{`{"policy_files": ["/etc/a", "/etc/../etc/b"]}`, `policy_files: entry 1: path "/etc/../etc/b" is not clean (want "/etc/b")`},
		{`{"policy_files": ["/etc/a/"]}`, `policy_files: entry 0: path "/etc/a/" is not clean`},
		{`{"policy_files": ["/etc/a", "/etc/b", "/etc/a"]}`, `policy_files: entry 2: /etc/a is already entry 0`},
		{`{"policy_files": ["/etc/a\u0000b"]}`, `policy_files: entry 0: path "/etc/a\x00b" contains a NUL byte`},
		{`{"policy_files": "/etc/a"}`, "policy_files: wrong type"},
		{`{"registry_manifest_path": "manifest.json"}`, "registry_manifest_path: must be an absolute path"},
		{`{"registry_manifest_path": ""}`, "registry_manifest_path: must be an absolute path"},
		{`{"max_file_bytes": 0}`, "max_file_bytes: must be positive, got 0"},
		{`{"max_file_bytes": -5}`, "max_file_bytes: must be positive, got -5"},
		{`{"max_file_bytes": 1.5}`, "max_file_bytes: wrong type"},
		{`{"manifest_path": "/x"}`, "manifest_path: unknown key"},
	} {
		h := sdktest.New(t, policies.New())
		err := h.Configure(json.RawMessage(tc.cfg))
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: Configure(%s) = %v, want ConfigError containing %q", i, tc.cfg, err, tc.want)
		}
	}
}

// TestDeadline: hashing stops when ctx's deadline passes. The file is a
// sparse 64 GiB: without the deadline it would hash for minutes.
func TestDeadline(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	if err := os.Truncate(tr.agent, 64<<30); err != nil {
		t.Fatal(err)
	}
	c := policies.New()
	cfg := tr.cfg()
	cfg["max_file_bytes"] = int64(128 << 30)
	raw, _ := json.Marshal(cfg)
	if err := c.(sdk.Configurer).Configure(context.Background(), sdk.NewConfig(raw)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Measure(ctx, sdk.Request{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tr.agent) {
		t.Fatalf("Measure past its deadline = %v, want DeadlineExceeded naming %s", err, tr.agent)
	}
}

// TestConstantMemory hashes a 64 MiB policy file and checks that the
// check allocates a small, fixed amount, not the file. Not parallel: it
// reads the process's allocation counter.
func TestConstantMemory(t *testing.T) {
	tr := newTree(t)
	const size = 64 << 20
	if err := os.Truncate(tr.agent, size); err != nil {
		t.Fatal(err)
	}
	c := policies.New()
	raw, _ := json.Marshal(tr.cfg())
	if err := c.(sdk.Configurer).Configure(context.Background(), sdk.NewConfig(raw)); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := c.Measure(context.Background(), sdk.Request{})
	runtime.ReadMemStats(&after)
	if err != nil || len(res.Findings) != 0 {
		t.Fatalf("measure: %v %+v", err, res)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("hashing a %d-byte file allocated %d bytes", size, alloc)
	} else {
		t.Logf("hashing a %d MiB file allocated %d KiB", size>>20, alloc>>10)
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := policies.New().Measure(ctx, sdk.Request{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Measure with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestRealSystem measures this machine with the default configuration:
// the production paths. Whatever exists is hashed, whatever does not is
// named.
func TestRealSystem(t *testing.T) {
	t.Parallel()
	r := sdktest.New(t, policies.New()).MustMeasure()
	missing := 0
	for _, p := range policies.DefaultPolicyFiles {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			missing++
			found := false
			for _, f := range r.Find(policies.CodeFileMissing) {
				found = found || f.Subject == p
			}
			if !found {
				t.Errorf("missing %s not reported: %+v", p, r.Findings)
			}
		}
	}
	if (missing > 0) != (raw(r, policies.KeyPolicyDigest) == "absent") {
		t.Errorf("%d missing policy files, policy_digest %s", missing, raw(r, policies.KeyPolicyDigest))
	}
	if _, err := os.Stat(policies.DefaultRegistryManifestPath); errors.Is(err, os.ErrNotExist) && !r.Has(policies.CodeManifestMissing) {
		t.Errorf("missing manifest not reported: %+v", r.Findings)
	}
}

func TestRunByHand(t *testing.T) {
	t.Parallel()
	plugintest.RunByHand(t, "policies")
}

// TestSubprocess runs the real executable through go-plugin, as the daemon
// does, against a fixture tree.
func TestSubprocess(t *testing.T) {
	t.Parallel()
	tr := newTree(t)
	p := plugintest.Start(t, "policies")
	c, d := p.Client, p.Desc
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, _ := json.Marshal(tr.cfg())
	if err := c.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	m, err := c.Measure(ctx, d, []byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	want := policies.DigestFiles([]policies.File{fileOf(t, tr.policy), fileOf(t, tr.agent)})
	if string(m.Measurements[policies.KeyPolicyDigest]) != `"`+want+`"` || len(m.Findings) != 0 {
		t.Fatalf("measurements %v findings %+v", m.Measurements, m.Findings)
	}
	var ce *sdk.ConfigError
	if err := c.Configure(ctx, []byte(`{"max_file_bytes":0}`)); !errors.As(err, &ce) || !strings.Contains(err.Error(), "max_file_bytes") {
		t.Fatalf("bad config over the wire = %v, want ConfigError naming max_file_bytes", err)
	}
}
