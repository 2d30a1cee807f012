package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func newKeyedLog(t *testing.T, maxBytes int64) (*Log, string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "logs")
	path := filepath.Join(dir, "audit.jsonl")
	key := filepath.Join(dir, "audit.key")
	l, err := OpenOptions(path, Options{Logger: hclog.NewNullLogger(), KeyPath: key, MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, path, key
}

func readSeed(t *testing.T, key string) Seed {
	t.Helper()
	s, err := ReadSeed(key + ".seed")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rechain rewrites a log as a forger without the seed would: edit each
// record, give it a MAC with macKey when not nil (or keep its own when
// keepMAC), and recompute every hash and prev.
func rechain(t *testing.T, ls [][]byte, edit func(i int, r *Record), macKey []byte, keepMAC bool) []byte {
	t.Helper()
	prev := ZeroHash
	var out [][]byte
	for i, line := range ls {
		r := record(t, line)
		edit(i, &r)
		b := body{Seq: r.Seq, Time: r.Time, Type: r.Type, Data: r.Data, Prev: prev}
		switch {
		case macKey != nil:
			c, err := canonicalBody(b)
			if err != nil {
				t.Fatal(err)
			}
			m := hmac.New(sha256.New, macKey)
			m.Write(c)
			b.Mac = hex.EncodeToString(m.Sum(nil))
		case keepMAC:
			b.Mac = r.Mac
		}
		h, err := recordHash(b)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(Record{Seq: b.Seq, Time: b.Time, Type: b.Type, Data: b.Data, Prev: b.Prev, Mac: b.Mac, Hash: h})
		c, err := canonicalJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
		prev = lineHash(c)
	}
	return join(out)
}

// stolenKey is what an attacker who takes the machine now finds: the key
// of the next record.
func stolenKey(t *testing.T, key string) []byte {
	t.Helper()
	ks, ok, err := loadKey(key)
	if err != nil || !ok {
		t.Fatalf("load key: %v %v", ok, err)
	}
	defer ks.close()
	return append([]byte(nil), ks.key...)
}

// TestForgedChainRejectedBySeed: a rewrite that recomputes every SHA-256
// passes the unkeyed chain (the demonstration) and is rejected with the
// seed, whether it keeps the old MACs, MACs with the key stolen from the
// machine, or strips the MACs.
func TestForgedChainRejectedBySeed(t *testing.T) {
	t.Parallel()
	l, path, key := newKeyedLog(t, 0)
	fill(t, l, 10)
	seed := readSeed(t, key)
	good := lines(t, path)
	rep, err := VerifyWithSeed(strings.NewReader(string(join(good))), seed)
	if err != nil || rep.Records != 11 || rep.MACs != 11 {
		t.Fatalf("good log with the seed: %+v %v, want 11 records, 11 MACs", rep, err)
	}
	if r := record(t, good[0]); r.Type != TypeKeyCreated {
		t.Fatalf("first record %s, want %s", r.Type, TypeKeyCreated)
	}
	edit := func(i int, r *Record) {
		if i == 3 {
			r.Data = json.RawMessage(`{"forged":true}`)
		}
	}
	stolen := stolenKey(t, key)
	for i, tc := range []struct {
		name   string
		data   []byte
		reason string
	}{
		{"hashes recomputed, MACs kept", rechain(t, good, edit, nil, true), "record 4 (line 4): mac does not match"},
		{"MACed with the key stolen now", rechain(t, good, edit, stolen, false), "record 1 (line 1): mac does not match"},
		{"MACs stripped", rechain(t, good, edit, nil, false), "record 1 (line 1): no mac"},
		{"last record dropped and one forged in its place", rechain(t, good, func(i int, r *Record) {
			if i == 10 {
				r.Data = json.RawMessage(`{}`)
			}
		}, nil, true), "record 11 (line 11): mac does not match"},
	} {
		if _, err := Verify(strings.NewReader(string(tc.data))); err != nil {
			t.Fatalf("Test %d (%s): the forgery does not even pass the unkeyed chain: %v", i, tc.name, err)
		}
		_, err := VerifyWithSeed(strings.NewReader(string(tc.data)), seed)
		var be *BreakError
		if !errors.As(err, &be) || !strings.HasPrefix(be.Error(), tc.reason) {
			t.Errorf("Test %d (%s): with the seed: %v, want %q", i, tc.name, err, tc.reason)
		}
	}
	// The seed of another install rejects every record.
	other := seed
	other.Seed = strings.Repeat("ab", 32)
	if _, err := VerifyWithSeed(strings.NewReader(string(join(good))), other); err == nil {
		t.Error("another seed verified the log")
	}
}

// TestKeyResumesAcrossRestarts: a restart resumes the key (also when the
// key file is one record behind the log, as after a crash between the
// record's fsync and the key's), and the seed still checks every record.
func TestKeyResumesAcrossRestarts(t *testing.T) {
	t.Parallel()
	l, path, key := newKeyedLog(t, 0)
	fill(t, l, 3)
	behind, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Crash: the record is durable, the key file still holds the key
	// for it.
	if err := os.WriteFile(key, behind, 0o600); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		l2, err := OpenOptions(path, Options{KeyPath: key})
		if err != nil {
			t.Fatal(err)
		}
		fill(t, l2, 2)
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := VerifyWithSeed(f, readSeed(t, key))
	if err != nil || rep.Records != 9 || rep.MACs != 9 {
		t.Fatalf("after restarts: %+v %v, want 9 records, each MACed", rep, err)
	}
	// The key file holds no key of a record already written.
	ks, _, err := loadKey(key)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.close()
	if ks.seq != 10 {
		t.Errorf("key file is for record %d, want 10", ks.seq)
	}
}

func TestBadKeyFileRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, tc := range []struct {
		name  string
		data  []byte
		mode  os.FileMode
		wants string
	}{
		{"group readable", make([]byte, 128), 0o640, "chmod 0600"},
		{"damaged", make([]byte, 128), 0o600, "no valid slot"},
		{"short", make([]byte, 10), 0o600, "EOF"},
	} {
		key := filepath.Join(dir, fmt.Sprintf("k%d", i))
		if err := os.WriteFile(key, tc.data, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(key, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := OpenOptions(filepath.Join(dir, fmt.Sprintf("log%d", i)), Options{KeyPath: key})
		if err == nil || !strings.Contains(err.Error(), tc.wants) || !strings.Contains(err.Error(), key) {
			t.Errorf("Test %d (%s): %v, want an error naming %s and %q", i, tc.name, err, key, tc.wants)
		}
	}
}

// TestRotationKeepsChainAndBudget: a budgeted log rotates into .1 … .3,
// stays within its budget, and its files verify as one chain, MACs
// included; a missing middle file is named.
func TestRotationKeepsChainAndBudget(t *testing.T) {
	t.Parallel()
	const budget = 64 << 10
	l, path, key := newKeyedLog(t, budget)
	for i := 0; i < 3000; i++ {
		if err := l.Append(TypeAttestation, map[string]any{"sequence": i, "pad": strings.Repeat("x", 40)}); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{path + ".3", path + ".2", path + ".1", path}
	var total int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatalf("rotated file: %v", err)
		}
		total += st.Size()
	}
	if total > budget {
		t.Errorf("the log and its rotated files hold %d bytes, over the budget of %d", total, budget)
	}
	seed := readSeed(t, key)
	rep, err := VerifyFiles(files, &seed)
	if err != nil {
		t.Fatalf("rotated files do not verify as one chain: %v", err)
	}
	if rep.FirstSeq <= 1 || rep.Records == 0 || rep.MACs != rep.Records {
		t.Errorf("report %+v", rep)
	}
	seq, _ := l.Head()
	if rep.LastSeq != seq {
		t.Errorf("verified up to %d, the log is at %d", rep.LastSeq, seq)
	}
	if _, err := VerifyFiles([]string{path + ".3", path + ".1", path}, &seed); err == nil || !strings.Contains(err.Error(), "does not continue") {
		t.Errorf("a missing middle file: %v", err)
	}
}

// TestNoiseNeverDisplacesRecords: while the log cannot be written, refused
// requests are dropped before any other record, however many come.
func TestNoiseNeverDisplacesRecords(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	l.maxPending = 16
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		_ = l.Append(TypeAttestation, map[string]any{"sequence": i})
		for j := 0; j < 100; j++ {
			_ = l.Append(TypeRefreshRefused, map[string]any{"count": j})
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(TypeStateChange, nil); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, line := range lines(t, path) {
		n[record(t, line).Type]++
	}
	if n[TypeAttestation] != 10 || n[TypeStateChange] != 1 || n[TypeDropped] != 1 || n[TypeRefreshRefused] > 2 {
		t.Errorf("records by type %v, want all 10 attestations, the state change, one dropped, at most 2 refused", n)
	}
}
