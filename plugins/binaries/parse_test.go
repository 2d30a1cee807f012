package binaries

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	pin := strings.Repeat("ab", 32)
	for i, tc := range []struct {
		name    string
		cfg     string
		wantKey string // "" means valid
		wantMsg string
		check   func(t *testing.T, s Settings)
	}{
		{name: "empty object", cfg: `{}`, check: func(t *testing.T, s Settings) {
			if len(s.Services) != 0 || s.Options.Parallel != DefaultMaxParallel || s.Options.AllowedRoots != nil || s.Options.MaxFileBytes != 0 {
				t.Errorf("defaults = %+v", s)
			}
		}},
		{name: "null", cfg: `null`, check: func(t *testing.T, s Settings) {
			if s.Options.Parallel != DefaultMaxParallel {
				t.Errorf("parallel = %d", s.Options.Parallel)
			}
		}},
		{name: "full", cfg: `{"service_binaries":{"zeta":{"path":"/usr/libexec/z/../zeta","sha256":"` + strings.ToUpper(pin) + `"},"alpha":{"path":"/a","sha256":""}},
			"max_parallel":4,"allowed_symlink_roots":["/opt/x/","/usr"],"max_file_bytes":1024}`, check: func(t *testing.T, s Settings) {
			want := []Service{{Name: "alpha", Path: "/a"}, {Name: "zeta", Path: "/usr/libexec/zeta", SHA256: pin}}
			if len(s.Services) != 2 || s.Services[0] != want[0] || s.Services[1] != want[1] {
				t.Errorf("services = %+v, want %+v", s.Services, want)
			}
			if s.Options.Parallel != 4 || s.Options.MaxFileBytes != 1024 || strings.Join(s.Options.AllowedRoots, ",") != "/opt/x,/usr" {
				t.Errorf("options = %+v", s.Options)
			}
		}},
		{name: "empty roots forbid symlinks", cfg: `{"allowed_symlink_roots":[]}`, check: func(t *testing.T, s Settings) {
			if s.Options.AllowedRoots == nil || len(s.Options.AllowedRoots) != 0 {
				t.Errorf("roots = %#v, want empty non-nil", s.Options.AllowedRoots)
			}
		}},
		{name: "unknown key", cfg: `{"paralel":2}`, wantKey: "paralel", wantMsg: "unknown key"},
		{name: "unknown nested key", cfg: `{"service_binaries":{"a":{"path":"/a","sha":"x"}}}`, wantMsg: "unknown key"},
		{name: "wrong type", cfg: `{"max_parallel":"2"}`, wantKey: "max_parallel", wantMsg: "wrong type"},
		{name: "zero parallel", cfg: `{"max_parallel":0}`, wantKey: "max_parallel", wantMsg: "between 1 and"},
		{name: "huge parallel", cfg: `{"max_parallel":1000}`, wantKey: "max_parallel", wantMsg: "between 1 and"},
		{name: "zero cap", cfg: `{"max_file_bytes":0}`, wantKey: "max_file_bytes", wantMsg: "positive"},
		{name: "negative cap", cfg: `{"max_file_bytes":-5}`, wantKey: "max_file_bytes", wantMsg: "positive"},
		{name: "relative root", cfg: `{"allowed_symlink_roots":["usr"]}`, wantKey: "allowed_symlink_roots[0]", wantMsg: "not absolute"},
		{name: "empty root", cfg: `{"allowed_symlink_roots":["/usr",""]}`, wantKey: "allowed_symlink_roots[1]", wantMsg: "empty path"},
		{name: "relative path", cfg: `{"service_binaries":{"a":{"path":"bin/a"}}}`, wantKey: "service_binaries.a.path", wantMsg: "not absolute"},
		{name: "missing path", cfg: `{"service_binaries":{"a":{"sha256":""}}}`, wantKey: "service_binaries.a.path", wantMsg: "empty path"},
		{name: "NUL in path", cfg: `{"service_binaries":{"a":{"path":"/a\u0000b"}}}`, wantKey: "service_binaries.a.path", wantMsg: "NUL"},
		{name: "short digest", cfg: `{"service_binaries":{"a":{"path":"/a","sha256":"abcd"}}}`, wantKey: "service_binaries.a.sha256", wantMsg: "64 hex"},
		{name: "non-hex digest", cfg: `{"service_binaries":{"a":{"path":"/a","sha256":"` + strings.Repeat("zz", 32) + `"}}}`, wantKey: "service_binaries.a.sha256", wantMsg: "64 hex"},
		{name: "empty name", cfg: `{"service_binaries":{"":{"path":"/a"}}}`, wantKey: "service_binaries", wantMsg: "empty"},
		{name: "name with newline", cfg: `{"service_binaries":{"a\nb":{"path":"/a"}}}`, wantKey: "service_binaries", wantMsg: "control"},
		{name: "services not an object", cfg: `{"service_binaries":["/a"]}`, wantKey: "service_binaries", wantMsg: "wrong type"},
		{name: "trailing data", cfg: `{} {}`, wantMsg: "trailing"},
		{name: "not an object", cfg: `[1]`, wantMsg: "wrong type"},
	} {
		s, err := ParseConfig(sdk.NewConfig([]byte(tc.cfg)))
		if tc.wantMsg == "" {
			if err != nil {
				t.Errorf("Test %d (%s): unexpected error %v", i, tc.name, err)
				continue
			}
			tc.check(t, s)
			continue
		}
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("Test %d (%s): err = %v, want *sdk.ConfigError", i, tc.name, err)
			continue
		}
		if tc.wantKey != "" && ce.Key != tc.wantKey {
			t.Errorf("Test %d (%s): key = %q, want %q (%v)", i, tc.name, ce.Key, tc.wantKey, err)
		}
		if !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("Test %d (%s): err = %q, want it to contain %q", i, tc.name, err, tc.wantMsg)
		}
	}
}

