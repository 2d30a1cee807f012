package pluginname

import (
	"regexp"
	"strings"
	"testing"
)

// The rules as regular expressions: the hand-written ones must agree.
var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	codeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`)
	keyRE  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$`)
)

func TestRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in              string
		name, code, key bool
	}{
		{"binaries", true, false, true},
		{"a", true, false, true},
		{"tpm2_quote", true, false, true},
		{"binaries.missing", false, true, true},
		{"tpm.pcr.7", false, true, true},
		{"a.0", false, true, true},
		{"a._", false, true, true},
		{"", false, false, false},
		{"0abc", false, false, false},
		{"_abc", false, false, false},
		{"Abc", false, false, false},
		{"abc.", false, false, false},
		{".abc", false, false, false},
		{"a..b", false, false, false},
		{"a.B", false, false, false},
		{"a-b", false, false, false},
		{"a b", false, false, false},
		{"a\n", false, false, false},
		{"é", false, false, false},
		{strings.Repeat("a", 63), true, false, true},
		{strings.Repeat("a", 64), false, false, true},
	}
	for _, c := range cases {
		if got := Valid(c.in); got != c.name {
			t.Errorf("Valid(%q) = %v, want %v", c.in, got, c.name)
		}
		if got := ValidCode(c.in); got != c.code {
			t.Errorf("ValidCode(%q) = %v, want %v", c.in, got, c.code)
		}
		if got := ValidKey(c.in); got != c.key {
			t.Errorf("ValidKey(%q) = %v, want %v", c.in, got, c.key)
		}
		agree(t, c.in)
	}
}

func agree(t *testing.T, s string) {
	t.Helper()
	if Valid(s) != nameRE.MatchString(s) || ValidCode(s) != codeRE.MatchString(s) || ValidKey(s) != keyRE.MatchString(s) {
		t.Errorf("%q: Valid %v/%v, ValidCode %v/%v, ValidKey %v/%v (hand-written/regexp)", s,
			Valid(s), nameRE.MatchString(s), ValidCode(s), codeRE.MatchString(s), ValidKey(s), keyRE.MatchString(s))
	}
}

// FuzzRules holds the hand-written rules to the regular expressions.
func FuzzRules(f *testing.F) {
	for _, s := range []string{"binaries", "binaries.missing", "a..b", "a.", "0", strings.Repeat("z", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { agree(t, s) })
}
