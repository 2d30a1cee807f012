package canonjson

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
)

// maxCheckDepth bounds the nesting isCanonical follows; deeper documents
// are left to the canonicalizer (which allows more).
const maxCheckDepth = 512

// isCanonical reports whether raw, valid UTF-8, is already exactly its RFC
// 8785 form, so that Canonical can return it as it is instead of parsing
// and writing it again. It is conservative: it accepts only what it can
// prove canonical in one pass without building anything, and answers false
// for the rest (a fraction or exponent, an integer of more than 15 digits,
// a nesting deeper than maxCheckDepth), which Canonical then transforms.
// What it accepts: no whitespace; literals; integers of at most 15 digits
// (every one is a double JCS writes as it is) without leading zeros or
// "-0"; strings whose only escapes are the ones JCS writes (\" \\ \b \f \n
// \r \t and \u00xx, lowercase, for the other control characters) and no
// raw control character; object members in strictly increasing order of
// the UTF-16 code units of their names (so no duplicates).
func isCanonical(raw []byte) bool {
	c := checker{b: raw}
	return c.value(0) && c.i == len(raw)
}

// checker is isCanonical's cursor over its input.
type checker struct {
	b []byte
	i int
}

func (c *checker) value(depth int) bool {
	if c.i >= len(c.b) {
		return false
	}
	switch c.b[c.i] {
	case '{':
		return depth < maxCheckDepth && c.object(depth+1)
	case '[':
		return depth < maxCheckDepth && c.array(depth+1)
	case '"':
		_, ok := c.str()
		return ok
	case 't':
		return c.lit("true")
	case 'f':
		return c.lit("false")
	case 'n':
		return c.lit("null")
	}
	return c.number()
}

func (c *checker) lit(s string) bool {
	if len(c.b)-c.i < len(s) || string(c.b[c.i:c.i+len(s)]) != s {
		return false
	}
	c.i += len(s)
	return true
}

// number accepts -?(0|[1-9][0-9]{0,14}) but not -0: below 10^15 < 2^53
// every integer is a double that JCS writes as these digits. What follows
// it is the caller's to check (a '.' or 'e' there fails).
func (c *checker) number() bool {
	start := c.i
	if c.b[c.i] == '-' {
		c.i++
	}
	digits := c.i
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		c.i++
	}
	n := c.i - digits
	if n == 0 || n > 15 {
		return false
	}
	return c.b[digits] != '0' || (n == 1 && digits == start)
}

// str reads a string and returns what is between its quotes.
func (c *checker) str() ([]byte, bool) {
	start := c.i + 1
	for c.i = start; c.i < len(c.b); c.i++ {
		switch ch := c.b[c.i]; {
		case ch == '"':
			c.i++
			return c.b[start : c.i-1], true
		case ch < 0x20:
			return nil, false
		case ch == '\\':
			if !c.escape() {
				return nil, false
			}
		}
	}
	return nil, false
}

// escape checks the escape at c.i (a backslash) and leaves c.i on its last
// byte.
func (c *checker) escape() bool {
	if c.i+1 >= len(c.b) {
		return false
	}
	switch c.b[c.i+1] {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		c.i++
		return true
	case 'u':
	default:
		return false
	}
	if c.i+5 >= len(c.b) || c.b[c.i+2] != '0' || c.b[c.i+3] != '0' {
		return false
	}
	hi, lo := c.b[c.i+4], c.b[c.i+5]
	var v byte
	switch {
	case lo >= '0' && lo <= '9':
		v = lo - '0'
	case lo >= 'a' && lo <= 'f':
		v = lo - 'a' + 10
	default:
		return false
	}
	switch hi {
	case '0':
	case '1':
		v += 16
	default:
		return false
	}
	switch v {
	case '\b', '\t', '\n', '\f', '\r':
		return false // JCS writes these as two-character escapes
	}
	c.i += 5
	return true
}

func (c *checker) array(depth int) bool {
	c.i++
	if c.i < len(c.b) && c.b[c.i] == ']' {
		c.i++
		return true
	}
	for {
		if !c.value(depth) || c.i >= len(c.b) {
			return false
		}
		switch c.b[c.i] {
		case ']':
			c.i++
			return true
		case ',':
			c.i++
		default:
			return false
		}
	}
}

func (c *checker) object(depth int) bool {
	c.i++
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		return true
	}
	var prev []byte
	for first := true; ; first = false {
		if c.i >= len(c.b) || c.b[c.i] != '"' {
			return false
		}
		name, ok := c.str()
		if !ok || (!first && !nameAfter(prev, name)) {
			return false
		}
		prev = name
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return false
		}
		c.i++
		if !c.value(depth) || c.i >= len(c.b) {
			return false
		}
		switch c.b[c.i] {
		case '}':
			c.i++
			return true
		case ',':
			c.i++
		default:
			return false
		}
	}
}

// nameAfter reports whether the member name b (as written between its
// quotes) sorts strictly after a in UTF-16 code units. Names in plain
// ASCII compare as bytes; others are decoded first (escapes, and UTF-8
// order differs from UTF-16 order above U+FFFF).
func nameAfter(a, b []byte) bool {
	if plainASCII(a) && plainASCII(b) {
		return bytes.Compare(a, b) < 0
	}
	var sa, sb string
	if json.Unmarshal(quoted(a), &sa) != nil || json.Unmarshal(quoted(b), &sb) != nil {
		return false
	}
	ua, ub := utf16.Encode([]rune(sa)), utf16.Encode([]rune(sb))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

func plainASCII(s []byte) bool {
	for _, ch := range s {
		if ch >= 0x80 || ch == '\\' {
			return false
		}
	}
	return true
}

func quoted(s []byte) []byte {
	q := make([]byte, 0, len(s)+2)
	q = append(q, '"')
	q = append(q, s...)
	return append(q, '"')
}
