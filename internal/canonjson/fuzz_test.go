package canonjson

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// FuzzIsCanonical: whatever isCanonical accepts is exactly what the RFC
// 8785 canonicalizer (gowebpki/jcs) writes for it, so that Canonical's
// shortcut never changes a byte; and the canonical form of anything
// without fractions, exponents or long numbers is accepted.
func FuzzIsCanonical(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `{"a":1,"b":[true,false,null,-12,0]}`, `{"b":1,"a":2}`, `{"a":1,"a":2}`,
		`"\u001f\b\f\n\r\t\"\\"`, `"\u0008"`, `"\/"`, `"\u0041"`, `-0`, `01`, `1.5`, `1e3`, `123456789012345`,
		`1234567890123456`, `{"\u20ac":1,"\ud83d\ude00":2}`, `{"\ufb33":1,"😀":2}`, `{"😀":1,"דּ":2}`,
		"\"\x7f\u2028\"", `{"a" :1}`, `[1 ]`, `"` + "\xff" + `"`, `[[[[]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !utf8.Valid(raw) {
			return
		}
		want, err := jcs.Transform(raw)
		if isCanonical(raw) {
			if err != nil {
				t.Fatalf("isCanonical accepted %q, which JCS refuses: %v", raw, err)
			}
			if !bytes.Equal(want, raw) {
				t.Fatalf("isCanonical accepted %q, whose JCS form is %q", raw, want)
			}
		}
		if err == nil && !bytes.ContainsAny(want, ".eE") && !longNumber(want) && !isCanonical(want) {
			t.Fatalf("isCanonical refused the canonical form %q", want)
		}
	})
}

// longNumber reports whether c, canonical JSON, may hold a number of more
// than 15 digits (a run of 16 digits anywhere, strings included).
func longNumber(c []byte) bool {
	run := 0
	for _, ch := range c {
		if ch >= '0' && ch <= '9' {
			run++
			if run > 15 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}
