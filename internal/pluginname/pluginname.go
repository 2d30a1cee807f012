// Package pluginname holds the naming rules that the policy and the plugin
// protocol both enforce, so that the two never disagree:
//
//   - a check plugin's name (plugins.<name> in the policy, the name in a
//     plugin's description): lowercase letters, digits and '_', starting
//     with a letter, at most 63 bytes; the part after "attestor-check-" in
//     the plugin executable's name;
//   - a finding code: two or more dot-separated parts of lowercase letters,
//     digits and '_', the first starting with a letter (binaries.missing);
//   - a measurement key: the same with one part or more (pcrs, tpm.pcr).
//
// The rules are hand-written rather than regular expressions: every plugin
// process links this package, and a compiled expression is work done at
// each plugin start. Standard library only.
package pluginname

import "strings"

// MaxLen is the longest valid plugin name, in bytes.
const MaxLen = 63

// Valid reports whether name is a valid plugin name.
func Valid(name string) bool {
	return len(name) <= MaxLen && dotted(name, 1) && strings.IndexByte(name, '.') < 0
}

// ValidCode reports whether code is a well-formed finding code (two parts
// or more). It does not check the length limit of the protocol.
func ValidCode(code string) bool { return dotted(code, 2) }

// ValidKey reports whether key is a well-formed measurement or fill key
// (one part or more). It does not check the length limit of the protocol.
func ValidKey(key string) bool { return dotted(key, 1) }

// dotted reports whether s is at least min non-empty parts separated by
// '.', made of [a-z0-9_], the first part starting with [a-z].
func dotted(s string, min int) bool {
	if s == "" || !lower(s[0]) {
		return false
	}
	parts, partLen := 1, 1
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if partLen == 0 {
				return false
			}
			parts, partLen = parts+1, 0
		case lower(c) || digit(c) || c == '_':
			partLen++
		default:
			return false
		}
	}
	return partLen > 0 && parts >= min
}

func lower(c byte) bool { return 'a' <= c && c <= 'z' }
func digit(c byte) bool { return '0' <= c && c <= '9' }
