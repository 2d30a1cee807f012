package deploy

import (
	"slices"
	"strings"
	"testing"
)

func TestParseUnit(t *testing.T) {
	t.Parallel()
	in := "# c\n[Unit]\nDescription=x y\n\n[Service]\n; c\nCapabilityBoundingSet=\nSystemCallFilter=a b \\\n  c\nSystemCallFilter=d\n"
	u, err := ParseUnit([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Get("Unit", "Description"); !slices.Equal(got, []string{"x y"}) {
		t.Errorf("Description %q", got)
	}
	if got := u.Get("Service", "CapabilityBoundingSet"); !slices.Equal(got, []string{""}) {
		t.Errorf("CapabilityBoundingSet %q", got)
	}
	if got := u.Get("Service", "SystemCallFilter"); !slices.Equal(got, []string{"a b c", "d"}) {
		t.Errorf("SystemCallFilter %q", got)
	}
	for i, tc := range []struct{ in, want string }{
		{"Key=v\n", "line 1: assignment \"Key\" before any [Section]"},
		{"[S]\nnot an assignment\n", "line 2: not a Key=Value assignment"},
		{"[S\n", "line 1: bad section header"},
		{"[S]\nA=b \\\n", "continuation at end of file"},
	} {
		_, err := ParseUnit([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: got %v, want %q", i, err, tc.want)
		}
	}
}

func TestParseExposure(t *testing.T) {
	t.Parallel()
	out := []byte("  NAME  DESCRIPTION  EXPOSURE\n✗ PrivateNetwork= ... 0.5\n\n→ Overall exposure level for secure-ai-runtime-attestor.service: 1.7 OK 🙂\n")
	unit, score, err := ParseExposure(out)
	if err != nil || unit != "secure-ai-runtime-attestor.service" || score != 1.7 {
		t.Fatalf("got %q %v %v", unit, score, err)
	}
	if _, _, err := ParseExposure([]byte("Failed to load unit\n")); err == nil {
		t.Error("no error without an exposure line")
	}
}

func FuzzParseUnit(f *testing.F) {
	f.Add([]byte("[Unit]\nA=b\n[Service]\nB=c \\\n d\n"))
	f.Add([]byte("[S]\n#x\n;y\nK=\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseUnit(data)
		if err != nil {
			return
		}
		for section, keys := range u {
			for k := range keys {
				if k == "" || strings.ContainsAny(k, " \t=") || section == "" {
					t.Fatalf("bad key %q in [%s]", k, section)
				}
			}
		}
	})
}

func FuzzParseExposure(f *testing.F) {
	f.Add([]byte("→ Overall exposure level for a.service: 9.6 UNSAFE 😨\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, score, err := ParseExposure(data)
		if err == nil && score < 0 {
			t.Fatalf("negative score %v", score)
		}
	})
}
