package machine

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestParsers(t *testing.T) {
	t.Parallel()
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got := cpuModel(read("cpuinfo")); got != "AMD EPYC" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel([]byte("processor\t: 0\n")); got != "" {
		t.Errorf("cpuModel without a model name = %q", got)
	}
	if got := memTotal(read("meminfo")); got <= 1<<30 {
		t.Errorf("memTotal = %d", got)
	}
	if got := memTotal([]byte("MemTotal: lots kB\n")); got != 0 {
		t.Errorf("memTotal of garbage = %d", got)
	}
	if got := prettyName(read("os-release")); !strings.HasPrefix(got, "Debian") {
		t.Errorf("prettyName = %q", got)
	}
}

func TestParseLoadAvg(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in      string
		want    [3]float64
		wantErr bool
	}{
		{in: "0.52 1.10 2.00 3/400 12345\n", want: [3]float64{0.52, 1.1, 2}},
		{in: "1 2", wantErr: true},
		{in: "a b c", wantErr: true},
	} {
		got, err := parseLoadAvg([]byte(tc.in))
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("Test %d: parseLoadAvg(%q) = %v, %v", i, tc.in, got, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	in, err := Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in.Cores < 1 || in.Go == "" || in.Kernel == "" || in.Date == "" {
		t.Fatalf("Describe = %+v", in)
	}
	if s := in.Summary(); !strings.Contains(s, "cores") {
		t.Fatalf("Summary = %q", s)
	}
}

// FuzzParsers feeds the same bytes to every /proc and /etc parser: none may
// panic, and a load average they accept has three numbers that parse back.
func FuzzParsers(f *testing.F) {
	f.Add([]byte("0.52 1.10 2.00 3/400 12345\n"))
	f.Add([]byte("model name\t: X\nMemTotal: 100 kB\nPRETTY_NAME=\"D\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = cpuModel(b)
		if memTotal(b) < 0 {
			t.Fatalf("memTotal(%q) is negative", b)
		}
		_ = prettyName(b)
		if la, err := parseLoadAvg(b); err == nil && len(strings.Fields(string(b))) < 3 {
			t.Fatalf("parseLoadAvg(%q) = %v without three fields", b, la)
		}
	})
}
