package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// newLog opens a log in a fresh temp dir with a deterministic clock.
func newLog(t *testing.T) (*Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "logs", "audit.jsonl")
	l, err := Open(path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, path
}

// fill appends n records of assorted types.
func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	types := []string{TypeStart, TypeAttestation, TypeStateChange, TypeRefresh, TypePluginFault, TypePolicyReload}
	for i := 0; i < n; i++ {
		data := map[string]any{"i": i, "note": fmt.Sprintf("record %d: ünï \"q\" <&>", i), "nested": map[string]any{"ok": i%2 == 0, "list": []int{i, i + 1}}}
		if err := l.Append(types[i%len(types)], data); err != nil {
			t.Fatal(err)
		}
	}
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		return nil
	}
	if raw[len(raw)-1] != '\n' {
		t.Fatalf("log does not end with a newline")
	}
	return bytes.Split(raw[:len(raw)-1], []byte("\n"))
}

func join(ls [][]byte) []byte {
	var b bytes.Buffer
	for _, l := range ls {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func record(t *testing.T, line []byte) Record {
	t.Helper()
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestChainVerifies(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	fill(t, l, 10)
	rep, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if rep.Records != 10 || rep.FirstSeq != 1 || rep.LastSeq != 10 || rep.LastHash != lineHash(ls[9]) {
		t.Fatalf("report %+v", rep)
	}
	seq, head := l.Head()
	if seq != 10 || head != rep.LastHash {
		t.Fatalf("Head() = %d %s", seq, head)
	}
	// The format, by hand: first prev is zeros, each prev is the sha256 of
	// the line before, each hash is the sha256 of the canonical record
	// without hash, each line is canonical.
	for i, line := range ls {
		r := record(t, line)
		if r.Seq != uint64(i+1) {
			t.Errorf("line %d: seq %d", i+1, r.Seq)
		}
		wantPrev := ZeroHash
		if i > 0 {
			wantPrev = lineHash(ls[i-1])
		}
		if r.Prev != wantPrev {
			t.Errorf("line %d: prev %s, want %s", i+1, r.Prev, wantPrev)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil || !strings.HasSuffix(r.Time, "Z") {
			t.Errorf("line %d: time %q", i+1, r.Time)
		}
		if !bytes.HasPrefix(line, []byte(`{"data":{`)) || !bytes.Contains(line, []byte(`,"hash":"`+r.Hash+`","prev":"`)) {
			t.Errorf("line %d is not in the documented member order: %s", i+1, line)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %#o, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(filepath.Dir(path))
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("created folder mode %#o, want 0700", dst.Mode().Perm())
	}
}

func TestEmptyLogVerifies(t *testing.T) {
	t.Parallel()
	rep, err := Verify(strings.NewReader(""))
	if err != nil || rep.Records != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
}

func wantBreak(t *testing.T, what string, data []byte, line int, reason string) {
	t.Helper()
	_, err := Verify(bytes.NewReader(data))
	var be *BreakError
	if !errors.As(err, &be) {
		t.Errorf("%s: not detected (err %v)", what, err)
		return
	}
	if be.Line != line {
		t.Errorf("%s: break at line %d (%v), want line %d", what, be.Line, be, line)
	}
	if reason != "" && !strings.Contains(be.Reason, reason) {
		t.Errorf("%s: reason %q, want it to say %q", what, be.Reason, reason)
	}
}

// TestEveryFieldEditDetected edits every member of every line, both
// naively and with the record's own hash recomputed.
func TestEveryFieldEditDetected(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	fill(t, l, 6)
	orig := lines(t, path)
	edits := map[string]func(r *Record){
		"seq":  func(r *Record) { r.Seq += 7 },
		"time": func(r *Record) { r.Time = "2001-01-01T00:00:00Z" },
		"type": func(r *Record) { r.Type = "forged" },
		"data": func(r *Record) { r.Data = json.RawMessage(`{"i":99}`) },
		"prev": func(r *Record) { r.Prev = strings.Repeat("a", 64) },
		"hash": func(r *Record) { r.Hash = strings.Repeat("b", 64) },
	}
	for i := range orig {
		for field, edit := range edits {
			r := record(t, orig[i])
			edit(&r)
			raw, _ := json.Marshal(r)
			edited, _ := canonicalJSON(raw)
			ls := append([][]byte{}, orig...)
			ls[i] = edited
			wantBreak(t, fmt.Sprintf("edit %s of line %d", field, i+1), join(ls), i+1, "")

			// A careful forger recomputes the record's hash: the next
			// line's prev catches it.
			if field == "hash" || i == len(orig)-1 {
				continue
			}
			h, _ := recordHash(body{Seq: r.Seq, Time: r.Time, Type: r.Type, Data: r.Data, Prev: r.Prev})
			r.Hash = h
			raw, _ = json.Marshal(r)
			forged, _ := canonicalJSON(raw)
			ls[i] = forged
			want := i + 2
			if field == "seq" || field == "prev" {
				want = i + 1 // breaks its own link
			}
			wantBreak(t, fmt.Sprintf("forged %s of line %d", field, i+1), join(ls), want, "")
		}
		// A byte-level edit a JSON parser would not see.
		ls := append([][]byte{}, orig...)
		ls[i] = bytes.Replace(orig[i], []byte(`{"data":`), []byte(`{ "data":`), 1)
		wantBreak(t, fmt.Sprintf("whitespace in line %d", i+1), join(ls), i+1, "canonical")
	}
}

func TestStructuralTamperingDetected(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	fill(t, l, 6)
	orig := lines(t, path)
	del := func(i int) [][]byte {
		return append(append([][]byte{}, orig[:i]...), orig[i+1:]...)
	}
	for i := 0; i < len(orig)-1; i++ {
		// delete line i+1: the line that takes its place breaks
		wantBreak(t, fmt.Sprintf("delete line %d", i+1), join(del(i)), i+1, "")
		// swap lines i+1 and i+2
		ls := append([][]byte{}, orig...)
		ls[i], ls[i+1] = ls[i+1], ls[i]
		wantBreak(t, fmt.Sprintf("swap lines %d and %d", i+1, i+2), join(ls), i+1, "")
	}
	// insert a copy of line 2 before line 5
	ls := append(append(append([][]byte{}, orig[:4]...), orig[1]), orig[4:]...)
	wantBreak(t, "insert a copy", join(ls), 5, "seq")
	// insert a line of junk
	ls = append(append(append([][]byte{}, orig[:3]...), []byte(`{"hello":"world"}`)), orig[3:]...)
	wantBreak(t, "insert junk", join(ls), 4, "")
	// insert an empty line
	ls = append(append(append([][]byte{}, orig[:3]...), []byte{}), orig[3:]...)
	wantBreak(t, "insert empty line", join(ls), 4, "not valid JSON")
	// remove the first lines: the new first record does not start the chain
	wantBreak(t, "cut the head", join(orig[2:]), 1, "removed")
	// truncate mid-line: a torn last line
	full := join(orig)
	for _, cut := range []int{len(full) - 1, len(full) - 40, len(full) - len(orig[5]) - 1 + 10} {
		wantBreak(t, fmt.Sprintf("truncate at %d", cut), full[:cut], 6, "torn final line")
	}
	// duplicate the last line
	wantBreak(t, "duplicate last line", join(append(append([][]byte{}, orig...), orig[5])), 7, "seq")
	// Removing the last line leaves a shorter, valid log: that is what
	// LastSeq/LastHash anchors are for.
	rep, err := Verify(bytes.NewReader(join(orig[:5])))
	if err != nil || rep.LastSeq != 5 {
		t.Fatalf("prefix of a log: %+v %v", rep, err)
	}
}

func TestBreakErrorMessage(t *testing.T) {
	t.Parallel()
	if got := (&BreakError{Line: 4, Seq: 5, Reason: "x"}).Error(); got != "record 5 (line 4): x" {
		t.Fatal(got)
	}
	if got := (&BreakError{Line: 4, Reason: "x"}).Error(); got != "line 4: x" {
		t.Fatal(got)
	}
}

func TestResumeAfterReopen(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	fill(t, l, 3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(TypeStop, nil); err == nil {
		t.Fatal("append after close succeeded")
	}
	l2, err := Open(path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, l2, 2)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFile(path)
	if err != nil || rep.Records != 5 || rep.LastSeq != 5 {
		t.Fatalf("%+v %v", rep, err)
	}
	for _, line := range lines(t, path) {
		if r := record(t, line); internalType(r.Type) {
			t.Fatalf("a clean reopen wrote a %s record", r.Type)
		}
	}
}

func TestTornLastLineRecovered(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name string
		tail func(last []byte) []byte
	}{
		{"half a line", func(last []byte) []byte { return last[:len(last)/2] }},
		{"line without newline", func(last []byte) []byte { return last }},
		{"zeros after a crash", func([]byte) []byte { return make([]byte, 300) }},
		{"zeros with newline", func([]byte) []byte { return append(make([]byte, 30), '\n') }},
		{"truncated line with newline", func(last []byte) []byte { return append(last[:40:40], '\n') }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, path := newLog(t)
			fill(t, l, 4)
			_ = l.Close()
			good := lines(t, path)
			torn := tc.tail(good[3])
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			_, _ = f.Write(torn)
			_ = f.Close()

			l2, err := Open(path, hclog.NewNullLogger())
			if err != nil {
				t.Fatalf("Test %d: %v", i, err)
			}
			defer l2.Close()
			if err := l2.Append(TypeStart, nil); err != nil {
				t.Fatal(err)
			}
			ls := lines(t, path)
			if len(ls) != 6 {
				t.Fatalf("Test %d: %d lines, want 4 + recovered + start", i, len(ls))
			}
			for j := 0; j < 4; j++ {
				if !bytes.Equal(ls[j], good[j]) {
					t.Fatalf("Test %d: line %d changed", i, j+1)
				}
			}
			rec := record(t, ls[4])
			if rec.Type != TypeRecovered {
				t.Fatalf("Test %d: line 5 is %s", i, rec.Type)
			}
			var d struct {
				CutBytes int64  `json:"cut_bytes"`
				SavedTo  string `json:"saved_to"`
			}
			_ = json.Unmarshal(rec.Data, &d)
			if d.CutBytes != int64(len(torn)) {
				t.Errorf("Test %d: cut_bytes %d, want %d", i, d.CutBytes, len(torn))
			}
			saved, err := os.ReadFile(d.SavedTo)
			if err != nil || !bytes.Equal(saved, torn) {
				t.Fatalf("Test %d: saved bytes %q (%v), want %q", i, saved, err, torn)
			}
			if !strings.HasPrefix(d.SavedTo, path+".torn-") {
				t.Errorf("saved to %s", d.SavedTo)
			}
			if st, _ := os.Stat(d.SavedTo); st.Mode().Perm() != 0o600 {
				t.Errorf("torn file mode %#o", st.Mode().Perm())
			}
			if rep, err := VerifyFile(path); err != nil || rep.Records != 6 {
				t.Fatalf("Test %d: after recovery: %+v %v", i, rep, err)
			}
		})
	}
}

func TestTornOnlyContent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte(`{"seq":1,"ti`), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if rep, err := VerifyFile(path); err != nil || rep.Records != 1 || rep.FirstSeq != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestChainBrokenEarlier(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	fill(t, l, 5)
	_ = l.Close()
	ls := lines(t, path)
	ls[1] = bytes.Replace(ls[1], []byte(`"i":1`), []byte(`"i":7`), 1)
	if err := os.WriteFile(path, join(ls), 0o600); err != nil {
		t.Fatal(err)
	}
	var logbuf bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logbuf, Level: hclog.Info})
	l2, err := Open(path, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Append(TypeStart, nil); err != nil {
		t.Fatal(err)
	}
	_ = l2.Close()
	if !strings.Contains(logbuf.String(), "CHAIN IS BROKEN") || !strings.Contains(logbuf.String(), "line=2") {
		t.Errorf("not logged loudly: %s", logbuf.String())
	}
	after := lines(t, path)
	if len(after) != 7 {
		t.Fatalf("%d lines", len(after))
	}
	for i := range ls {
		if !bytes.Equal(after[i], ls[i]) {
			t.Fatalf("history rewritten at line %d", i+1)
		}
	}
	cb := record(t, after[5])
	if cb.Type != TypeChainBroken || cb.Prev != lineHash(after[4]) || cb.Seq != 6 {
		t.Fatalf("chain_broken record %+v", cb)
	}
	if !bytes.Contains(cb.Data, []byte(`"first_break_line":2`)) || !bytes.Contains(cb.Data, []byte(`"breaks":2`)) {
		t.Errorf("chain_broken data %s", cb.Data)
	}
	// The break stays visible to Verify; the chain after it is sound.
	wantBreak(t, "broken history", join(after), 2, "hash")
	if rep, err := Verify(bytes.NewReader(join(after[2:]))); err == nil || rep.Records != 0 {
		// after[2:] starts mid-chain: refused as a head cut, as it should.
		t.Logf("tail verify: %+v %v", rep, err)
	}
	// Opening again does not add another chain_broken record.
	l3, err := Open(path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	_ = l3.Append(TypeStop, nil)
	_ = l3.Close()
	final := lines(t, path)
	if len(final) != 8 || record(t, final[7]).Type != TypeStop {
		t.Fatalf("second open: %d lines, last %s", len(final), final[len(final)-1])
	}
}

func TestRemovedFileRecreated(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	fill(t, l, 3)
	old, _ := os.ReadFile(path)
	_, oldHead := l.Head()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(TypeAttestation, map[string]any{"after": "removal"}); err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if len(ls) != 2 {
		t.Fatalf("new file has %d lines", len(ls))
	}
	first := record(t, ls[0])
	if first.Type != TypeReopened || first.Prev != oldHead || first.Seq != 4 {
		t.Fatalf("first record of the new file: %+v", first)
	}
	rep, err := VerifyFile(path)
	if err != nil || rep.FirstSeq != 4 || rep.LastSeq != 5 {
		t.Fatalf("new file alone: %+v %v", rep, err)
	}
	// Old and new files together form one chain.
	rep, err = Verify(bytes.NewReader(append(old, join(ls)...)))
	if err != nil || rep.Records != 5 {
		t.Fatalf("old+new: %+v %v", rep, err)
	}
	// A forged "first record" that is not reopened is refused.
	wantBreak(t, "continuation not marked reopened", join(ls[1:]), 1, "reopened")
}

func TestTruncatedBehindOurBack(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	fill(t, l, 3)
	_, head := l.Head()
	if err := os.Truncate(path, 0); err != nil { // logrotate copytruncate
		t.Fatal(err)
	}
	if err := l.Append(TypeRefresh, nil); err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if r := record(t, ls[0]); r.Type != TypeReopened || r.Prev != head {
		t.Fatalf("%+v", r)
	}
	if _, err := VerifyFile(path); err != nil {
		t.Fatal(err)
	}
}

func TestAppendRefusesBadInput(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t)
	for i, tc := range []struct {
		typ  string
		data any
	}{
		{"", nil},
		{"Attestation", nil},
		{"a b", nil},
		{TypeChainBroken, nil},
		{TypeRecovered, nil},
		{TypeAttestation, []int{1}},
		{TypeAttestation, "text"},
		{TypeAttestation, map[string]any{"f": func() {}}},
		{TypeAttestation, map[string]string{"big": strings.Repeat("x", MaxLine)}},
	} {
		if err := l.Append(tc.typ, tc.data); err == nil {
			t.Errorf("Test %d: %q %T accepted", i, tc.typ, tc.data)
		}
	}
	if err := l.Append(TypeAttestation, json.RawMessage(`{"b":1, "a":[1.50]}`)); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentAppends writes a few hundred records from many goroutines
// and checks that every line is whole and the chain holds.
func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	const workers, each = 8, 40
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Append(TypeAttestation, map[string]any{"worker": w, "i": i, "pad": strings.Repeat("p", 100*w)}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	rep, err := VerifyFile(path)
	if err != nil || rep.Records != workers*each {
		t.Fatalf("%+v %v", rep, err)
	}
	seen := map[string]bool{}
	for _, line := range lines(t, path) {
		var d struct{ Worker, I int }
		_ = json.Unmarshal(record(t, line).Data, &d)
		seen[fmt.Sprint(d.Worker, "/", d.I)] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d distinct records", len(seen))
	}
}

func TestPermissionsOfExistingFileKept(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	var logbuf bytes.Buffer
	l, err := Open(path, hclog.New(&hclog.LoggerOptions{Output: &logbuf}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !strings.Contains(logbuf.String(), "group or others") {
		t.Errorf("loose mode not warned about: %s", logbuf.String())
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("opening a folder: %v", err)
	}
	target := filepath.Join(dir, "target")
	_ = os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, nil); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("opening a symlink: %v", err)
	}
	file := filepath.Join(dir, "f")
	_ = os.WriteFile(file, nil, 0o600)
	if _, err := Open(filepath.Join(file, "audit.jsonl"), nil); err == nil {
		t.Error("a log under a regular file opened")
	}
}

// TestQueueWhileUnwritable: while the path cannot be opened (a folder took
// its place), records queue, the oldest are dropped past the limit, and
// once the path is free again everything left is written behind a
// "reopened" and a "dropped" record.
func TestQueueWhileUnwritable(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	l.maxPending = 3
	fill(t, l, 2)
	_, head := l.Head()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		err := l.Append(TypeRefresh, map[string]any{"n": i})
		if err == nil || !strings.Contains(err.Error(), "queued for retry") {
			t.Fatalf("append %d to an unwritable path: %v", i, err)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(TypeRefresh, map[string]any{"n": 5}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range lines(t, path) {
		r := record(t, line)
		got = append(got, r.Type+string(r.Data))
	}
	want := []string{
		TypeReopened + `{"previous_hash":"` + head + `","previous_seq":2,"reason":"audit log file removed, replaced or truncated while the daemon ran"}`,
		TypeDropped + `{"count":3,"reason":"audit log not writable for longer than the queue holds"}`,
		`refresh{"n":3}`, `refresh{"n":4}`, `refresh{"n":5}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := VerifyFile(path); err != nil {
		t.Fatal(err)
	}
}

func TestFolderRemovedRecreated(t *testing.T) {
	t.Parallel()
	l, path := newLog(t)
	fill(t, l, 2)
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(TypeStop, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("folder: %v %v", st, err)
	}
	if rep, err := VerifyFile(path); err != nil || rep.FirstSeq != 3 || rep.Records != 2 {
		t.Fatalf("%+v %v", rep, err)
	}
}

// TestPythonVerifierAgrees runs the verifier printed in docs/audit.md on
// good and tampered logs and checks that it agrees with Verify.
func TestPythonVerifierAgrees(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "audit.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/audit.md has no python block")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "verify_audit.py")
	if err := os.WriteFile(script, m[1], 0o600); err != nil {
		t.Fatal(err)
	}
	l, path := newLog(t)
	fill(t, l, 6)
	good := lines(t, path)
	swapped := append([][]byte{}, good...)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	edited := append([][]byte{}, good...)
	edited[1] = bytes.Replace(edited[1], []byte(`"i":1`), []byte(`"i":2`), 1)
	// a continuation file, as written after the log was removed
	_ = os.Remove(path)
	if err := l.Append(TypeStop, nil); err != nil {
		t.Fatal(err)
	}
	cont := lines(t, path)
	for i, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"good", join(good), true},
		{"deleted", join(append(append([][]byte{}, good[:2]...), good[3:]...)), false},
		{"swapped", join(swapped), false},
		{"edited", join(edited), false},
		{"torn", join(good)[:len(join(good))-5], false},
		{"head cut", join(good[1:]), false},
		{"continuation", join(cont), true},
		{"old then continuation", append(join(good), join(cont)...), true},
		{"empty", nil, true},
	} {
		f := filepath.Join(dir, fmt.Sprintf("log%d.jsonl", i))
		if err := os.WriteFile(f, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, goErr := Verify(bytes.NewReader(tc.data))
		out, pyErr := exec.Command(py, script, f).CombinedOutput()
		if (goErr == nil) != tc.ok || (pyErr == nil) != tc.ok {
			t.Errorf("Test %d (%s): Go says %v, Python says %q (%v), want ok=%v", i, tc.name, goErr, out, pyErr, tc.ok)
		}
	}
}
