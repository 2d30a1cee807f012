package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file holds the pure parsers: bytes in, values out, no I/O.

// ErrEmpty is returned for a file with no bytes at all.
var ErrEmpty = errors.New("empty: 0 bytes")

// trimNewline removes exactly one trailing newline, as the kernel adds one to
// every /proc and sysfs value it prints.
func trimNewline(b []byte) []byte { return bytes.TrimSuffix(b, []byte("\n")) }

// ---- kernel command line -------------------------------------------------

// Param is one kernel command-line parameter, quotes removed.
type Param struct {
	Name     string
	Value    string
	HasValue bool // "name=" has an empty value; "name" has none
}

func (p Param) String() string {
	if !p.HasValue {
		return p.Name
	}
	return p.Name + "=" + p.Value
}

// Cmdline is a parsed /proc/cmdline.
type Cmdline struct {
	// Raw is the command line without its trailing newline.
	Raw string
	// Params are the kernel's parameters, in order.
	Params []Param
	// InitArgs is everything after a bare "--": arguments for init, not
	// kernel parameters.
	InitArgs string
}

// isSpace is the kernel's isspace (lib/ctype.c): the ASCII whitespace
// characters and 0xA0, which Latin-1 calls a no-break space.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
		return true
	}
	return false
}

func skipSpaces(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	return s
}

// nextArg splits the first argument off args exactly as the kernel's
// next_arg (lib/cmdline.c) does: whitespace separates arguments except
// inside double quotes; the first '=' (not at position 0) splits name from
// value; a value's leading quote and a matching trailing quote are
// removed, and so is the trailing quote of an argument that starts with one.
func nextArg(args string) (Param, string) {
	inQuote, quoted := false, false
	if len(args) > 0 && args[0] == '"' {
		args = args[1:]
		inQuote, quoted = true, true
	}
	i, equals := 0, 0
	for ; i < len(args); i++ {
		if isSpace(args[i]) && !inQuote {
			break
		}
		if equals == 0 && args[i] == '=' {
			equals = i
		}
		if args[i] == '"' {
			inQuote = !inQuote
		}
	}
	// The C code ends strings by overwriting bytes with NUL; here the
	// same bytes are cut off.
	var p Param
	lastQuote := i > 0 && args[i-1] == '"'
	if equals == 0 {
		name := args[:i]
		if quoted && lastQuote {
			name = args[:i-1]
		}
		p = Param{Name: name}
	} else {
		vs, ve := equals+1, i
		if vs < ve && args[vs] == '"' {
			vs++
			if lastQuote && ve-1 >= vs {
				ve--
			}
			lastQuote = false // the C code has already cleared it
		}
		if quoted && lastQuote && ve-1 >= vs {
			ve--
		}
		p = Param{Name: args[:equals], Value: args[vs:ve], HasValue: true}
	}
	rest := ""
	if i < len(args) {
		rest = args[i+1:]
	}
	return p, skipSpaces(rest)
}

// ParseCmdline parses the bytes of /proc/cmdline the way the kernel's
// parse_args does. It stops at a bare "--": what follows goes to init. It
// refuses an empty file and NUL bytes (the kernel's command line is a C
// string).
func ParseCmdline(data []byte) (Cmdline, error) {
	if len(data) == 0 {
		return Cmdline{}, ErrEmpty
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return Cmdline{}, fmt.Errorf("NUL byte at offset %d", i)
	}
	c := Cmdline{Raw: string(trimNewline(data))}
	args := skipSpaces(c.Raw)
	for args != "" {
		var p Param
		p, args = nextArg(args)
		if !p.HasValue && p.Name == "--" {
			c.InitArgs = args
			break
		}
		c.Params = append(c.Params, p)
	}
	return c, nil
}

// normalizeName maps '-' to '_', as the kernel does when it compares module
// parameter names (parameqn).
func normalizeName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// ParamPattern is a policy entry matching kernel parameters: "name" or
// "name=value".
type ParamPattern struct {
	Name     string
	Value    string
	HasValue bool
}

func (p ParamPattern) String() string {
	if !p.HasValue {
		return p.Name
	}
	return p.Name + "=" + p.Value
}

