package kernel

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func p(name string) Param         { return Param{Name: name} }
func pv(name, value string) Param { return Param{Name: name, Value: value, HasValue: true} }
func pat(s string) ParamPattern   { x, err := ParseParamPattern(s); must(err); return x }
func params(s string) []Param     { c, err := ParseCmdline([]byte(s)); must(err); return c.Params }
func must(err error) {
	if err != nil {
		panic(err)
	}
}

func TestParseCmdline(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in     string
		params []Param
		init   string
	}{
		{"quiet\n", []Param{p("quiet")}, ""},
		{"  a  b=c\tc=d\n", []Param{p("a"), pv("b", "c"), pv("c", "d")}, ""},
		{"a b=c=d m= n\n", []Param{p("a"), pv("b", "c=d"), pv("m", ""), p("n")}, ""},
		{`"d=e f" g="h i" j="k" "l"`, []Param{pv("d", "e f"), pv("g", "h i"), pv("j", "k"), p("l")}, ""},
		{`a="b c"d e`, []Param{pv("a", `b c"d`), p("e")}, ""},
		{`"a=b"c`, []Param{pv("a", `b"c`)}, ""},
		{`x="`, []Param{pv("x", "")}, ""},
		{`"unterminated value`, []Param{p("unterminated value")}, ""},
		{`"`, []Param{p("")}, ""},
		{"=x y", []Param{p("=x"), p("y")}, ""},
		{"==0", []Param{pv("=", "0")}, ""},
		{"a\xa0b", []Param{p("a"), p("b")}, ""},
		{"root=/dev/vda rw -- init=/bin/sh single\n", []Param{pv("root", "/dev/vda"), p("rw")}, "init=/bin/sh single"},
		{`a "--" b`, []Param{p("a")}, "b"},
		{"a --=1 b", []Param{p("a"), pv("--", "1"), p("b")}, ""},
		{"a --", []Param{p("a")}, ""},
		{"\n", nil, ""},
	} {
		got, err := ParseCmdline([]byte(tc.in))
		if err != nil {
			t.Errorf("Test %d: ParseCmdline(%q): %v", i, tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got.Params, tc.params) || got.InitArgs != tc.init {
			t.Errorf("Test %d: ParseCmdline(%q) = %+v init %q, want %+v init %q", i, tc.in, got.Params, got.InitArgs, tc.params, tc.init)
		}
		if got.Raw != strings.TrimSuffix(tc.in, "\n") {
			t.Errorf("Test %d: Raw = %q", i, got.Raw)
		}
	}
}

func TestParseCmdlineErrors(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"quiet\x00splash\n", "NUL byte at offset 5"},
	} {
		if _, err := ParseCmdline([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: ParseCmdline(%q) = %v, want %q", i, tc.in, err, tc.want)
		}
	}
}

// TestParseCmdlineFixtures parses the fixtures, among them this machine's
// own /proc/cmdline copied byte for byte.
func TestParseCmdlineFixtures(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		dir      string
		n        int
		has      []string
		initArgs string
	}{
		{"firecracker_vm", 17, []string{"console=ttyS0", "nomodule", "mitigations=auto,no_guest_host,no_guest_guest", "rdinit=/process_api"}, "--firecracker-init "},
		{"fcos_hardened", 17, []string{"lockdown=integrity", "module.sig_enforce=1", "rw"}, ""},
		{"workstation_nvidia", 10, []string{"nvidia-drm.modeset=1", "rhgb"}, ""},
		{"debian_confidentiality", 5, []string{"lockdown=confidentiality"}, ""},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", tc.dir, "proc", "cmdline"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCmdline(data)
		if err != nil {
			t.Fatalf("Test %d (%s): %v", i, tc.dir, err)
		}
		if len(c.Params) != tc.n {
			t.Errorf("Test %d (%s): %d params %v, want %d", i, tc.dir, len(c.Params), c.Params, tc.n)
		}
		for _, h := range tc.has {
			if ok, _ := pat(h).SatisfiedBy(c.Params); !ok {
				t.Errorf("Test %d (%s): %q not found in %v", i, tc.dir, h, c.Params)
			}
		}
		if !strings.HasPrefix(c.InitArgs, tc.initArgs) || (tc.initArgs == "") != (c.InitArgs == "") {
			t.Errorf("Test %d (%s): init args %q, want prefix %q", i, tc.dir, c.InitArgs, tc.initArgs)
		}
		if !bytes.Equal([]byte(c.Raw+"\n"), data) {
			t.Errorf("Test %d (%s): Raw does not round-trip", i, tc.dir)
		}
	}
}

