package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/sdk"
)

var testKey = []byte("0123456789abcdef0123456789abcdef-test-key")

// sample returns a realistic bundle with every field set and strings that
// exercise escaping: quotes, backslashes, HTML characters, control
// characters, non-ASCII and astral characters.
func sample() *Bundle {
	hex := func(c byte) string { return strings.Repeat(string(c), 64) }
	return &Bundle{
		BundleVersion:           Version,
		AttestorVersion:         "1.2.3",
		Sequence:                42,
		Nonce:                   "8c1f0a4e5b2d3c6f7a8091b2c3d4e5f6",
		Timestamp:               FormatTime(time.Date(2026, 3, 13, 12, 0, 0, 250e6, time.UTC)),
		State:                   state.Degraded,
		Score:                   6,
		AttestationPolicySHA256: Ptr(hex('e')),
		BootMeasurements: BootMeasurements{
			SecureBoot: Ptr(true),
			SetupMode:  Ptr(false),
			PCRs:       map[string]string{"0": hex('a'), "7": hex('b'), "11": hex('c')},
		},
		DeploymentDigest:     Ptr(hex('d')),
		ServiceDigests:       map[string]string{"agent": hex('1'), "registry": hex('2'), "tool-firewall": hex('3')},
		PolicyDigest:         Ptr(hex('4')),
		RegistryManifestHash: nil,
		KernelCmdline:        Ptr(`BOOT_IMAGE=/vmlinuz root="/dev/vda1" quiet lsm=landlock\x <a&b> é € 𝄞 tab	end` + "\x01\x1f\x7f"),
		KernelLockdown:       Ptr("integrity"),
		TPMAvailable:         Ptr(true),
		TPMQuoteVerified:     Ptr(true),
		Failures: []Failure{
			{Finding: Finding{Code: "binaries.missing", Severity: sdk.SeverityMedium, Message: `no file at "/usr/libexec/secure-ai/airlock"`, Subject: "airlock"}, Plugin: "binaries"},
			{Finding: Finding{Code: "kernel.tainted", Severity: sdk.SeverityLow, Message: "kernel taint 4096 (OOT module)", Subject: ""}, Plugin: "kernel"},
		},
		Checks: map[string]Check{
			"binaries": {Name: "binaries", Version: Ptr("1.0.0"), SHA256: Ptr(hex('5')), DurationMS: 12,
				Measurements: json.RawMessage(`{"service_digests":{"agent":"` + hex('1') + `"},"counted":3,"nested":{"list":[1,2,{"deep":true}],"empty":{}}}`),
				Findings:     []Finding{{Code: "binaries.missing", Severity: sdk.SeverityMedium, Message: "missing", Subject: "airlock"}}},
			"tpm": {Name: "tpm", Version: Ptr("1.0.0"), SHA256: Ptr(hex('6')), DurationMS: 250,
				Measurements: json.RawMessage(`{"tpm_available":true,"note":"ünïcödé \"quoted\" \\ back"}`),
				Findings:     []Finding{{Code: "tpm.info", Severity: sdk.SeverityInfo, Message: "vendor IBM", Subject: "/dev/tpmrm0"}}},
			"vendor_x": {Name: "vendor_x", Version: nil, SHA256: nil, DurationMS: 10000, Measurements: nil,
				Findings: []Finding{{Code: "core.plugin_timeout", Severity: sdk.SeverityHigh, Message: "timed out after 10s", Subject: "vendor_x"}}},
		},
	}
}

func signed(t *testing.T) []byte {
	t.Helper()
	b := sample()
	if err := b.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestSignVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	raw := signed(t)
	if err := Verify(raw, testKey); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var back Bundle
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(back.BundleHMAC) {
		t.Fatalf("bundle_hmac %q is not 64 lowercase hex", back.BundleHMAC)
	}
	// Signing the decoded bundle again gives the same signature.
	back2 := back
	if err := back2.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	if back2.BundleHMAC != back.BundleHMAC {
		t.Fatalf("re-signing the decoded bundle changed the signature: %s != %s", back2.BundleHMAC, back.BundleHMAC)
	}
}

func TestSignDeterministic(t *testing.T) {
	t.Parallel()
	a, b := signed(t), signed(t)
	if !bytes.Equal(a, b) {
		t.Fatalf("two signings differ:\n%s\n%s", a, b)
	}
}

func TestSignIgnoresExistingHMAC(t *testing.T) {
	t.Parallel()
	b := sample()
	b.BundleHMAC = "stale"
	if err := b.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	c := sample()
	if err := c.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	if b.BundleHMAC != c.BundleHMAC {
		t.Fatal("a previous bundle_hmac leaked into the signature")
	}
}

