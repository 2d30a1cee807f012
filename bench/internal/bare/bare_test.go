package bare

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestMain turns the test binary into a bare server when BARE_HELPER names
// a routes file, so that Start runs a real process.
func TestMain(m *testing.M) {
	if f := os.Getenv("BARE_HELPER"); f != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		if err := Serve(ctx, f, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var routes = Routes{
	"/ok":  {Status: 200, Header: http.Header{"Content-Type": {"application/json"}, "X-Test": {"1"}}, Body: []byte(`{"a":1}`)},
	"/bad": {Status: 503, Body: []byte("no")},
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler(routes))
	defer srv.Close()
	for i, tc := range []struct {
		path, body string
		code       int
	}{{"/ok", `{"a":1}`, 200}, {"/bad", "no", 503}, {"/other", "404 page not found\n", 404}} {
		code, h, body := get(t, srv.URL+tc.path)
		if code != tc.code || body != tc.body {
			t.Errorf("Test %d: %s = %d %q, want %d %q", i, tc.path, code, body, tc.code, tc.body)
		}
		if tc.path == "/ok" && (h.Get("X-Test") != "1" || h.Get("Content-Type") != "application/json") {
			t.Errorf("Test %d: headers %v", i, h)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "routes.json")
	if err := Save(p, routes); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got["/ok"].Body) != `{"a":1}` || got["/bad"].Status != 503 {
		t.Fatalf("Load = %+v", got)
	}
	for i, bad := range []string{`[]`, `{"nopath":{"status":200}}`, `{"/x":{"status":7}}`, `{`, `null`} {
		f := filepath.Join(dir, fmt.Sprintf("bad%d.json", i))
		if err := os.WriteFile(f, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(f); err == nil {
			t.Errorf("Test %d: Load(%s) did not fail", i, bad)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("Load of a missing file did not fail")
	}
}

// TestStartProcess is not parallel: it sets the environment its child
// inherits.
func TestStartProcess(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "routes.json")
	if err := Save(p, routes); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("BARE_HELPER", p)
	proc, err := Start(context.Background(), exe)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop()
	if proc.PID() == os.Getpid() {
		t.Fatal("not a separate process")
	}
	if code, _, body := get(t, "http://"+proc.Addr+"/ok"); code != 200 || body != `{"a":1}` {
		t.Fatalf("GET /ok = %d %q", code, body)
	}
	proc.Stop()

	t.Setenv("BARE_HELPER", filepath.Join(dir, "missing.json"))
	if _, err := Start(context.Background(), exe); err == nil {
		t.Fatal("a server without routes started")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"/ok":{"status":200,"header":{"A":["b"]},"body":"eyJhIjoxfQ=="}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		for p, a := range r {
			if !strings.HasPrefix(p, "/") || a.Status < 100 || a.Status > 999 {
				t.Fatalf("Parse(%q) accepted %q with status %d", b, p, a.Status)
			}
		}
	})
}