// ParseParamPattern parses "name" or "name=value". The name must be
// non-empty and free of whitespace, quotes and '='; the value is compared
// with the parameter's value after the kernel removed its quotes.
func ParseParamPattern(s string) (ParamPattern, error) {
	name, value, hasValue := strings.Cut(s, "=")
	if name == "" {
		return ParamPattern{}, fmt.Errorf("%q has no parameter name", s)
	}
	for i := 0; i < len(name); i++ {
		if isSpace(name[i]) || name[i] == '"' || name[i] < 0x20 || name[i] == 0x7f {
			return ParamPattern{}, fmt.Errorf("parameter name %q contains %q", name, name[i])
		}
	}
	return ParamPattern{Name: name, Value: value, HasValue: hasValue}, nil
}

// MatchesAny reports the parameters a forbidden pattern catches: those
// whose name equals the pattern's with '-' and '_' taken as equal (the
// kernel accepts both spellings of module parameters, so both are caught),
// and, for "name=value", whose value is exactly value.
func (p ParamPattern) MatchesAny(params []Param) []Param {
	var out []Param
	n := normalizeName(p.Name)
	for _, q := range params {
		if normalizeName(q.Name) != n {
			continue
		}
		if p.HasValue && (!q.HasValue || q.Value != p.Value) {
			continue
		}
		out = append(out, q)
	}
	return out
}

// SatisfiedBy reports whether a required pattern holds. "name" holds when a
// parameter spelled exactly name is present. "name=value" holds when the
// last parameter with that name (either spelling of '-' and '_': the last
// one is the one in effect) is spelled exactly name and has exactly value.
// When it does not hold, last is that last parameter, if any.
func (p ParamPattern) SatisfiedBy(params []Param) (ok bool, last *Param) {
	n := normalizeName(p.Name)
	for i := range params {
		q := params[i]
		if !p.HasValue && q.Name == p.Name {
			return true, nil
		}
		if normalizeName(q.Name) == n {
			last = &params[i]
		}
	}
	if p.HasValue && last != nil && last.Name == p.Name && last.HasValue && last.Value == p.Value {
		return true, nil
	}
	return false, last
}

// ---- lockdown --------------------------------------------------------------

// Lockdown is a kernel lockdown mode, ordered from weakest to strongest.
type Lockdown int

// The lockdown modes.
const (
	LockdownNone Lockdown = iota
	LockdownIntegrity
	LockdownConfidentiality
)

var lockdownNames = [...]string{"none", "integrity", "confidentiality"}

func (l Lockdown) String() string {
	if l < 0 || int(l) >= len(lockdownNames) {
		return fmt.Sprintf("lockdown(%d)", int(l))
	}
	return lockdownNames[l]
}

// ParseLockdownMode parses a mode name: none, integrity or confidentiality.
func ParseLockdownMode(s string) (Lockdown, error) {
	for i, n := range lockdownNames {
		if s == n {
			return Lockdown(i), nil
		}
	}
	return 0, fmt.Errorf("unknown lockdown mode %q (want none, integrity or confidentiality)", s)
}

// ParseLockdown parses /sys/kernel/security/lockdown, which lists the
// modes the kernel offers separated by spaces, the one in force in square
// brackets: "none [integrity] confidentiality\n". Exactly one mode must be
// bracketed and it must be a known one; every token is a lowercase word,
// listed once. Unknown unbracketed words (a mode a newer kernel might add)
// are allowed.
func ParseLockdown(data []byte) (Lockdown, error) {
	if len(data) == 0 {
		return 0, ErrEmpty
	}
	s := string(trimNewline(data))
	if strings.ContainsAny(s, "\n\x00") {
		return 0, fmt.Errorf("%q is not one line", s)
	}
	tokens := strings.Split(s, " ")
	seen := map[string]bool{}
	current, found := "", false
	for i, tok := range tokens {
		word, bracketed := tok, false
		if strings.HasPrefix(tok, "[") && strings.HasSuffix(tok, "]") && len(tok) >= 2 {
			word, bracketed = tok[1:len(tok)-1], true
		}
		if !isWord(word) {
			return 0, fmt.Errorf("token %d %q of %q is not a mode name or a bracketed mode name", i+1, tok, s)
		}
		if seen[word] {
			return 0, fmt.Errorf("mode %q listed twice in %q", word, s)
		}
		seen[word] = true
		if bracketed {
			if found {
				return 0, fmt.Errorf("more than one mode in brackets in %q", s)
			}
			current, found = word, true
		}
	}
	if !found {
		return 0, fmt.Errorf("no mode in brackets in %q", s)
	}
	mode, err := ParseLockdownMode(current)
	if err != nil {
		return 0, fmt.Errorf("mode in force: %w", err)
	}
	return mode, nil
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < 'a' || s[i] > 'z') && s[i] != '_' {
			return false
		}
	}
	return true
}

