package reliability

// Tamper detection, end to end: a signed bundle from the real daemon with
// any single field changed, removed or added fails `attestctl
// verify-bundle`; an audit log from the real daemon with any line edited,
// deleted, swapped or duplicated fails `attestctl audit verify` at the
// right line; a pinned plugin binary replaced between two attestations is
// refused before it runs.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// tamperVariant is one changed document.
type tamperVariant struct {
	what string
	doc  any
}

// tamperDeepCopy copies a decoded JSON value.
func tamperDeepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = tamperDeepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = tamperDeepCopy(e)
		}
		return s
	}
	return v
}

// tamperChanged returns v changed into another value of the same kind
// (another kind for null).
func tamperChanged(v any) any {
	switch x := v.(type) {
	case nil:
		return "tampered"
	case bool:
		return !x
	case string:
		if x == "" {
			return "x"
		}
		last := x[len(x)-1]
		repl := byte('0')
		switch {
		case last == '0':
			repl = '1'
		case last >= 'a' && last <= 'z':
			repl = 'a' + (last-'a'+1)%26
		}
		return x[:len(x)-1] + string(repl)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return json.Number(strconv.FormatInt(i+1, 10))
		}
		f, _ := x.Float64()
		if f == 0 {
			return json.Number("1")
		}
		return json.Number(strconv.FormatFloat(f*2, 'g', -1, 64))
	case map[string]any:
		return map[string]any{"tampered": true}
	case []any:
		return []any{"tampered"}
	}
	panic(fmt.Sprintf("unexpected JSON value %T", v))
}

// tamperVariants walks doc and returns every single change: each leaf
// (and each empty container) changed, each object member removed, a member
// added to each object, each array element removed and duplicated.
func tamperVariants(doc any) []tamperVariant {
	var out []tamperVariant
	// edit applies fn to a copy of doc at path and records the result.
	edit := func(what string, path []any, fn func(parent any, key any)) {
		c := tamperDeepCopy(doc)
		cur := c
		for _, k := range path[:len(path)-1] {
			switch p := cur.(type) {
			case map[string]any:
				cur = p[k.(string)]
			case []any:
				cur = p[k.(int)]
			}
		}
		fn(cur, path[len(path)-1])
		out = append(out, tamperVariant{what, c})
	}
	name := func(path []any) string {
		var b strings.Builder
		for _, k := range path {
			switch x := k.(type) {
			case string:
				b.WriteString("." + x)
			case int:
				fmt.Fprintf(&b, "[%d]", x)
			}
		}
		return b.String()
	}
	var walk func(v any, path []any)
	walk = func(v any, path []any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := append(append([]any{}, path...), k)
				edit("remove "+name(p), p, func(parent, key any) { delete(parent.(map[string]any), key.(string)) })
				walk(x[k], p)
			}
			if len(path) > 0 {
				edit("add a member to "+name(path), append(append([]any{}, path...), "tampered"), func(parent, key any) {
					parent.(map[string]any)[key.(string)] = true
				})
			} else {
				out = append(out, tamperVariant{"add a top-level member", func() any {
					c := tamperDeepCopy(doc).(map[string]any)
					c["tampered"] = true
					return c
				}()})
			}
			if len(x) == 0 && len(path) > 0 {
				edit("fill empty "+name(path), path, func(parent, key any) { tamperSet(parent, key, tamperChanged(x)) })
			}
		case []any:
			for i := range x {
				p := append(append([]any{}, path...), i)
				walk(x[i], p)
				edit("remove "+name(p), path, func(parent, key any) {
					s := tamperGet(parent, key).([]any)
					tamperSet(parent, key, append(append([]any{}, s[:i]...), s[i+1:]...))
				})
				edit("duplicate "+name(p), path, func(parent, key any) {
					s := tamperGet(parent, key).([]any)
					tamperSet(parent, key, append(append(append([]any{}, s[:i+1]...), tamperDeepCopy(s[i])), s[i+1:]...))
				})
			}
			if len(x) == 0 {
				edit("fill empty "+name(path), path, func(parent, key any) { tamperSet(parent, key, tamperChanged(x)) })
			}
		default:
			edit(fmt.Sprintf("change %s (%v)", name(path), tamperShort(v)), path, func(parent, key any) { tamperSet(parent, key, tamperChanged(v)) })
		}
	}
	walk(doc, nil)
	return out
}

