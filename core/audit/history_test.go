package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestDeferredHistoryMatchesFullScan: a log opened with DeferHistory and
// then checked by VerifyHistory ends as one opened without it: the same
// history kept, the same records added (a chain_broken record for a break
// nobody acknowledged, and only then), the same breaks found by Verify.
func TestDeferredHistoryMatchesFullScan(t *testing.T) {
	t.Parallel()
	edit := func(i int) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte {
			ls[i] = bytes.Replace(ls[i], []byte(`"i":`), []byte(`"i":9`), 1)
			return ls
		}
	}
	cases := []struct {
		name     string
		tamper   func([][]byte) [][]byte
		ack      bool   // open once the usual way first: the break is acknowledged
		torn     string // bytes after the last newline
		deferred bool   // the open defers the history (else it reads the whole file)
	}{
		{name: "intact", deferred: true},
		{name: "a middle record edited", tamper: edit(3), deferred: true},
		{name: "a middle record removed", tamper: func(ls [][]byte) [][]byte { return slices.Delete(ls, 4, 5) }, deferred: true},
		{name: "a line of garbage inserted", tamper: func(ls [][]byte) [][]byte { return slices.Insert(ls, 2, []byte("not json")) }, deferred: true},
		{name: "a break acknowledged before", tamper: edit(3), ack: true, deferred: true},
		{name: "the last record edited", tamper: edit(11)},
		{name: "the last line not JSON", tamper: func(ls [][]byte) [][]byte { return append(ls, []byte("{oops")) }},
		{name: "a torn tail", torn: `{"data":{`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			base := baseLog(t, 12, c.tamper, c.torn)
			if c.ack {
				openAppend(t, base, false)
			}
			orig, _ := os.ReadFile(base)
			full, deferred := copyOf(t, base, "full"), copyOf(t, base, "deferred")
			openAppend(t, full, false)
			if got := openAppend(t, deferred, true); got != c.deferred {
				t.Errorf("the history was deferred: %t, want %t", got, c.deferred)
			}
			// A torn tail, or a last line that is not JSON, is cut off
			// (and saved) by both: compare what comes before it.
			a, _ := os.ReadFile(full)
			b, _ := os.ReadFile(deferred)
			kept := orig[:bytes.LastIndexByte(orig, '\n')+1]
			for len(kept) > 0 && !(bytes.HasPrefix(a, kept) && bytes.HasPrefix(b, kept)) {
				kept = kept[:bytes.LastIndexByte(kept[:len(kept)-1], '\n')+1]
			}
			if len(kept) < len(orig)-600 {
				t.Fatalf("history rewritten: %d bytes of %d kept", len(kept), len(orig))
			}
			if ta, tb := addedTypes(t, a[len(kept):]), addedTypes(t, b[len(kept):]); !slices.Equal(ta, tb) {
				t.Errorf("records added: %v with the whole file read, %v deferred", ta, tb)
			}
			_, ea := Verify(bytes.NewReader(a))
			_, eb := Verify(bytes.NewReader(b))
			var ba, bb *BreakError
			if errors.As(ea, &ba) != errors.As(eb, &bb) || ba != nil && (ba.Line != bb.Line || ba.Reason != bb.Reason) {
				t.Errorf("Verify: %v with the whole file read, %v deferred", ea, eb)
			}
			// Opened again, deferred: nothing more to acknowledge.
			before, _ := os.ReadFile(deferred)
			openAppend(t, deferred, true)
			again, _ := os.ReadFile(deferred)
			if got := addedTypes(t, again[len(before):]); !slices.Equal(got, []string{TypeStart}) {
				t.Errorf("a second open added %v", got)
			}
		})
	}
}

// TestVerifyHistoryLogsTheBreak: the break VerifyHistory finds is logged
// as loudly as Open logs it; a cancelled check writes nothing and says so.
func TestVerifyHistoryLogsTheBreak(t *testing.T) {
	t.Parallel()
	path := baseLog(t, 12, func(ls [][]byte) [][]byte { ls[2] = append([]byte(" "), ls[2]...); return ls }, "")
	var logbuf bytes.Buffer
	opts := Options{Logger: hclog.New(&hclog.LoggerOptions{Output: &logbuf}), DeferHistory: true, deferMin: 1}
	l, err := OpenOptions(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	size := fileSize(t, path)
	if err := l.VerifyHistory(ctx, 0); !errors.Is(err, context.Canceled) || fileSize(t, path) != size {
		t.Errorf("cancelled: %v, %d bytes -> %d", err, size, fileSize(t, path))
	}
	_ = l.Close()
	l, err = OpenOptions(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if strings.Contains(logbuf.String(), "CHAIN IS BROKEN") {
		t.Fatal("the break was reported before the history was checked")
	}
	if err := l.VerifyHistory(context.Background(), 0.5); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logbuf.String(), "CHAIN IS BROKEN") || !strings.Contains(logbuf.String(), "line=3") {
		t.Errorf("not logged loudly: %s", logbuf.String())
	}
	if err := l.VerifyHistory(context.Background(), 0); err != nil {
		t.Errorf("a second check: %v", err)
	}
}

// baseLog writes n records, changes its lines with tamper and appends torn.
func baseLog(t *testing.T, n int, tamper func([][]byte) [][]byte, torn string) string {
	t.Helper()
	l, path := newLog(t)
	fill(t, l, n)
	_ = l.Close()
	if tamper != nil || torn != "" {
		ls := lines(t, path)
		if tamper != nil {
			ls = tamper(ls)
		}
		if err := os.WriteFile(path, append(join(ls), torn...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// openAppend opens the log, appends a start record, checks a deferred
// history and closes it; it reports whether the open deferred the history.
func openAppend(t *testing.T, path string, deferred bool) bool {
	t.Helper()
	l, err := OpenOptions(path, Options{DeferHistory: deferred, deferMin: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	had := l.history != nil
	if err := l.Append(TypeStart, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.VerifyHistory(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	return had
}

func copyOf(t *testing.T, path, name string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name+".jsonl")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// addedTypes are the record types of raw's lines, sorted.
func addedTypes(t *testing.T, raw []byte) []string {
	t.Helper()
	var out []string
	for _, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n")) {
		if len(line) > 0 {
			out = append(out, record(t, line).Type)
		}
	}
	slices.Sort(out)
	return out
}