// ---- taint -----------------------------------------------------------------

// TaintFlag is one kernel taint bit (Documentation/admin-guide/
// tainted-kernels.rst; Name is the kernel's TAINT_* constant in lowercase,
// without the prefix).
type TaintFlag struct {
	Bit         uint   `json:"bit"`
	Letter      string `json:"letter"`
	Name        string `json:"name"`
	Description string `json:"-"`
}

// TaintFlags lists every taint bit the kernel defines, in bit order.
var TaintFlags = []TaintFlag{
	{0, "P", "proprietary_module", "proprietary module was loaded"},
	{1, "F", "forced_module", "module was force loaded"},
	{2, "S", "cpu_out_of_spec", "kernel running on an out of specification system"},
	{3, "R", "forced_rmmod", "module was force unloaded"},
	{4, "M", "machine_check", "processor reported a Machine Check Exception (MCE)"},
	{5, "B", "bad_page", "bad page referenced or some unexpected page flags"},
	{6, "U", "user", "taint requested by userspace application"},
	{7, "D", "die", "kernel died recently, i.e. there was an OOPS or BUG"},
	{8, "A", "overridden_acpi_table", "ACPI table overridden by user"},
	{9, "W", "warn", "kernel issued warning"},
	{10, "C", "crap", "staging driver was loaded"},
	{11, "I", "firmware_workaround", "workaround for bug in platform firmware applied"},
	{12, "O", "oot_module", `externally-built ("out-of-tree") module was loaded`},
	{13, "E", "unsigned_module", "unsigned module was loaded"},
	{14, "L", "softlockup", "soft lockup occurred"},
	{15, "K", "livepatch", "kernel has been live patched"},
	{16, "X", "aux", "auxiliary taint, defined for and used by distros"},
	{17, "T", "randstruct", "kernel was built with the struct randomization plugin"},
	{18, "N", "test", "an in-kernel test has been run"},
	{19, "J", "fwctl", "userspace used a mutating debug operation in fwctl"},
}

// LookupTaint finds a taint flag by its letter ("O") or its name
// ("oot_module").
func LookupTaint(s string) (TaintFlag, bool) {
	for _, f := range TaintFlags {
		if s == f.Letter || s == f.Name {
			return f, true
		}
	}
	return TaintFlag{}, false
}

// ParseTainted parses /proc/sys/kernel/tainted: a decimal unsigned integer
// and a newline.
func ParseTainted(data []byte) (uint64, error) {
	if len(data) == 0 {
		return 0, ErrEmpty
	}
	s := string(trimNewline(data))
	if s == "" {
		return 0, errors.New("no number, only a newline")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal unsigned integer", truncate(s, 64))
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q does not fit in 64 bits", truncate(s, 64))
	}
	return v, nil
}

// DecodeTaint splits a taint value into the flags the kernel defines and
// the bits it does not (set by a newer kernel than this table knows).
func DecodeTaint(v uint64) (flags []TaintFlag, unknownBits []uint) {
	for bit := uint(0); bit < 64; bit++ {
		if v&(1<<bit) == 0 {
			continue
		}
		if int(bit) < len(TaintFlags) {
			flags = append(flags, TaintFlags[bit])
		} else {
			unknownBits = append(unknownBits, bit)
		}
	}
	return flags, unknownBits
}

// ---- module signature enforcement ---------------------------------------

// ParseBoolParam parses a kernel bool module parameter as sysfs shows it:
// "Y" or "N" and a newline.
func ParseBoolParam(data []byte) (bool, error) {
	if len(data) == 0 {
		return false, ErrEmpty
	}
	switch s := string(trimNewline(data)); s {
	case "Y":
		return true, nil
	case "N":
		return false, nil
	default:
		return false, fmt.Errorf("%q is neither Y nor N", truncate(s, 64))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
