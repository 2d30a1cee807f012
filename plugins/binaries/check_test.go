package binaries_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/canonjson"
	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/plugins/binaries"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m))
}

const (
	sumABC   = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	sumEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// fixture builds a tree of service binaries in a temporary folder, the way
// /usr/libexec/secure-ai looks on an appliance, and returns its root.
func fixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "usr", "libexec", "secure-ai")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write("policy-engine", "abc")
	write("registry", "")
	write("agent", "agent v2")
	if err := os.Symlink("policy-engine", filepath.Join(dir, "policy-engine-current")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp", "evil"), []byte("abc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "tmp", "evil"), filepath.Join(dir, "airlock")); err != nil {
		t.Fatal(err)
	}
	return root
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

type svc struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

func codes(fs []sdk.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code+":"+f.Severity.String())
	}
	sort.Strings(out)
	return out
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	h := sdktest.New(t, binaries.New())
	d := h.Description()
	if d.Name != "binaries" || d.Version == "" || !reflect.DeepEqual(d.Fills, []string{"service_digests"}) {
		t.Fatalf("description = %+v", d)
	}
	want := map[string]sdk.Severity{
		"binaries.missing": sdk.SeverityMedium, "binaries.digest_mismatch": sdk.SeverityHigh,
		"binaries.not_regular": sdk.SeverityMedium, "binaries.symlink_out_of_policy": sdk.SeverityHigh,
		"binaries.unreadable": sdk.SeverityMedium, "binaries.too_large": sdk.SeverityMedium,
		"binaries.none_configured": sdk.SeverityInfo,
	}
	got := map[string]sdk.Severity{}
	for _, f := range d.Findings {
		got[f.Code] = f.DefaultSeverity
		if f.Description == "" {
			t.Errorf("%s has no description", f.Code)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("findings = %v, want %v", got, want)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for code, sev := range want {
		if !strings.Contains(string(readme), "`"+code+"` | "+sev.String()) {
			t.Errorf("README.md does not document %s with severity %s", code, sev)
		}
	}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	dir := filepath.Join(root, "usr", "libexec", "secure-ai")
	p := func(n string) string { return filepath.Join(dir, n) }
	for i, tc := range []struct {
		name     string
		services map[string]svc
		extra    map[string]any
		digests  map[string]string
		findings []string
		state    string
	}{
		{
			name:     "all present, pinned and matching",
			services: map[string]svc{"policy-engine": {p("policy-engine"), strings.ToUpper(sumABC)}, "registry": {p("registry"), sumEmpty}, "agent": {p("agent"), ""}},
			digests:  map[string]string{"policy-engine": sumABC, "registry": sumEmpty, "agent": sha256Hex("agent v2")},
			state:    "attested",
		},
		{
			name:     "missing binary degrades",
			services: map[string]svc{"policy-engine": {p("policy-engine"), ""}, "inference": {p("inference"), ""}},
			digests:  map[string]string{"policy-engine": sumABC},
			findings: []string{"binaries.missing:medium"},
			state:    "degraded",
		},
		{
			name:     "hash drift degrades",
			services: map[string]svc{"registry": {p("registry"), sumABC}},
			digests:  map[string]string{"registry": sumEmpty},
			findings: []string{"binaries.digest_mismatch:high"},
			state:    "degraded",
		},
		{
			name:     "symlink inside the tree is followed",
			services: map[string]svc{"pe": {p("policy-engine-current"), sumABC}},
			digests:  map[string]string{"pe": sumABC},
			state:    "attested",
		},
		{
			name:     "symlink out of the tree is refused",
			services: map[string]svc{"airlock": {p("airlock"), ""}},
			digests:  map[string]string{},
			findings: []string{"binaries.symlink_out_of_policy:high"},
			state:    "degraded",
		},
		{
			name:     "symlink into a configured root",
			services: map[string]svc{"airlock": {p("airlock"), ""}},
			extra:    map[string]any{"allowed_symlink_roots": []string{filepath.Join(root, "tmp")}},
			digests:  map[string]string{"airlock": sumABC},
			state:    "attested",
		},
		{
			name:     "directory and device",
			services: map[string]svc{"dir": {dir, ""}, "null": {"/dev/null", ""}},
			digests:  map[string]string{},
			findings: []string{"binaries.not_regular:medium", "binaries.not_regular:medium"},
			state:    "degraded",
		},
		{
			name:     "over the size cap",
			services: map[string]svc{"agent": {p("agent"), ""}},
			extra:    map[string]any{"max_file_bytes": 3},
			digests:  map[string]string{},
			findings: []string{"binaries.too_large:medium"},
			state:    "degraded",
		},
		{
			name:     "nothing configured",
			services: map[string]svc{},
			digests:  map[string]string{},
			findings: []string{"binaries.none_configured:info"},
			state:    "attested",
		},
	} {
		h := sdktest.New(t, binaries.New())
		cfg := map[string]any{"service_binaries": tc.services, "max_parallel": 2}
		for k, v := range tc.extra {
			cfg[k] = v
		}
		if err := h.Configure(cfg); err != nil {
			t.Fatalf("Test %d (%s): configure: %v", i, tc.name, err)
		}
		res := h.MustMeasure()
		var digests map[string]string
		if err := res.Decode("service_digests", &digests); err != nil {
			t.Fatalf("Test %d (%s): %v", i, tc.name, err)
		}
		if !reflect.DeepEqual(digests, tc.digests) {
			t.Errorf("Test %d (%s): service_digests = %v, want %v", i, tc.name, digests, tc.digests)
		}
		if got := codes(res.Findings); !reflect.DeepEqual(got, tc.findings) {
			t.Errorf("Test %d (%s): findings = %v, want %v", i, tc.name, got, tc.findings)
		}
		for _, f := range res.Findings {
			if f.Subject == "" || f.Message == "" {
				t.Errorf("Test %d (%s): finding without subject or message: %+v", i, tc.name, f)
			}
		}
		if got := plugintest.DefaultState(res.Findings); got != tc.state {
			t.Errorf("Test %d (%s): state = %s, want %s (%v)", i, tc.name, got, tc.state, res.Findings)
		}
		var services []binaries.ServiceReport
		if err := res.Decode("services", &services); err != nil || len(services) != len(tc.services) {
			t.Errorf("Test %d (%s): services = %+v, %v", i, tc.name, services, err)
		}
		for j, s := range services {
			if j > 0 && services[j-1].Name >= s.Name {
				t.Errorf("Test %d (%s): services not sorted by name", i, tc.name)
			}
			if s.Status == "ok" && (s.SHA256 != digests[s.Name] || s.ResolvedPath == "") {
				t.Errorf("Test %d (%s): service report %+v disagrees with service_digests", i, tc.name, s)
			}
		}
	}
}

func TestMeasureDeterministic(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	dir := filepath.Join(root, "usr", "libexec", "secure-ai")
	services := map[string]svc{}
	for _, n := range []string{"policy-engine", "registry", "agent", "policy-engine-current", "airlock", "missing"} {
		services[n] = svc{Path: filepath.Join(dir, n)}
	}
	var first []byte
	for _, parallel := range []int{1, 2, 7, 1} {
		h := sdktest.New(t, binaries.New())
		if err := h.Configure(map[string]any{"service_binaries": services, "max_parallel": parallel}); err != nil {
			t.Fatal(err)
		}
		res := h.MustMeasure()
		all, _ := json.Marshal([]any{res.Measurements, res.Findings})
		if first == nil {
			first = all
		} else if string(all) != string(first) {
			t.Fatalf("parallel %d gave a different result:\n%s\nvs\n%s", parallel, all, first)
		}
	}
}

func TestConfigureRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		cfg  any
		want string
	}{
		{map[string]any{"nope": 1}, "nope: unknown key"},
		{map[string]any{"max_parallel": 0}, "max_parallel: must be between"},
		{map[string]any{"service_binaries": map[string]any{"a": map[string]any{"path": "rel"}}}, "service_binaries.a.path: path \"rel\" is not absolute"},
		{map[string]any{"service_binaries": map[string]any{"a": map[string]any{"path": "/a", "sha256": "xyz"}}}, "service_binaries.a.sha256"},
		{map[string]any{"allowed_symlink_roots": []string{"./x"}}, "allowed_symlink_roots[0]"},
	} {
		h := sdktest.New(t, binaries.New())
		err := h.Configure(tc.cfg)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: Configure(%v) = %v, want a ConfigError containing %q", i, tc.cfg, err, tc.want)
		}
	}
}

