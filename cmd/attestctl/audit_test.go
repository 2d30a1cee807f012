package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/bundle"
)

// writeLog writes a real audit log with n refresh records and returns its
// path and lines.
func writeLog(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := l.Append(audit.TypeRefresh, map[string]any{"peer": fmt.Sprintf("127.0.0.1:%d", 40000+i), "authorized": i%2 == 0, "reason": "r", "state": "attested"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, bytes.SplitAfter(raw, []byte("\n"))
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	path, lines := writeLog(t, 6)
	rep, err := audit.VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := attestctl(t, "", nil, "audit", "verify", path)
	want := fmt.Sprintf("audit log %s intact: %d records, seq %d to %d, last hash %s\n", path, rep.Records, rep.FirstSeq, rep.LastSeq, rep.LastHash)
	if r.code != 0 || r.stdout != want || rep.Records < 6 {
		t.Fatalf("audit verify: %s\nwant stdout %q", r, want)
	}

	third := 2 // index of the third line
	for i, tc := range []struct {
		name string
		edit func() []byte
		want string
	}{
		{"edited data", func() []byte {
			c := clone(lines)
			c[third] = bytes.Replace(c[third], []byte("127.0.0.1:"), []byte("10.0.0.1:"), 1)
			return bytes.Join(c, nil)
		}, "is BROKEN at line 3 (seq 3): "},
		{"removed line", func() []byte {
			c := clone(lines)
			return bytes.Join(append(c[:third], c[third+1:]...), nil)
		}, "is BROKEN at line 3 (seq 4): seq 4 follows 2"},
		{"swapped lines", func() []byte {
			c := clone(lines)
			c[third], c[third+1] = c[third+1], c[third]
			return bytes.Join(c, nil)
		}, "is BROKEN at line 3 (seq 4)"},
		{"garbage line", func() []byte {
			c := clone(lines)
			c[third] = []byte("not json\n")
			return bytes.Join(c, nil)
		}, "is BROKEN at line 3 (unreadable seq)"},
		{"torn last line", func() []byte {
			all := bytes.Join(clone(lines), nil)
			return all[:len(all)-1]
		}, fmt.Sprintf("is BROKEN at line %d", len(lines)-1)},
	} {
		p := writeFile(t, "audit.jsonl", tc.edit())
		r := attestctl(t, "", nil, "audit", "verify", p)
		if r.code != 1 || !strings.Contains(r.stderr, "attestctl: audit log "+p+" "+tc.want) || r.stdout != "" {
			t.Errorf("Test %d (%s): %s\nwant exit 1 with %q", i, tc.name, r, tc.want)
			continue
		}
		if tc.name != "torn last line" && !strings.Contains(r.stderr, "  line 3: ") {
			t.Errorf("Test %d (%s): broken line not shown: %s", i, tc.name, r.stderr)
		}
		if !strings.Contains(r.stderr, "the 2 records before it verify (seq 1 to 2)") && tc.name != "torn last line" {
			t.Errorf("Test %d (%s): no summary of what verified: %s", i, tc.name, r.stderr)
		}
	}

	// An empty log is intact; a missing one is an I/O error.
	if r := attestctl(t, "", nil, "audit", "verify", writeFile(t, "empty.jsonl", nil)); r.code != 0 || !strings.Contains(r.stdout, "intact: 0 records") {
		t.Errorf("empty log: %s", r)
	}
	if r := attestctl(t, "", nil, "audit", "verify", filepath.Join(t.TempDir(), "nope.jsonl")); r.code != 2 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing log: %s", r)
	}
}

func clone(lines [][]byte) [][]byte {
	c := make([][]byte, 0, len(lines))
	for _, l := range lines {
		c = append(c, append([]byte(nil), l...))
	}
	return c
}

// forge rewrites line idx's data of a log and recomputes every hash and
// prev after it, as anyone who can write the file can.
func forge(t *testing.T, lines [][]byte, idx int) []byte {
	t.Helper()
	prev := strings.Repeat("0", 64)
	var out []byte
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		if i == idx {
			rec["data"] = map[string]any{"forged": true}
		}
		rec["prev"] = prev
		delete(rec, "hash")
		raw, _ := json.Marshal(rec)
		c, err := bundle.Canonical(raw)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(c)
		rec["hash"] = hex.EncodeToString(sum[:])
		raw, _ = json.Marshal(rec)
		if c, err = bundle.Canonical(raw); err != nil {
			t.Fatal(err)
		}
		ls := sha256.Sum256(c)
		prev = hex.EncodeToString(ls[:])
		out = append(append(out, c...), '\n')
	}
	return out
}

// TestAuditVerifySeedRejectsForgery: a log rewritten with every hash
// recomputed is "intact" to the unkeyed check and BROKEN with --seed.
func TestAuditVerifySeedRejectsForgery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, key := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "audit.key")
	l, err := audit.OpenOptions(path, audit.Options{KeyPath: key})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := l.Append(audit.TypeAttestation, map[string]any{"sequence": i, "state": "attested"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seed := key + ".seed"
	if r := attestctl(t, "", nil, "audit", "verify", "--seed", seed, path); r.code != 0 || !strings.Contains(r.stdout, "6 MACs checked with the seed") {
		t.Fatalf("the genuine log with --seed: %s", r)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(dir, "forged.jsonl")
	if err := os.WriteFile(forged, forge(t, bytes.SplitAfter(raw, []byte("\n")), 3), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := attestctl(t, "", nil, "audit", "verify", forged); r.code != 0 {
		t.Fatalf("the forgery should pass the unkeyed chain (that is the demonstration): %s", r)
	}
	r := attestctl(t, "", nil, "audit", "verify", "--seed", seed, forged)
	if r.code != 1 || !strings.Contains(r.stderr, "BROKEN at line 4 (seq 4): mac does not match") {
		t.Fatalf("the forgery with --seed: %s", r)
	}
	if r := attestctl(t, "", nil, "audit", "verify", "--seed", filepath.Join(dir, "nope"), path); r.code != 2 {
		t.Errorf("a missing seed file: %s, want exit 2", r)
	}
}