func TestParseConfigTooManyServices(t *testing.T) {
	t.Parallel()
	m := map[string]ServiceBinary{}
	for i := 0; i <= MaxServices; i++ {
		m[fmt.Sprintf("svc%d", i)] = ServiceBinary{Path: "/a"}
	}
	raw, _ := json.Marshal(map[string]any{"service_binaries": m})
	_, err := ParseConfig(sdk.NewConfig(raw))
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "service_binaries" || !strings.Contains(ce.Msg, "limit") {
		t.Fatalf("err = %v, want service_binaries limit error", err)
	}
}

// TestParseConfigExample decodes the README's example configuration.
func TestParseConfigExample(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "config-example.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseConfig(sdk.NewConfig(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Services) == 0 || s.Options.Parallel != 2 {
		t.Fatalf("settings = %+v", s)
	}
}

func TestWithin(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		root, p string
		want    bool
	}{
		{"/usr", "/usr", true},
		{"/usr", "/usr/bin/x", true},
		{"/usr/", "/usr/bin/x", true},
		{"/usr", "/usrlocal/x", false},
		{"/usr", "/", false},
		{"/", "/anything", true},
		{"/usr/bin", "/usr/bin/../sbin/x", false},
		{"/usr", "usr/bin", false},
		{"usr", "/usr/bin", false},
		{"/a/b", "/a", false},
	} {
		if got := Within(tc.root, tc.p); got != tc.want {
			t.Errorf("Test %d: Within(%q, %q) = %v, want %v", i, tc.root, tc.p, got, tc.want)
		}
	}
}

func TestValidSHA256(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		s    string
		want bool
	}{
		{strings.Repeat("0", 64), true},
		{strings.Repeat("f", 64), true},
		{strings.Repeat("F", 64), false},
		{strings.Repeat("0", 63), false},
		{strings.Repeat("0", 65), false},
		{"", false},
		{strings.Repeat("g", 64), false},
	} {
		if got := ValidSHA256(tc.s); got != tc.want {
			t.Errorf("Test %d: ValidSHA256(%q) = %v", i, tc.s, got)
		}
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcdef", 4, "a…"},
		{"ééé", 5, "é…"},
		{"aééé", 6, "aé…"},
		{"aééé", 5, "a…"},
	} {
		got := clip(tc.s, tc.n)
		if got != tc.want || len(got) > tc.n {
			t.Errorf("Test %d: clip(%q, %d) = %q, want %q", i, tc.s, tc.n, got, tc.want)
		}
	}
}

// FuzzParseConfig holds ParseConfig to its contract on any input: no
// panic, a *sdk.ConfigError on refusal, and a valid Settings otherwise.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"service_binaries":{"a":{"path":"/usr/bin/a","sha256":""}},"max_parallel":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseConfig(sdk.NewConfig(data))
		if err != nil {
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *sdk.ConfigError", err)
			}
			return
		}
		if s.Options.Parallel < 1 || s.Options.Parallel > MaxParallelLimit || s.Options.MaxFileBytes < 0 || len(s.Services) > MaxServices {
			t.Fatalf("invalid options accepted: %+v", s.Options)
		}
		for i, svc := range s.Services {
			if svc.Name == "" || !filepath.IsAbs(svc.Path) || filepath.Clean(svc.Path) != svc.Path || (svc.SHA256 != "" && !ValidSHA256(svc.SHA256)) {
				t.Fatalf("invalid service accepted: %+v", svc)
			}
			if i > 0 && s.Services[i-1].Name >= svc.Name {
				t.Fatalf("services not sorted: %q before %q", s.Services[i-1].Name, svc.Name)
			}
		}
		for _, r := range s.Options.AllowedRoots {
			if !filepath.IsAbs(r) {
				t.Fatalf("relative root accepted: %q", r)
			}
		}
	})
}

// FuzzWithin checks Within against its definition on cleaned paths.
func FuzzWithin(f *testing.F) {
	f.Add("/usr", "/usr/bin/x")
	f.Add("/usr", "/usrx")
	f.Add("/", "/a")
	f.Add("/a/../b", "/b/c")
	f.Fuzz(func(t *testing.T, root, p string) {
		got := Within(root, p)
		r, c := filepath.Clean(root), filepath.Clean(p)
		if !filepath.IsAbs(r) || !filepath.IsAbs(c) {
			if got {
				t.Fatalf("Within(%q, %q) = true for a relative path", root, p)
			}
			return
		}
		rel, err := filepath.Rel(r, c)
		want := err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
		if got != want {
			t.Fatalf("Within(%q, %q) = %v, want %v (rel %q)", root, p, got, want, rel)
		}
	})
}