func TestDifferentKeysDiffer(t *testing.T) {
	t.Parallel()
	b1, b2 := sample(), sample()
	if err := b1.Sign([]byte("key-one-key-one-key-one-key-one-")); err != nil {
		t.Fatal(err)
	}
	if err := b2.Sign([]byte("key-two-key-two-key-two-key-two-")); err != nil {
		t.Fatal(err)
	}
	if b1.BundleHMAC == b2.BundleHMAC {
		t.Fatal("different keys gave the same signature")
	}
	raw, _ := json.Marshal(b1)
	if err := Verify(raw, []byte("key-two-key-two-key-two-key-two-")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("verify with the wrong key: %v, want ErrMismatch", err)
	}
}

func TestSignEmptyKey(t *testing.T) {
	t.Parallel()
	if err := sample().Sign(nil); err == nil {
		t.Fatal("Sign accepted an empty key")
	}
	// A short key is the caller's concern: Sign accepts it and it verifies.
	b := sample()
	if err := b.Sign([]byte("k")); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(b)
	if err := Verify(raw, []byte("k")); err != nil {
		t.Fatal(err)
	}
}

// TestEveryFieldAlwaysPresent checks that a zero bundle still has every
// member, with null for what was not measured.
func TestEveryFieldAlwaysPresent(t *testing.T) {
	t.Parallel()
	raw, err := json.Marshal(Bundle{Checks: map[string]Check{"x": {Name: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"bundle_version": float64(0), "attestor_version": "", "sequence": float64(0), "nonce": "", "timestamp": "",
		"state": "", "score": float64(0), "attestation_policy_sha256": nil,
		"deployment_digest": nil, "service_digests": nil, "policy_digest": nil, "registry_manifest_hash": nil,
		"kernel_cmdline": nil, "kernel_lockdown": nil, "tpm_available": nil, "tpm_quote_verified": nil,
		"failures": []any{}, "bundle_hmac": "", "bundle_signature": nil, "audit_head": nil,
		"boot_measurements": map[string]any{"secure_boot": nil, "setup_mode": nil, "pcrs": nil, "event_log": nil},
		"checks":            map[string]any{"x": map[string]any{"name": "x", "version": nil, "sha256": nil, "duration_ms": float64(0), "measurements": nil, "findings": []any{}}},
	}
	gotKeys, wantKeys := keys(m), keys(want)
	if gotKeys != wantKeys {
		t.Fatalf("members:\n got %s\nwant %s", gotKeys, wantKeys)
	}
	for k, v := range want {
		g, _ := json.Marshal(m[k])
		w, _ := json.Marshal(v)
		if !bytes.Equal(g, w) {
			t.Errorf("%s = %s, want %s", k, g, w)
		}
	}
	// And the empty containers of an entirely zero bundle.
	raw, _ = json.Marshal(Bundle{})
	if !bytes.Contains(raw, []byte(`"failures":[]`)) || !bytes.Contains(raw, []byte(`"checks":{}`)) {
		t.Fatalf("zero bundle: %s", raw)
	}
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestTimestampFormat(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 3, 13, 12, 0, 0, 0, time.UTC), "2026-03-13T12:00:00.000Z"},
		{time.Date(2026, 3, 13, 12, 0, 0, 999999999, time.UTC), "2026-03-13T12:00:00.999Z"},
		{time.Date(2026, 3, 13, 13, 0, 0, 5e6, time.FixedZone("CET", 3600)), "2026-03-13T12:00:00.005Z"},
	} {
		got := FormatTime(tc.in)
		if got != tc.want {
			t.Errorf("Test %d: %s, want %s", i, got, tc.want)
		}
		if _, err := time.Parse(time.RFC3339, got); err != nil {
			t.Errorf("Test %d: not RFC 3339: %v", i, err)
		}
	}
}

func TestCheckMeasurementsMustBeObject(t *testing.T) {
	t.Parallel()
	for _, m := range []string{`[1,2]`, `"x"`, `42`, `{"a":`} {
		b := Bundle{Checks: map[string]Check{"x": {Name: "x", Measurements: json.RawMessage(m)}}}
		if _, err := json.Marshal(b); err == nil {
			t.Errorf("measurements %s accepted", m)
		}
	}
	b := Bundle{Failures: []Failure{{Finding: Finding{Code: "a.b", Severity: 0}}}}
	if err := b.Sign(testKey); err == nil {
		t.Error("a finding with an invalid severity was signed")
	}
}

// walk calls fn with the path of every leaf (string, number, bool, null)
// of v, decoded with UseNumber.
func walk(v any, path []any, fn func(path []any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			walk(c, append(append([]any{}, path...), k), fn)
		}
	case []any:
		for i, c := range x {
			walk(c, append(append([]any{}, path...), i), fn)
		}
	default:
		fn(path)
	}
}