func tamperShort(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 24 {
		s = s[:24] + "…"
	}
	return s
}

func tamperGet(parent, key any) any {
	switch p := parent.(type) {
	case map[string]any:
		return p[key.(string)]
	case []any:
		return p[key.(int)]
	}
	return nil
}

func tamperSet(parent, key, v any) {
	switch p := parent.(type) {
	case map[string]any:
		p[key.(string)] = v
	case []any:
		p[key.(int)] = v
	}
}

// TestTamperBundle fetches a signed bundle from the real daemon and runs
// `attestctl verify-bundle --key` on every single-field change of it: each
// must be refused (exit 1); the intact bundle verifies (exit 0). In
// process, every single-byte change of the bundle (every 8th byte in the
// short run) must fail bundle.Verify unless it leaves the canonical JSON
// unchanged.
func TestTamperBundle(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	p := env.Start()
	// A refused and an accepted refresh, so that the bundle is a later one.
	if code, _, _ := env.Do("POST", "/api/v1/refresh", ""); code != 401 {
		t.Fatalf("refresh without a token: %d", code)
	}
	code, body, err := env.Do("POST", "/api/v1/refresh", env.Token)
	if err != nil || code != 200 {
		t.Fatalf("refresh: %d %v", code, err)
	}
	var resp struct {
		Bundle json.RawMessage `json:"bundle"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	raw := resp.Bundle
	p.Stop()

	dir := t.TempDir()
	file := filepath.Join(dir, "bundle.json")
	write := func(data []byte) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(raw)
	if code, out, errOut := env.RunAttestctl(nil, "verify-bundle", "--key", env.KeyPath, file); code != 0 {
		t.Fatalf("the intact bundle does not verify: exit %d %s %s", code, out, errOut)
	}
	apiFile := filepath.Join(dir, "answer.json")
	if err := os.WriteFile(apiFile, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := env.RunAttestctl(nil, "verify-bundle", "--key", env.KeyPath, apiFile); code != 0 {
		t.Fatalf("the intact API answer does not verify: exit %d %s %s", code, out, errOut)
	}

	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	variants := tamperVariants(doc)
	kinds := map[string]int{}
	for i, v := range variants {
		data, err := json.Marshal(v.doc)
		if err != nil {
			t.Fatalf("variant %d (%s): %v", i, v.what, err)
		}
		write(data)
		code, out, errOut := env.RunAttestctl(nil, "verify-bundle", "--key", env.KeyPath, file)
		if code != 1 || !strings.Contains(errOut, "INVALID") && !strings.Contains(errOut, "NOT verified") {
			t.Errorf("variant %d (%s): attestctl exit %d (want 1): %s%s", i, v.what, code, out, errOut)
		}
		kinds[strings.Fields(v.what)[0]]++
	}

	// Every single byte, in process: XOR with 0x01 and with 0x20.
	key, err := os.ReadFile(env.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := bundle.Canonical(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Every byte in the long run; every 8th with one mask in the short one
	// (bundle.Verify canonicalizes twice: slow under -race).
	stride, masks := 8, []byte{0x01}
	if abuseLong() {
		stride, masks = 1, []byte{0x01, 0x20}
	}
	bytesTried, sameContent := 0, 0
	mut := make([]byte, len(raw))
	for i := 0; i < len(raw); i += stride {
		for _, x := range masks {
			copy(mut, raw)
			mut[i] ^= x
			bytesTried++
			if bundle.Verify(mut, key) == nil {
				c, err := bundle.Canonical(mut)
				if err != nil || !bytes.Equal(c, canon) {
					t.Errorf("byte %d ^ %#x changes the bundle and still verifies: %q", i, x, tamperExcerpt(mut, i))
				}
				sameContent++
			}
		}
	}
	report(t, "bundle of %d bytes: %d single-field variants refused by attestctl (%v); %d single-byte changes tried in process, all refused but %d that leave the canonical JSON unchanged",
		len(raw), len(variants), kinds, bytesTried, sameContent)
}

func tamperExcerpt(b []byte, i int) []byte {
	return b[max(0, i-30):min(len(b), i+30)]
}

// tamperLogLines reads a log into its lines (with their newlines).
func tamperLogLines(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		lines = append(lines, raw[:i+1])
		raw = raw[i+1:]
	}
	return lines
}

// TestTamperAuditLog makes an audit log with the real daemon and runs
// `attestctl audit verify` on it with any one line edited, deleted,
// swapped with the next or duplicated: each must be refused (exit 1) at
// the right line. Deleting the last line cannot be told from a shorter log
// by the chain alone: the test shows that the anchor (last seq and hash)
// attestctl prints tells it. In process, every byte of every line (the
// newline included) is changed in turn: audit.Verify must break at that
// line.
func TestTamperAuditLog(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	p := env.Start()
	for i := 0; i < 4; i++ {
		if code, _, _ := env.Do("POST", "/api/v1/refresh", "wrong-token-wrong-token"); code != 401 {
			t.Fatalf("refused refresh: %d", code)
		}
		if code, _, _ := env.Do("POST", "/api/v1/refresh", env.Token); code != 200 {
			t.Fatalf("refresh: %d", code)
		}
	}
	env.WritePolicy(env.DevelopmentPolicy() + "\nbogus: 1\n")
	p.Signal(syscall.SIGHUP)
	env.WaitAudit(p, 30*time.Second, "policy_reload", func(r []daemontest.AuditRecord) bool {
		return daemontest.CountAudit(r, "policy_reload", nil) > 0
	})
	p.Stop()

	lines := tamperLogLines(t, env.AuditPath)
	n := len(lines)
	code, out, errOut := env.RunAttestctl(nil, "audit", "verify", env.AuditPath)
	if code != 0 {
		t.Fatalf("the intact log does not verify: exit %d %s %s", code, out, errOut)
	}
	hashRE := regexp.MustCompile(`last hash ([0-9a-f]{64})`)
	m := hashRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, fmt.Sprintf("%d records", n)) {
		t.Fatalf("attestctl does not print the anchor (records and last hash): %s", out)
	}
	anchor := m[1]

	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	variants := 0
	check := func(what string, data [][]byte, wantLine int) {
		t.Helper()
		variants++
		if err := os.WriteFile(file, bytes.Join(data, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := env.RunAttestctl(nil, "audit", "verify", file)
		want := fmt.Sprintf("BROKEN at line %d ", wantLine)
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%s: attestctl exit %d, want 1 naming line %d: %s%s", what, code, wantLine, out, errOut)
		}
	}
	without := func(i int) [][]byte {
		return append(append([][]byte{}, lines[:i]...), lines[i+1:]...)
	}
	for i := 0; i < n; i++ {
		// Edit one byte in the middle of the line (a letter or digit
		// becomes another), keeping it valid-looking JSON.
		edited := append([][]byte{}, lines...)
		line := append([]byte{}, lines[i]...)
		j := len(line) / 2
		for j < len(line)-1 && !tamperIsAlnum(line[j]) {
			j++
		}
		line[j] = tamperOtherAlnum(line[j])
		edited[i] = line
		check(fmt.Sprintf("line %d byte %d edited", i+1, j), edited, i+1)

		if i < n-1 {
			check(fmt.Sprintf("line %d deleted", i+1), without(i), i+1)
			swapped := append([][]byte{}, lines...)
			swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
			check(fmt.Sprintf("lines %d and %d swapped", i+1, i+2), swapped, i+1)
		}
		dup := append(append(append([][]byte{}, lines[:i+1]...), lines[i]), lines[i+1:]...)
		check(fmt.Sprintf("line %d duplicated", i+1), dup, i+2)
	}
	// The last line deleted: the chain is intact but shorter; the anchor
	// taken from the intact log tells.
	if err := os.WriteFile(file, bytes.Join(without(n-1), nil), 0o600); err != nil {
		t.Fatal(err)
	}
	variants++
	code, out, _ = env.RunAttestctl(nil, "audit", "verify", file)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("%d records", n-1)) || strings.Contains(out, anchor) {
		t.Errorf("last line deleted: attestctl exit %d %q: want a shorter intact log whose last hash differs from the anchor %s", code, out, anchor)
	}

	// Every byte of every line, in process (the lines after the changed
	// one cannot matter to the first break, so they are left out); every
	// 11th in the short run.
	stride := 11
	if abuseLong() {
		stride = 1
	}
	bytesTried := 0
	var prefix []byte
	for i, line := range lines {
		for j := 0; j < len(line); j += stride {
			mut := append(append([]byte{}, prefix...), line...)
			mut[len(prefix)+j] ^= 0x01
			if i+1 < n {
				mut = append(mut, lines[i+1]...)
			}
			bytesTried++
			_, err := audit.Verify(bytes.NewReader(mut))
			var be *audit.BreakError
			if !errors.As(err, &be) || be.Line != i+1 {
				t.Fatalf("line %d byte %d ^ 0x01: Verify = %v, want a break at line %d", i+1, j, err, i+1)
			}
		}
		prefix = append(prefix, line...)
	}
	report(t, "audit log of %d records: %d single-line variants (edit, delete, swap, duplicate) refused by attestctl at the right line, the last line's deletion shown by the anchor; %d single-byte changes refused in process",
		n, variants-1, bytesTried)
}

func tamperIsAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func tamperOtherAlnum(c byte) byte {
	switch c {
	case '9':
		return '0'
	case 'z':
		return 'a'
	case 'Z':
		return 'A'
	}
	return c + 1
}

// TestTamperPinnedPlugin pins the kernel plugin's SHA-256 in the policy,
// lets the daemon attest, then replaces the file between two attestations
// (renamed over: a running file cannot be rewritten): the next refresh must
// refuse it (core.plugin_untrusted, critical: failed) before it runs — the
// marker plugin would leave a file if it ever started. An identical copy
// (a new file, the same bytes) is still trusted.
func TestTamperPinnedPlugin(t *testing.T) {
	t.Parallel()
	marker := testbin.Build(t, "./testplugins/marker", "attestor-check-marker")
	markerBin := func(*daemontest.Env) []byte { return tamperRead(t, marker) }
	otherBuiltin := func(env *daemontest.Env) []byte {
		return tamperRead(t, filepath.Join(env.PluginDir, "attestor-check-tpm"))
	}
	appended := func(env *daemontest.Env) []byte {
		return append(tamperRead(t, filepath.Join(env.PluginDir, "attestor-check-kernel")), 0)
	}
	identical := func(env *daemontest.Env) []byte {
		return tamperRead(t, filepath.Join(env.PluginDir, "attestor-check-kernel"))
	}
	for _, tc := range []struct {
		name      string
		resident  bool // resident_plugins: the old process runs while the file is replaced
		with      func(env *daemontest.Env) []byte
		untrusted bool
	}{
		{"marker plugin", false, markerBin, true},
		{"marker plugin, resident", true, markerBin, true},
		{"another built-in", false, otherBuiltin, true},
		{"one byte appended, resident", true, appended, true},
		{"identical copy", false, identical, false},
		{"identical copy, resident", true, identical, false},
	} {
		t.Run(strings.NewReplacer(" ", "_", ",", "").Replace(tc.name), func(t *testing.T) {
			t.Parallel()
			env := daemontest.New(t, daemontest.Options{})
			path := filepath.Join(env.PluginDir, "attestor-check-kernel")
			pin := daemontest.SHA256(tamperRead(t, path))
			pol := env.DevelopmentPolicy()
			pinned := strings.Replace(pol, "  kernel:\n    config:\n", "  kernel:\n    sha256: \""+pin+"\"\n    config:\n", 1)
			if tc.resident {
				pinned = strings.Replace(pinned, "resident_plugins: false", "resident_plugins: true", 1)
			}
			if pinned == pol || tc.resident && !strings.Contains(pinned, "resident_plugins: true") {
				t.Fatal("cannot find plugins.kernel or resident_plugins in the development policy")
			}
			env.WritePolicy(pinned)
			p := env.Start()
			before := env.State()
			if before == "failed" {
				t.Fatalf("state failed with the pinned plugin before any change; log:\n%s", p.Stderr())
			}

			// Replace the file: a new file renamed over the pinned one.
			tmp := path + ".new"
			if err := os.WriteFile(tmp, tc.with(env), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			code, body, err := env.Do("POST", "/api/v1/refresh", env.Token)
			if err != nil || code != 200 {
				t.Fatalf("refresh: %d %v %s", code, err, body)
			}
			var resp struct {
				State  string `json:"state"`
				Bundle struct {
					Failures []struct{ Code, Plugin, Severity, Message string } `json:"failures"`
				} `json:"bundle"`
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			untrusted := false
			for _, f := range resp.Bundle.Failures {
				if f.Code == "core.plugin_untrusted" && f.Plugin == "kernel" && f.Severity == "critical" {
					untrusted = true
				}
			}
			if _, err := os.Stat(filepath.Join(env.PluginDir, "started-kernel")); err == nil {
				t.Errorf("the replacement ran: the marker plugin left started-kernel")
			}
			if tc.untrusted {
				if !untrusted || resp.State != "failed" {
					t.Errorf("after replacing the pinned plugin: state %s, failures %+v; want failed with a critical core.plugin_untrusted for kernel", resp.State, resp.Bundle.Failures)
				}
				faults := daemontest.CountAudit(env.AuditRecords(), "plugin_fault", func(d map[string]any) bool {
					return d["plugin"] == "kernel" && d["fault"] == "untrusted"
				})
				if faults == 0 {
					t.Error("no plugin_fault record (kernel, untrusted) in the audit log")
				}
			} else if untrusted || resp.State != before {
				t.Errorf("an identical copy of the pinned plugin: state %s, failures %+v; want %s as before, no core.plugin_untrusted", resp.State, resp.Bundle.Failures, before)
			}
			report(t, "pinned kernel plugin replaced by %s: next attestation %s (core.plugin_untrusted: %v); the replacement never ran", tc.name, resp.State, untrusted)
			if t.Failed() {
				t.Logf("daemon log:\n%s", badTail(p.Stderr(), 6000))
			}
			p.Stop()
		})
	}
}

func tamperRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTamperHMACKey replaces the HMAC key between two attestations: with a
// 16-byte key, with nothing, with a FIFO nobody writes to. The next
// attestation must still end, unsigned, with core.hmac_key (never
// attested), and attestctl must refuse its bundle.
func TestTamperHMACKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		replace func(path string) error
	}{
		{"short key", func(path string) error {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, bytes.Repeat([]byte("k"), 16), 0o600); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		}},
		{"removed", os.Remove},
		{"fifo", func(path string) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return syscall.Mkfifo(path, 0o600)
		}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			env := daemontest.New(t, daemontest.Options{})
			p := env.Start()
			if err := tc.replace(env.KeyPath); err != nil {
				t.Fatal(err)
			}
			// A refresh that hangs is the failure: bound it well below the
			// server's refresh timeout.
			client := &http.Client{Timeout: 20 * time.Second}
			req, _ := http.NewRequest(http.MethodPost, env.URL("/api/v1/refresh"), nil)
			req.Header.Set("Authorization", "Bearer "+env.Token)
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("refresh after the key was replaced (%s): %v: the attestation is stuck", tc.name, err)
				// Unblock a daemon stuck opening the FIFO, so it can stop.
				for i := 0; i < 50 && p.Alive(); i++ {
					if w, err := os.OpenFile(env.KeyPath, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						_, _ = w.Write(bytes.Repeat([]byte("k"), 32))
						w.Close()
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				p.Stop()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var r struct {
				State  string          `json:"state"`
				Bundle json.RawMessage `json:"bundle"`
			}
			if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != 200 {
				t.Fatalf("refresh: %d %s", resp.StatusCode, body)
			}
			if r.State == "attested" || !bytes.Contains(r.Bundle, []byte(`"code":"core.hmac_key"`)) || !bytes.Contains(r.Bundle, []byte(`"bundle_hmac":""`)) {
				t.Errorf("key %s: state %s, want an unsigned bundle with core.hmac_key, never attested: %s", tc.name, r.State, r.Bundle)
			}
			file := filepath.Join(t.TempDir(), "bundle.json")
			if err := os.WriteFile(file, r.Bundle, 0o600); err != nil {
				t.Fatal(err)
			}
			keyFile := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(keyFile, bytes.Repeat([]byte("k"), 32), 0o600); err != nil {
				t.Fatal(err)
			}
			if code, _, errOut := env.RunAttestctl(nil, "verify-bundle", "--key", keyFile, file); code != 1 {
				t.Errorf("attestctl verify-bundle on the unsigned bundle: exit %d, want 1: %s", code, errOut)
			}
			report(t, "HMAC key %s between two attestations: next bundle unsigned with core.hmac_key, state %s, refused by attestctl", tc.name, r.State)
			p.Stop()
		})
	}
}

// TestTamperedHistoryAfterRestart: a restart resumes a long audit log from
// its last record and checks the history after its first verdict
// (audit.Options.DeferHistory): a record edited deep in the live file is
// still found, logged as a broken chain and acknowledged with one
// chain_broken record, and the history stays as it was.
func TestTamperedHistoryAfterRestart(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	env.Start().Stop()
	// Lengthen the log past what a start reads whole (64 KiB), as the
	// daemon would have, with its own key.
	l, err := audit.OpenOptions(env.AuditPath, audit.Options{KeyPath: filepath.Join(filepath.Dir(env.AuditPath), "audit.key")})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := l.Append(audit.TypeRefresh, map[string]any{"remote": "127.0.0.1:40000", "i": i, "note": strings.Repeat("x", 200)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := tamperLogLines(t, env.AuditPath)
	lines[10] = bytes.Replace(lines[10], []byte(`"i":`), []byte(`"i":9`), 1)
	if err := os.WriteFile(env.AuditPath, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	history := bytes.Join(lines, nil)

	p := env.Start()
	env.WaitAudit(p, 60*time.Second, "chain_broken", func(r []daemontest.AuditRecord) bool {
		return daemontest.CountAudit(r, audit.TypeChainBroken, nil) > 0
	})
	p.Stop()
	if !strings.Contains(p.Stderr(), "CHAIN IS BROKEN") || !strings.Contains(p.Stderr(), "line=11") {
		t.Errorf("the break was not logged loudly:\n%s", p.Stderr())
	}
	raw, err := os.ReadFile(env.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, history) {
		t.Fatal("the history was rewritten")
	}
	if n := daemontest.CountAudit(env.AuditRecords(), audit.TypeChainBroken, nil); n != 1 {
		t.Errorf("%d chain_broken records, want 1", n)
	}
	_, err = audit.VerifyFile(env.AuditPath)
	var be *audit.BreakError
	if !errors.As(err, &be) || be.Line != 11 {
		t.Errorf("VerifyFile = %v, want the break at line 11", err)
	}
}
