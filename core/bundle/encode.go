package bundle

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The bundle's canonical encoder: it writes each top-level member of a
// Bundle directly in its RFC 8785 form, which json.Marshal followed by
// Canonical would produce byte for byte (TestSealMatchesSteps,
// FuzzSealMatchesSteps): Go strings are coerced to UTF-8 as json.Marshal
// does (an invalid byte becomes U+FFFD) and escaped as JCS does; integers
// up to 2^53 are their digits; object members sorted by UTF-16 code units;
// plugin measurements, which are already JSON, pass through Canonical (one
// pass when they are canonical already, as the engine gives them).

// writer appends canonical JSON to buf; the first error sticks.
type writer struct {
	buf []byte
	err error
}

// str writes s as a JCS string.
func (w *writer) str(s string) {
	w.buf = append(w.buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			w.buf = append(w.buf, c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				w.buf = append(w.buf, "\uFFFD"...)
			} else {
				w.buf = append(w.buf, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch c {
		case '"', '\\':
			w.buf = append(w.buf, '\\', c)
		case '\b':
			w.buf = append(w.buf, '\\', 'b')
		case '\f':
			w.buf = append(w.buf, '\\', 'f')
		case '\n':
			w.buf = append(w.buf, '\\', 'n')
		case '\r':
			w.buf = append(w.buf, '\\', 'r')
		case '\t':
			w.buf = append(w.buf, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			w.buf = append(w.buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
	}
	w.buf = append(w.buf, '"')
}

// maxExact is 2^53: integers up to it are doubles JCS writes as digits.
const maxExact = 1 << 53

func (w *writer) int(v int64) {
	if v >= -maxExact && v <= maxExact {
		w.buf = strconv.AppendInt(w.buf, v, 10)
		return
	}
	w.canonicalNumber(strconv.FormatInt(v, 10))
}

func (w *writer) uint(v uint64) {
	if v <= maxExact {
		w.buf = strconv.AppendUint(w.buf, v, 10)
		return
	}
	w.canonicalNumber(strconv.FormatUint(v, 10))
}

// canonicalNumber writes a large integer as JCS does: as the double
// nearest to it.
func (w *writer) canonicalNumber(digits string) {
	c, err := Canonical([]byte(digits))
	if err != nil {
		w.fail(err)
		return
	}
	w.buf = append(w.buf, c...)
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) strPtr(p *string) {
	if p == nil {
		w.buf = append(w.buf, "null"...)
		return
	}
	w.str(*p)
}

func (w *writer) boolPtr(p *bool) {
	switch {
	case p == nil:
		w.buf = append(w.buf, "null"...)
	case *p:
		w.buf = append(w.buf, "true"...)
	default:
		w.buf = append(w.buf, "false"...)
	}
}

// raw writes a JSON value given as bytes (nil or empty: null) in its
// canonical form.
func (w *writer) raw(v json.RawMessage) {
	if len(v) == 0 {
		w.buf = append(w.buf, "null"...)
		return
	}
	c, err := Canonical(v)
	if err != nil {
		w.fail(err)
		return
	}
	w.buf = append(w.buf, c...)
}

func (w *writer) severity(s interface{ MarshalText() ([]byte, error) }) {
	t, err := s.MarshalText()
	if err != nil {
		w.fail(err)
		return
	}
	w.str(string(t))
}

// name writes a member name and its colon; comma before every member but
// the first of its object.
func (w *writer) name(first bool, n string) {
	if !first {
		w.buf = append(w.buf, ',')
	}
	w.str(n)
	w.buf = append(w.buf, ':')
}

// stringMap writes m (nil: null) with its keys in UTF-16 order.
func (w *writer) stringMap(m map[string]string) {
	if m == nil {
		w.buf = append(w.buf, "null"...)
		return
	}
	w.buf = append(w.buf, '{')
	for i, k := range sortedKeys(w, m) {
		w.name(i == 0, k)
		w.str(m[k])
	}
	w.buf = append(w.buf, '}')
}

// sortedKeys returns m's keys in the order RFC 8785 sorts member names:
// by UTF-16 code units, which is byte order for ASCII. Keys are coerced
// to UTF-8 first, as json.Marshal writes them; two keys that are one name
// once coerced (invalid bytes become U+FFFD) fail w, as Canonical refuses
// a duplicate member.
func sortedKeys[V any](w *writer, m map[string]V) []string {
	keys := make([]string, 0, len(m))
	ascii := true
	for k := range m {
		keys = append(keys, k)
		ascii = ascii && isASCII(k)
	}
	if ascii {
		slices.Sort(keys)
		return keys
	}
	units := func(s string) []uint16 { return utf16.Encode([]rune(s)) }
	slices.SortFunc(keys, func(a, b string) int { return slices.Compare(units(a), units(b)) })
	for i := 1; i < len(keys); i++ {
		if !utf8.ValidString(keys[i]) || !utf8.ValidString(keys[i-1]) {
			if slices.Equal(units(keys[i]), units(keys[i-1])) {
				w.fail(fmt.Errorf("two member names are both %q once coerced to UTF-8 (fix the names that are not valid UTF-8)", string([]rune(keys[i]))))
			}
		}
	}
	return keys
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// finding writes f's members, the ones of a Failure without plugin.
func (w *writer) finding(f Finding, plugin *string) {
	w.buf = append(w.buf, `{"code":`...)
	w.str(f.Code)
	w.buf = append(w.buf, `,"message":`...)
	w.str(f.Message)
	if plugin != nil {
		w.buf = append(w.buf, `,"plugin":`...)
		w.str(*plugin)
	}
	w.buf = append(w.buf, `,"severity":`...)
	w.severity(f.Severity)
	w.buf = append(w.buf, `,"subject":`...)
	w.str(f.Subject)
	w.buf = append(w.buf, '}')
}

func (w *writer) findings(fs []Finding) {
	w.buf = append(w.buf, '[')
	for i, f := range fs {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.finding(f, nil)
	}
	w.buf = append(w.buf, ']')
}

func (w *writer) failures(fs []Failure) {
	w.buf = append(w.buf, '[')
	for i := range fs {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.finding(fs[i].Finding, &fs[i].Plugin)
	}
	w.buf = append(w.buf, ']')
}

// check writes c, refusing measurements that are not a JSON object or
// null (as Check.MarshalJSON does).
func (w *writer) check(c Check) {
	w.buf = append(w.buf, `{"duration_ms":`...)
	w.int(c.DurationMS)
	w.buf = append(w.buf, `,"findings":`...)
	w.findings(c.Findings)
	w.buf = append(w.buf, `,"measurements":`...)
	start := len(w.buf)
	w.raw(c.Measurements)
	if m := w.buf[start:]; w.err == nil && m[0] != '{' && string(m) != "null" {
		w.fail(fmt.Errorf("check %s: measurements are not a JSON object", c.Name))
	}
	w.buf = append(w.buf, `,"name":`...)
	w.str(c.Name)
	w.buf = append(w.buf, `,"sha256":`...)
	w.strPtr(c.SHA256)
	w.buf = append(w.buf, `,"version":`...)
	w.strPtr(c.Version)
	w.buf = append(w.buf, '}')
}

func (w *writer) checks(cs map[string]Check) {
	w.buf = append(w.buf, '{')
	for i, k := range sortedKeys(w, cs) {
		w.name(i == 0, k)
		w.check(cs[k])
	}
	w.buf = append(w.buf, '}')
}

func (w *writer) boot(m BootMeasurements) {
	w.buf = append(w.buf, `{"event_log":`...)
	w.raw(m.EventLog)
	w.buf = append(w.buf, `,"pcrs":`...)
	w.stringMap(m.PCRs)
	w.buf = append(w.buf, `,"secure_boot":`...)
	w.boolPtr(m.SecureBoot)
	w.buf = append(w.buf, `,"setup_mode":`...)
	w.boolPtr(m.SetupMode)
	w.buf = append(w.buf, '}')
}

func (w *writer) auditHead(h *AuditHead) {
	if h == nil {
		w.buf = append(w.buf, "null"...)
		return
	}
	w.buf = append(w.buf, `{"hash":`...)
	w.str(h.Hash)
	w.buf = append(w.buf, `,"seq":`...)
	w.uint(h.Seq)
	w.buf = append(w.buf, '}')
}

func (w *writer) signature(s *Signature) {
	if s == nil {
		w.buf = append(w.buf, "null"...)
		return
	}
	w.buf = append(w.buf, `{"alg":`...)
	w.str(s.Alg)
	w.buf = append(w.buf, `,"key_id":`...)
	w.str(s.KeyID)
	w.buf = append(w.buf, `,"sig":`...)
	w.str(s.Sig)
	w.buf = append(w.buf, '}')
}

// members returns the canonical JSON of each top-level member of b, by
// name, as topLevel returns them from b's canonical form.
func (b *Bundle) members() (map[string]json.RawMessage, error) {
	fields := []struct {
		name  string
		write func(*writer)
	}{
		{"bundle_version", func(w *writer) { w.int(int64(b.BundleVersion)) }},
		{"attestor_version", func(w *writer) { w.str(b.AttestorVersion) }},
		{"sequence", func(w *writer) { w.uint(b.Sequence) }},
		{"nonce", func(w *writer) { w.str(b.Nonce) }},
		{"timestamp", func(w *writer) { w.str(b.Timestamp) }},
		{"state", func(w *writer) { w.str(string(b.State)) }},
		{"score", func(w *writer) { w.int(int64(b.Score)) }},
		{"attestation_policy_sha256", func(w *writer) { w.strPtr(b.AttestationPolicySHA256) }},
		{"boot_measurements", func(w *writer) { w.boot(b.BootMeasurements) }},
		{"deployment_digest", func(w *writer) { w.strPtr(b.DeploymentDigest) }},
		{"service_digests", func(w *writer) { w.stringMap(b.ServiceDigests) }},
		{"policy_digest", func(w *writer) { w.strPtr(b.PolicyDigest) }},
		{"registry_manifest_hash", func(w *writer) { w.strPtr(b.RegistryManifestHash) }},
		{"kernel_cmdline", func(w *writer) { w.strPtr(b.KernelCmdline) }},
		{"kernel_lockdown", func(w *writer) { w.strPtr(b.KernelLockdown) }},
		{"tpm_available", func(w *writer) { w.boolPtr(b.TPMAvailable) }},
		{"tpm_quote_verified", func(w *writer) { w.boolPtr(b.TPMQuoteVerified) }},
		{"failures", func(w *writer) { w.failures(b.Failures) }},
		{"checks", func(w *writer) { w.checks(b.Checks) }},
		{"audit_head", func(w *writer) { w.auditHead(b.AuditHead) }},
		{"bundle_signature", func(w *writer) { w.signature(b.BundleSignature) }},
		{"bundle_hmac", func(w *writer) { w.str(b.BundleHMAC) }},
	}
	out := make(map[string]json.RawMessage, len(fields))
	w := &writer{}
	for _, f := range fields {
		start := len(w.buf)
		f.write(w)
		if w.err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.name, w.err)
		}
		out[f.name] = w.buf[start:len(w.buf):len(w.buf)]
	}
	return out, nil
}