// containers calls fn with the path of every object and array of v.
func containers(v any, path []any, fn func(path []any, c any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(path, x)
		for k, c := range x {
			containers(c, append(append([]any{}, path...), k), fn)
		}
	case []any:
		fn(path, x)
		for i, c := range x {
			containers(c, append(append([]any{}, path...), i), fn)
		}
	}
}

func decode(t *testing.T, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func at(v any, path []any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}

func set(v any, path []any, nv any) {
	parent := at(v, path[:len(path)-1])
	switch k := path[len(path)-1].(type) {
	case string:
		parent.(map[string]any)[k] = nv
	case int:
		parent.([]any)[k] = nv
	}
}

func mutate(leaf any) any {
	switch x := leaf.(type) {
	case string:
		return x + "x"
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return "0"
		}
		return json.Number(strconv.FormatInt(n+1, 10))
	case bool:
		return !x
	case nil:
		return ""
	}
	panic(fmt.Sprintf("unexpected leaf %T", leaf))
}

func pathString(path []any) string {
	var parts []string
	for _, p := range path {
		parts = append(parts, fmt.Sprint(p))
	}
	return strings.Join(parts, ".")
}

// TestEveryLeafChangeDetected changes each leaf of a signed bundle in turn
// and checks that the signature no longer verifies.
func TestEveryLeafChangeDetected(t *testing.T) {
	t.Parallel()
	raw := signed(t)
	var paths [][]any
	walk(decode(t, raw), nil, func(p []any) { paths = append(paths, p) })
	if len(paths) < 60 {
		t.Fatalf("only %d leaves walked", len(paths))
	}
	for _, p := range paths {
		doc := decode(t, raw)
		set(doc, p, mutate(at(doc, p)))
		changed, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		err = Verify(changed, testKey)
		if err == nil {
			t.Errorf("changing %s was not detected", pathString(p))
			continue
		}
		if pathString(p) != "bundle_hmac" && !errors.Is(err, ErrMismatch) {
			t.Errorf("changing %s: %v, want ErrMismatch", pathString(p), err)
		}
	}
}