// TestThisMachine measures the real system with the default services
// (absent on a development machine): an honest degraded result, no error.
func TestThisMachine(t *testing.T) {
	t.Parallel()
	h := sdktest.New(t, binaries.New())
	services := map[string]svc{"runtime-attestor": {Path: "/usr/libexec/secure-ai/runtime-attestor"}, "env": {Path: "/usr/bin/env"}}
	if err := h.Configure(map[string]any{"service_binaries": services}); err != nil {
		t.Fatal(err)
	}
	res := h.MustMeasure()
	var digests map[string]string
	if err := res.Decode("service_digests", &digests); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/env"); err == nil && len(digests["env"]) != 64 {
		t.Errorf("/usr/bin/env not hashed: %v %v", digests, res.Findings)
	}
	if _, err := os.Stat("/usr/libexec/secure-ai/runtime-attestor"); errors.Is(err, os.ErrNotExist) && !res.Has("binaries.missing") {
		t.Errorf("absent binary not reported: %v", res.Findings)
	}
}

func TestRunByHand(t *testing.T) {
	t.Parallel()
	plugintest.RunByHand(t, "binaries")
}

// TestSubprocess runs the real executable through go-plugin, as the daemon
// does, against a fixture tree.
func TestSubprocess(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	dir := filepath.Join(root, "usr", "libexec", "secure-ai")
	p := plugintest.Start(t, "binaries")
	c, d := p.Client, p.Desc
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, _ := json.Marshal(map[string]any{"service_binaries": map[string]svc{
		"policy-engine": {Path: filepath.Join(dir, "policy-engine"), SHA256: sumABC},
		"inference":     {Path: filepath.Join(dir, "inference")},
	}})
	if err := c.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	m, err := c.Measure(ctx, d, []byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Measurements["service_digests"]); got != `{"policy-engine":"`+sumABC+`"}` {
		t.Fatalf("service_digests = %s", got)
	}
	if got := strings.Join(codes(m.Findings), ","); got != "binaries.missing:medium" {
		t.Fatalf("findings %s", got)
	}
	var ce *sdk.ConfigError
	if err := c.Configure(ctx, []byte(`{"max_parallel":-1}`)); !errors.As(err, &ce) {
		t.Fatalf("bad config over the wire = %v, want ConfigError", err)
	}
}

// TestMeasurementCanonical: the measurements are written in RFC 8785 form
// as they are, so that the daemon does not canonicalise thousands of
// service reports again at each attestation (ServiceReport's field order).
func TestMeasurementCanonical(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	dir := filepath.Join(root, "usr", "libexec", "secure-ai")
	services := map[string]svc{}
	for _, n := range []string{"policy-engine", "registry", "agent", "policy-engine-current", "airlock", "missing"} {
		services[n] = svc{Path: filepath.Join(dir, n), SHA256: strings.Repeat("ab", 32)}
	}
	raw, _ := json.Marshal(map[string]any{"service_binaries": services})
	c := binaries.New()
	if err := c.(sdk.Configurer).Configure(t.Context(), sdk.NewConfig(raw)); err != nil {
		t.Fatal(err)
	}
	res, err := c.Measure(t.Context(), sdk.Request{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range res.Measurements {
		got, err := json.Marshal(v) // as the SDK's server encodes it
		if err != nil {
			t.Fatal(err)
		}
		want, err := canonjson.Canonical(got)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not written in canonical form:\n%s\nwant\n%s", k, got, want)
		}
	}
}