func TestParamPatterns(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in   string
		want ParamPattern
		err  string
	}{
		{"quiet", ParamPattern{Name: "quiet"}, ""},
		{"lockdown=integrity", ParamPattern{Name: "lockdown", Value: "integrity", HasValue: true}, ""},
		{"a=", ParamPattern{Name: "a", HasValue: true}, ""},
		{"a=b=c", ParamPattern{Name: "a", Value: "b=c", HasValue: true}, ""},
		{"acpi_osi=Windows 2009", ParamPattern{Name: "acpi_osi", Value: "Windows 2009", HasValue: true}, ""},
		{"", ParamPattern{}, "has no parameter name"},
		{"=x", ParamPattern{}, "has no parameter name"},
		{"a b=c", ParamPattern{}, `contains ' '`},
		{`"a"`, ParamPattern{}, `contains '"'`},
		{"a\x01", ParamPattern{}, `contains '\x01'`},
	} {
		got, err := ParseParamPattern(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Test %d: ParseParamPattern(%q) = %v, want error %q", i, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("Test %d: ParseParamPattern(%q) = %+v, %v; want %+v", i, tc.in, got, err, tc.want)
		}
	}
}

func TestSatisfiedBy(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		pattern, cmdline string
		ok               bool
		last             string
	}{
		{"quiet", "root=/dev/sda quiet", true, ""},
		{"quiet", "quiet=1", true, ""},
		{"quiet", "splash", false, ""},
		{"quiet", "-- quiet", false, ""},
		{"lockdown=integrity", "lockdown=integrity", true, ""},
		{"lockdown=integrity", "lockdown=none lockdown=integrity", true, ""},
		{"lockdown=integrity", "lockdown=integrity lockdown=none", false, "lockdown=none"},
		{"lockdown=integrity", "lockdown", false, "lockdown"},
		{"lockdown=integrity", `"lockdown=integrity"`, true, ""},
		{"lockdown=integrity", "lockdown=Integrity", false, "lockdown=Integrity"},
		{"module.sig_enforce=1", "module.sig_enforce=1 module.sig-enforce=0", false, "module.sig-enforce=0"},
		{"module.sig_enforce=1", "module.sig-enforce=1", false, "module.sig-enforce=1"},
		{"a=", "a=", true, ""},
		{"a=", "a", false, "a"},
	} {
		ok, last := pat(tc.pattern).SatisfiedBy(params(tc.cmdline))
		gotLast := ""
		if last != nil {
			gotLast = last.String()
		}
		if ok != tc.ok || gotLast != tc.last {
			t.Errorf("Test %d: %q on %q = %v last %q, want %v last %q", i, tc.pattern, tc.cmdline, ok, gotLast, tc.ok, tc.last)
		}
	}
}

func TestMatchesAny(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		pattern, cmdline string
		want             []string
	}{
		{"init", "root=/dev/sda init=/bin/sh", []string{"init=/bin/sh"}},
		{"init", "initrd=/boot/x", nil},
		{"init=/bin/sh", "init=/sbin/init", nil},
		{"init=/bin/sh", "init=/sbin/init init=/bin/sh", []string{"init=/bin/sh"}},
		{"module.sig_enforce=0", "module.sig-enforce=0", []string{"module.sig-enforce=0"}},
		{"debug", "debug debug=1", []string{"debug", "debug=1"}},
		{"debug=", "debug", nil},
		{"init", "-- init=/bin/sh", nil},
	} {
		var got []string
		for _, q := range pat(tc.pattern).MatchesAny(params(tc.cmdline)) {
			got = append(got, q.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Test %d: %q on %q = %q, want %q", i, tc.pattern, tc.cmdline, got, tc.want)
		}
	}
}