// TestMemberAddRemoveDetected adds a member or element to every object and
// array, and removes every member and element, one at a time.
func TestMemberAddRemoveDetected(t *testing.T) {
	t.Parallel()
	raw := signed(t)
	var paths [][]any
	containers(decode(t, raw), nil, func(p []any, _ any) { paths = append(paths, p) })
	n := 0
	for _, p := range paths {
		// add
		doc := decode(t, raw)
		switch c := at(doc, p).(type) {
		case map[string]any:
			c["zz_added"] = json.Number("1")
		case []any:
			if len(p) == 0 {
				t.Fatal("top level is an array")
			}
			set(doc, p, append(c, "added"))
		}
		changed, _ := json.Marshal(doc)
		if err := Verify(changed, testKey); !errors.Is(err, ErrMismatch) {
			t.Errorf("adding to %q: %v, want ErrMismatch", pathString(p), err)
		}
		n++
		// remove each member or element
		switch c := at(decode(t, raw), p).(type) {
		case map[string]any:
			for k := range c {
				doc := decode(t, raw)
				delete(at(doc, p).(map[string]any), k)
				changed, _ := json.Marshal(doc)
				err := Verify(changed, testKey)
				if len(p) == 0 && k == "bundle_hmac" {
					if !errors.Is(err, ErrUnsigned) {
						t.Errorf("removing bundle_hmac: %v, want ErrUnsigned", err)
					}
				} else if !errors.Is(err, ErrMismatch) {
					t.Errorf("removing %s: %v, want ErrMismatch", pathString(append(p, k)), err)
				}
				n++
			}
		case []any:
			for i := range c {
				doc := decode(t, raw)
				arr := at(doc, p).([]any)
				set(doc, p, append(append([]any{}, arr[:i]...), arr[i+1:]...))
				changed, _ := json.Marshal(doc)
				if err := Verify(changed, testKey); !errors.Is(err, ErrMismatch) {
					t.Errorf("removing %s: %v, want ErrMismatch", pathString(append(p, i)), err)
				}
				n++
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d additions and removals tried", n)
	}
}

// TestReformattedStillVerifies: order of members and whitespace do not
// matter; the verifier works on the bundle as received.
func TestReformattedStillVerifies(t *testing.T) {
	t.Parallel()
	raw := signed(t)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, raw, "", "    "); err != nil {
		t.Fatal(err)
	}
	if err := Verify(pretty.Bytes(), testKey); err != nil {
		t.Fatalf("pretty-printed: %v", err)
	}
	// Re-encoded through a map: members in another order, HTML escapes on.
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	again, _ := json.Marshal(m)
	if err := Verify(again, testKey); err != nil {
		t.Fatalf("re-encoded: %v", err)
	}
	// Escaped differently: \u00e9 for é, \/ for /.
	alt := bytes.ReplaceAll(raw, []byte("é"), []byte(`\u00e9`))
	alt = bytes.ReplaceAll(alt, []byte("/vmlinuz"), []byte(`\/vmlinuz`))
	if bytes.Equal(alt, raw) {
		t.Fatal("test did not change the escaping")
	}
	if err := Verify(alt, testKey); err != nil {
		t.Fatalf("re-escaped: %v", err)
	}
}

func TestVerifyErrors(t *testing.T) {
	t.Parallel()
	good := signed(t)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(good, &m)
	with := func(sig string) []byte {
		c := map[string]json.RawMessage{}
		for k, v := range m {
			c[k] = v
		}
		if sig == "<absent>" {
			delete(c, "bundle_hmac")
		} else {
			c["bundle_hmac"] = json.RawMessage(sig)
		}
		out, _ := json.Marshal(c)
		return out
	}
	upper := `"` + strings.ToUpper(string(m["bundle_hmac"][1:len(m["bundle_hmac"])-1])) + `"`
	for i, tc := range []struct {
		name string
		raw  []byte
		key  []byte
		is   error
		msg  string
	}{
		{"not json", []byte(`{"state":`), testKey, nil, "canonicalize json"},
		{"empty input", []byte(``), testKey, nil, "empty input"},
		{"array", []byte(`[1,2]`), testKey, nil, "not a JSON object"},
		{"string", []byte(`"x"`), testKey, nil, "not a JSON object"},
		{"duplicate member", []byte(`{"a":1,"a":2,"bundle_hmac":"00"}`), testKey, nil, "Duplicate key"},
		{"invalid utf-8", []byte("{\"a\":\"\xff\",\"bundle_hmac\":\"00\"}"), testKey, nil, "invalid utf-8"},
		{"missing bundle_hmac", with("<absent>"), testKey, ErrUnsigned, "no bundle_hmac"},
		{"empty bundle_hmac", with(`""`), testKey, ErrUnsigned, "empty"},
		{"null bundle_hmac", with(`null`), testKey, ErrUnsigned, "empty"},
		{"number bundle_hmac", with(`12`), testKey, nil, "not a string"},
		{"not hex", with(`"zz"`), testKey, nil, "64 lowercase hex"},
		{"uppercase hex", with(upper), testKey, nil, "64 lowercase hex"},
		{"short hex", with(`"abcd"`), testKey, nil, "64 lowercase hex"},
		{"other signature", with(`"` + strings.Repeat("0", 64) + `"`), testKey, ErrMismatch, "does not match"},
		{"wrong key", good, []byte("another key of enough length......"), ErrMismatch, "does not match"},
		{"empty key", good, nil, nil, "empty key"},
	} {
		err := Verify(tc.raw, tc.key)
		if err == nil {
			t.Errorf("Test %d (%s): verified", i, tc.name)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("Test %d (%s): %v, want %v", i, tc.name, err, tc.is)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Test %d (%s): %q does not say %q", i, tc.name, err, tc.msg)
		}
	}
}

func TestSigningInputStripsOnlyTopLevel(t *testing.T) {
	t.Parallel()
	in, err := SigningInput([]byte(`{"z":{"bundle_hmac":"inner"}, "bundle_hmac":"outer", "a":[1, 2.50, "é"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":[1,2.5,"é"],"z":{"bundle_hmac":"inner"}}`; string(in) != want {
		t.Fatalf("got %s, want %s", in, want)
	}
	in, err = SigningInput([]byte(`{"a":1}`))
	if err != nil || string(in) != `{"a":1}` {
		t.Fatalf("without bundle_hmac: %s, %v", in, err)
	}
	if _, err := SigningInput([]byte(`[]`)); err == nil {
		t.Fatal("array accepted")
	}
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	// RFC 8785, section 3.2.2 / appendix: the reference example.
	in, err := os.ReadFile(filepath.Join("testdata", "rfc8785_input.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "rfc8785_output.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Canonical(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimRight(want, "\n")) {
		t.Fatalf("RFC 8785 example:\n got %s\nwant %s", got, want)
	}
	for i, tc := range []struct {
		in, want, err string
	}{
		{in: `{"b":1,"a":2}`, want: `{"a":2,"b":1}`},
		{in: ` [ 1 , true , null ] `, want: `[1,true,null]`},
		{in: `{"\u20ac":1,"$":2,"\ud83d\ude00":3,"\ufb01":4}`, want: `{"$":2,"€":1,"😀":3,"ﬁ":4}`}, // UTF-16 order: U+1F600 (D83D) sorts before U+FB01
		{in: `{"a":"\u0001\u001f\u007f<>&"}`, want: `{"a":"\u0001\u001f` + "\x7f" + `<>&"}`},
		{in: `1E3`, want: `1000`},
		{in: `{"a":1,"a":1}`, err: "Duplicate key"},
		{in: `{"x":{"a":1,"a":2}}`, err: "Duplicate key"},
		{in: "\"\xc3\x28\"", err: "invalid utf-8"},
		{in: `"\udc00"`, err: "surrogate"},
		{in: `"\ud800\u0041"`, err: "surrogate"},
		{in: `"\ud800"`, err: "canonicalize json"},
		{in: `{"a":1} {}`, err: "canonicalize json"},
		{in: `{"a":01}`, err: "canonicalize json"},
		{in: `1e400`, err: "out of range"},
		{in: ``, err: "empty input"},
	} {
		got, err := Canonical([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Test %d: %s: err %v, want %q", i, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("Test %d: %s: got %s (%v), want %s", i, tc.in, got, err, tc.want)
		}
	}
}

func TestDigest(t *testing.T) {
	t.Parallel()
	a, b := Digest([]byte(`{"b":1,"a":2}`)), Digest([]byte("{ \"a\" : 2, \"b\" : 1 }"))
	if a == "" || a != b {
		t.Fatalf("digests of equivalent JSON: %q %q", a, b)
	}
	// sha256 of {"a":2,"b":1}
	if a != "d3626ac30a87e6f7a6428233b3c68299976865fa5508e4267c5415c76af7a772" {
		t.Fatalf("digest %s", a)
	}
	if Digest([]byte(`{"a":`)) != "" {
		t.Fatal("digest of invalid JSON is not empty")
	}
}

// pythonSnippet extracts the Python verifier from docs/bundle.md, so the
// documentation is what is tested.
func pythonSnippet(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "bundle.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/bundle.md has no ```python block")
	}
	if lines := strings.Count(string(m[1]), "\n"); lines > 10 {
		t.Fatalf("the Python verifier is %d lines, more than 10", lines)
	}
	return string(m[1])
}

func TestPythonVerifierAgrees(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "verify_bundle.py")
	if err := os.WriteFile(script, []byte(pythonSnippet(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, testKey, 0o600); err != nil {
		t.Fatal(err)
	}
	raw := signed(t)
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, raw, "", "  ")
	attest, _ := json.Marshal(map[string]json.RawMessage{"state": json.RawMessage(`"degraded"`), "bundle": raw})
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["kernel_cmdline"] = "tampered"
	tampered, _ := json.Marshal(m)

	for i, tc := range []struct {
		name string
		doc  []byte
		ok   bool
	}{
		{"bundle", raw, true},
		{"pretty bundle", pretty.Bytes(), true},
		{"attest answer", attest, true},
		{"tampered", tampered, false},
	} {
		if goErr := Verify(tc.doc, testKey); (goErr == nil) != tc.ok && tc.name != "attest answer" {
			t.Fatalf("Test %d (%s): Go verifier: %v", i, tc.name, goErr)
		}
		f := filepath.Join(dir, fmt.Sprintf("doc%d.json", i))
		if err := os.WriteFile(f, tc.doc, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, script, f, keyFile).CombinedOutput()
		if (err == nil) != tc.ok {
			t.Errorf("Test %d (%s): python says %q (%v), want ok=%v", i, tc.name, out, err, tc.ok)
		}
	}
	// And byte for byte: Python's serialization equals the signing input.
	check := `import json,sys
b = json.load(open(sys.argv[1], encoding="utf-8")); b.pop("bundle_hmac")
sys.stdout.buffer.write(json.dumps(b, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))`
	f := filepath.Join(dir, "doc0.json")
	out, err := exec.Command(py, "-c", check, f).Output()
	if err != nil {
		t.Fatal(err)
	}
	in, err := SigningInput(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("python's canonical form differs from JCS:\npython %s\n   jcs %s", out, in)
	}
}
