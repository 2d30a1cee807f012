package wrk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	out, err := os.ReadFile("testdata/output.txt")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 50000 || r.LatencyUS.P99 != 800 || r.LatencyUS.P999 != 2000 || r.RPS() != 50000 {
		t.Fatalf("Parse = %+v", r)
	}
	for i, bad := range []string{
		"",
		"Requests/sec: 1\n",
		"WRKJSON {not json}\n",
		`WRKJSON {"requests":1,"duration_us":0}` + "\n",
		`WRKJSON {"requests":1,"duration_us":5,"surprise":1}` + "\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Test %d: Parse(%q) did not fail", i, bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`WRKJSON {"requests":3,"duration_us":10}`))
	f.Add([]byte("junk\nWRKJSON {}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err == nil && (r.DurationUS <= 0 || r.Requests < 0) {
			t.Fatalf("Parse accepted %q as %+v", b, r)
		}
	})
}

func TestRunOptions(t *testing.T) {
	t.Parallel()
	for i, o := range []Options{
		{URL: "http://127.0.0.1:1/", Threads: 0, Connections: 1, Duration: time.Second},
		{URL: "http://127.0.0.1:1/", Threads: 2, Connections: 1, Duration: time.Second},
		{URL: "http://127.0.0.1:1/", Threads: 1, Connections: 1, Duration: 100 * time.Millisecond},
	} {
		if _, err := Run(context.Background(), t.TempDir(), o); err == nil {
			t.Errorf("Test %d: Run(%+v) did not fail", i, o)
		}
	}
}

func TestRunReal(t *testing.T) {
	t.Parallel()
	if _, err := Path(); err != nil {
		t.Skipf("skipping the real wrk run: %v", err)
	}
	body := strings.Repeat("x", 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	r, err := Run(context.Background(), t.TempDir(), Options{URL: srv.URL + "/", Threads: 1, Connections: 2, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 1 || r.Bytes < int64(len(body)) || r.LatencyUS.P50 <= 0 || r.LatencyUS.P99 < r.LatencyUS.P50 {
		t.Fatalf("Run = %+v", r)
	}
	if r.Errors.Status != 0 {
		t.Fatalf("status errors on a 200 handler: %+v", r.Errors)
	}
	r, err = Run(context.Background(), t.TempDir(), Options{URL: srv.URL + "/missing", Threads: 1, Connections: 1, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors.Status != r.Requests || r.Requests == 0 {
		t.Fatalf("404s not counted as status errors: %+v", r)
	}
}