func TestParseLockdown(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in   string
		want Lockdown
		err  string
	}{
		{"[none] integrity confidentiality\n", LockdownNone, ""},
		{"none [integrity] confidentiality\n", LockdownIntegrity, ""},
		{"none integrity [confidentiality]\n", LockdownConfidentiality, ""},
		{"none [integrity] confidentiality", LockdownIntegrity, ""},
		{"[integrity] confidentiality\n", LockdownIntegrity, ""},
		{"none [integrity] confidentiality paranoid\n", LockdownIntegrity, ""},
		{"", 0, "empty"},
		{"\n", 0, `token 1 ""`},
		{"none integrity confidentiality\n", 0, "no mode in brackets"},
		{"[none] [integrity] confidentiality\n", 0, "more than one mode in brackets"},
		{"none [integrity] none\n", 0, `mode "none" listed twice`},
		{"none [paranoid] confidentiality\n", 0, `unknown lockdown mode "paranoid"`},
		{"none  [integrity]\n", 0, `token 2 ""`},
		{"none [Integrity] confidentiality\n", 0, `token 2 "[Integrity]"`},
		{"none [integrity] confidentiality\n\n", 0, "is not one line"},
		{"[]\n", 0, `token 1 "[]"`},
		{"\x7fELF\x02\x01\x01", 0, "is not a mode name"},
	} {
		got, err := ParseLockdown([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Test %d: ParseLockdown(%q) = %v, %v; want error %q", i, tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Test %d: ParseLockdown(%q) = %v, %v; want %v", i, tc.in, got, err, tc.want)
		}
	}
}

func TestLockdownOrder(t *testing.T) {
	t.Parallel()
	if !(LockdownNone < LockdownIntegrity && LockdownIntegrity < LockdownConfidentiality) {
		t.Fatal("lockdown modes are not ordered none < integrity < confidentiality")
	}
	for _, m := range []Lockdown{LockdownNone, LockdownIntegrity, LockdownConfidentiality} {
		if got, err := ParseLockdownMode(m.String()); err != nil || got != m {
			t.Errorf("ParseLockdownMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseLockdownMode("strict"); err == nil {
		t.Error("ParseLockdownMode accepted strict")
	}
}

func TestParseTainted(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{"0\n", 0, ""},
		{"12289\n", 12289, ""},
		{"512", 512, ""},
		{"18446744073709551615\n", 1<<64 - 1, ""},
		{"", 0, "empty"},
		{"\n", 0, "only a newline"},
		{"-1\n", 0, "not a decimal unsigned integer"},
		{" 5\n", 0, "not a decimal unsigned integer"},
		{"0x10\n", 0, "not a decimal unsigned integer"},
		{"5\n\n", 0, "not a decimal unsigned integer"},
		{"18446744073709551616\n", 0, "does not fit in 64 bits"},
		{strings.Repeat("9", 1000), 0, "..."},
	} {
		got, err := ParseTainted([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Test %d: ParseTainted(%q) = %v, %v; want error %q", i, tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Test %d: ParseTainted(%q) = %v, %v; want %v", i, tc.in, got, err, tc.want)
		}
	}
}

func TestDecodeTaint(t *testing.T) {
	t.Parallel()
	letters := func(fs []TaintFlag) string {
		var s string
		for _, f := range fs {
			s += f.Letter
		}
		return s
	}
	for i, tc := range []struct {
		v       uint64
		letters string
		unknown []uint
	}{
		{0, "", nil},
		{1, "P", nil},
		{12289, "POE", nil},
		{640, "DW", nil},
		{1<<20 - 1, "PFSRMBUDAWCIOELKXTNJ", nil},
		{1<<20 | 1<<63 | 4096, "O", []uint{20, 63}},
	} {
		flags, unknown := DecodeTaint(tc.v)
		if letters(flags) != tc.letters || !reflect.DeepEqual(unknown, tc.unknown) {
			t.Errorf("Test %d: DecodeTaint(%d) = %q %v, want %q %v", i, tc.v, letters(flags), unknown, tc.letters, tc.unknown)
		}
	}
}

// TestTaintTable checks the table against the kernel's: bits 0..19 in
// order, unique letters and names, each found by letter and name.
func TestTaintTable(t *testing.T) {
	t.Parallel()
	if len(TaintFlags) != 20 {
		t.Fatalf("%d taint flags, want 20 (TAINT_FLAGS_COUNT)", len(TaintFlags))
	}
	seen := map[string]bool{}
	for i, f := range TaintFlags {
		if f.Bit != uint(i) || len(f.Letter) != 1 || f.Name == "" || f.Description == "" || seen[f.Letter] || seen[f.Name] {
			t.Errorf("flag %d: %+v", i, f)
		}
		seen[f.Letter], seen[f.Name] = true, true
		for _, key := range []string{f.Letter, f.Name} {
			if got, ok := LookupTaint(key); !ok || got.Bit != f.Bit {
				t.Errorf("LookupTaint(%q) = %+v, %v", key, got, ok)
			}
		}
	}
	for _, bad := range []string{"G", "o", "OOT_MODULE", "", "unknown_bit_20"} {
		if f, ok := LookupTaint(bad); ok {
			t.Errorf("LookupTaint(%q) = %+v, want not found", bad, f)
		}
	}
}

func TestParseBoolParam(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in   string
		want bool
		err  string
	}{
		{"Y\n", true, ""},
		{"N\n", false, ""},
		{"Y", true, ""},
		{"", false, "empty"},
		{"1\n", false, `"1" is neither Y nor N`},
		{"y\n", false, "neither"},
		{"YES\n", false, "neither"},
		{"Y\n\n", false, "neither"},
	} {
		got, err := ParseBoolParam([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Test %d: ParseBoolParam(%q) = %v, %v; want error %q", i, tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Test %d: ParseBoolParam(%q) = %v, %v", i, tc.in, got, err)
		}
	}
}

