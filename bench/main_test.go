package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

func TestMain(m *testing.M) {
	if body := os.Getenv(serveEnv); body != "" { // the bare HTTP baseline
		if err := serveBare(body); err != nil {
			os.Exit(1)
		}
		return
	}
	os.Exit(testbin.Main(m))
}

// TestBenchOneIteration runs the whole benchmark once at a toy size, with
// the real daemon and the built-in plugins in real cgroups (quota 100% so
// that it is quick), and checks that every figure got its value. It never
// looks at a timing.
func TestBenchOneIteration(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the benchmark creates cgroups: root only")
	}
	root := testbin.Root(t)
	bin := t.TempDir()
	plugins := filepath.Join(bin, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	testbin.Install(t, testbin.Build(t, "./cmd/runtime-attestor", "runtime-attestor"), bin, "runtime-attestor")
	testbin.Install(t, testbin.Launcher(t), bin, "attestor-launcher")
	testbin.Install(t, testbin.Build(t, "./cmd/attestctl", "attestctl"), bin, "attestctl")
	mains, _ := filepath.Glob(filepath.Join(root, "cmd", "attestor-check-*"))
	for _, m := range mains {
		testbin.Plugin(t, plugins, strings.TrimPrefix(filepath.Base(m), "attestor-check-"))
	}
	out := filepath.Join(t.TempDir(), "RESULTS.md")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-root", root, "-bin", bin, "-runs", "1", "-attestations", "1", "-files", "8",
		"-busy", "0s", "-cpu-quota", "100", "-plugin-start=false", "-o", out, "-work", t.TempDir()}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(string(raw), "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) != 8 || cells[0] == "| figure" || strings.HasPrefix(line, "| ---") {
			continue
		}
		rows++
		measured := !strings.Contains(cells[1], "BenchmarkPluginStart") // -plugin-start=false
		if got := cells[4] != "0" && cells[2] != "–"; got != measured {
			t.Errorf("figure %q (%s): n=%s value %q, want measured %v", cells[0], cells[1], cells[4], cells[2], measured)
		}
	}
	if rows != len(newTable(config{}).rows) {
		t.Errorf("%d figures in %s, want %d:\n%s", rows, out, len(newTable(config{}).rows), raw)
	}
	if !bytes.Equal(stdout.Bytes(), raw) {
		t.Error("stdout differs from the results file")
	}
}

func TestParseBench(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		n         int
		wantErr   bool
	}{
		{"two results", "goos: linux\nBenchmarkPluginStart 20 51234567 ns/op 50.10 cpu-ms/op\n" +
			"BenchmarkPluginStart-2 20 41234567 ns/op 40.5 cpu-ms/op\nPASS\n", 2, false},
		{"none", "PASS\nok x 1.0s\n", 0, false},
		{"no cpu metric", "BenchmarkPluginStart 20 51234567 ns/op\n", 0, true},
		{"garbage value", "BenchmarkPluginStart 20 fast ns/op 1 cpu-ms/op\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [][2]float64
			n, err := parseBench(tc.out, func(w, c float64) { got = append(got, [2]float64{w, c}) })
			if (err != nil) != tc.wantErr || n != tc.n || len(got) != tc.n {
				t.Fatalf("parseBench = %d, %v (%v), want %d, error %v", n, err, got, tc.n, tc.wantErr)
			}
			if tc.n == 2 && (got[0] != [2]float64{51234567, 50.1} || got[1] != [2]float64{41234567, 40.5}) {
				t.Errorf("values %v", got)
			}
		})
	}
}

func TestSpanAndResult(t *testing.T) {
	for _, tc := range []struct {
		r          row
		span, want string
	}{
		{row{Unit: "s", Values: []float64{1.234, 0.5}, Goal: 1}, "0.50–1.23 s", "**FAIL**"},
		{row{Unit: "ms", Values: []float64{80, 99.9}, Goal: 100}, "80–99.9 ms", "pass"},
		{row{Unit: "tasks", Values: []float64{23}, Goal: 24}, "23 tasks", "pass"},
		{row{Unit: "ms", Goal: 8}, "–", "not measured"},
		{row{Unit: "x", Values: []float64{1.5}}, "1.50 x", ""},
	} {
		if got := span(tc.r.Values, tc.r.Unit); got != tc.span {
			t.Errorf("span(%v) = %q, want %q", tc.r.Values, got, tc.span)
		}
		if got := tc.r.result(); got != tc.want {
			t.Errorf("result(%v, goal %v) = %q, want %q", tc.r.Values, tc.r.Goal, got, tc.want)
		}
	}
}