// FuzzParseCmdline: no input panics or loops; on ASCII input without
// quotes the parameters are exactly the whitespace-separated words up to
// "--", each split at its first '=' past the first byte.
func FuzzParseCmdline(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCmdline(data)
		if err != nil {
			return
		}
		if c.Raw != string(bytes.TrimSuffix(data, []byte("\n"))) {
			t.Fatalf("Raw %q", c.Raw)
		}
		if bytes.IndexByte(data, '"') >= 0 {
			return
		}
		if !isASCII(c.Raw) {
			return // FieldsFunc works on runes: compare on ASCII input only
		}
		var want []Param
		words := strings.FieldsFunc(c.Raw, func(r rune) bool { return isSpace(byte(r)) })
		for _, w := range words {
			if w == "--" {
				break
			}
			// The kernel splits at the first '=' after the first byte.
			if i := strings.IndexByte(w[1:], '=') + 1; i > 0 {
				want = append(want, pv(w[:i], w[i+1:]))
			} else {
				want = append(want, p(w))
			}
		}
		if !reflect.DeepEqual(c.Params, want) {
			t.Fatalf("ParseCmdline(%q) = %q, want %q", data, c.Params, want)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzParseLockdown: an accepted input names its mode in brackets.
func FuzzParseLockdown(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseLockdown(data)
		if err != nil {
			return
		}
		if !bytes.Contains(data, []byte("["+m.String()+"]")) {
			t.Fatalf("ParseLockdown(%q) = %v", data, m)
		}
	})
}

// FuzzParseTainted: an accepted input is the decimal form of its value.
func FuzzParseTainted(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseTainted(data)
		if err != nil {
			return
		}
		s := strings.TrimLeft(strings.TrimSuffix(string(data), "\n"), "0")
		if s == "" {
			s = "0"
		}
		if strconv.FormatUint(v, 10) != s {
			t.Fatalf("ParseTainted(%q) = %d", data, v)
		}
		flags, unknown := DecodeTaint(v)
		var back uint64
		for _, f := range flags {
			back |= 1 << f.Bit
		}
		for _, b := range unknown {
			back |= 1 << b
		}
		if back != v {
			t.Fatalf("DecodeTaint(%d) loses bits", v)
		}
	})
}

// FuzzParseBoolParam: only Y and N, with or without a newline, are accepted.
func FuzzParseBoolParam(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseBoolParam(data)
		if err != nil {
			return
		}
		s := strings.TrimSuffix(string(data), "\n")
		if (s != "Y" || !v) && (s != "N" || v) {
			t.Fatalf("ParseBoolParam(%q) = %v", data, v)
		}
	})
}

// FuzzParamPattern: an accepted pattern prints back as itself and matches a
// parameter built from it.
func FuzzParamPattern(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		pp, err := ParseParamPattern(s)
		if err != nil {
			return
		}
		if pp.String() != s {
			t.Fatalf("%q prints as %q", s, pp.String())
		}
		param := Param(pp)
		if ok, _ := pp.SatisfiedBy([]Param{param}); !ok || len(pp.MatchesAny([]Param{param})) != 1 {
			t.Fatalf("%q does not match its own parameter", s)
		}
	})
}
