package tpm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/tpm/attest"
)

// Two TPM key names (000b: SHA-256).
var (
	akID  = "000b" + strings.Repeat("a1", 32)
	akID2 = "000b" + strings.Repeat("b2", 32)
)

func ci(clock uint64, reset, restart uint32) attest.ClockInfo {
	return attest.ClockInfo{Clock: clock, ResetCount: reset, RestartCount: restart}
}

func TestClockTracker(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		seq  []attest.ClockInfo
		want []string // per observation: "" or a substring of the rollback
	}{
		{[]attest.ClockInfo{ci(10, 1, 0), ci(20, 1, 0), ci(20, 1, 0)}, []string{"", "", ""}},
		{[]attest.ClockInfo{ci(10, 1, 0), ci(5, 2, 0)}, []string{"", ""}}, // reset: clock may restart lower
		{[]attest.ClockInfo{ci(10, 1, 3), ci(5, 1, 4)}, []string{"", ""}}, // restart: likewise
		{[]attest.ClockInfo{ci(10, 2, 0), ci(50, 1, 0)}, []string{"", "reset count went down from 2 to 1"}},
		{[]attest.ClockInfo{ci(10, 2, 5), ci(50, 2, 4)}, []string{"", "restart count went down from 5 to 4 within reset 2"}},
		{[]attest.ClockInfo{ci(10, 2, 5), ci(9, 2, 5)}, []string{"", "clock went back from 10 ms to 9 ms"}},
		// The mark is not lowered: every later observation behind it is
		// flagged, the next one ahead of it is not.
		{[]attest.ClockInfo{ci(10, 2, 0), ci(50, 1, 0), ci(60, 1, 0), ci(11, 2, 0)}, []string{"", "from 2 to 1", "from 2 to 1", ""}},
	} {
		var tr clockTracker
		for j, obs := range tc.seq {
			got := tr.observe(akID, obs, time.Unix(int64(j), 0))
			if (tc.want[j] == "") != (got == "") || !strings.Contains(got, tc.want[j]) {
				t.Errorf("Test %d, observation %d: got %q, want %q", i, j, got, tc.want[j])
			}
		}
	}
}

// TestClockTrackerIdentities: each TPM identity has its own mark, so a
// second TPM (or key) whose counters are far behind the first one's is not
// a rollback, and the first one is still held to its own.
func TestClockTrackerIdentities(t *testing.T) {
	t.Parallel()
	var tr clockTracker
	now := time.Unix(1000, 0)
	if msg := tr.observe(akID, ci(5000, 9, 2), now); msg != "" {
		t.Fatal(msg)
	}
	if msg := tr.observe(akID2, ci(10, 0, 0), now); msg != "" {
		t.Fatalf("a second identity tripped the first one's mark: %s", msg)
	}
	if msg := tr.observe(akID, ci(10, 0, 0), now); !strings.Contains(msg, "reset count went down from 9 to 0") {
		t.Fatalf("first identity behind its mark: %q", msg)
	}
	if len(tr.marks) != 2 || tr.marks[akID].clock != ci(5000, 9, 2) || tr.marks[akID2].clock != ci(10, 0, 0) {
		t.Fatalf("marks %+v", tr.marks)
	}
}

func TestClockTrackerMerge(t *testing.T) {
	t.Parallel()
	t0, t1 := time.Unix(100, 0).UTC(), time.Unix(200, 0).UTC()
	for i, tc := range []struct {
		mem, file clockMark
		want      clockMark
	}{
		{clockMark{ci(10, 1, 0), t0}, clockMark{ci(20, 1, 0), t1}, clockMark{ci(20, 1, 0), t1}},
		{clockMark{ci(10, 2, 0), t1}, clockMark{ci(20, 1, 0), t0}, clockMark{ci(10, 2, 0), t1}},
		{clockMark{ci(10, 2, 0), t0}, clockMark{ci(20, 1, 0), t1}, clockMark{ci(10, 2, 0), t1}},
		{clockMark{ci(10, 1, 0), t1}, clockMark{ci(10, 1, 1), t0}, clockMark{ci(10, 1, 1), t1}},
	} {
		tr := clockTracker{marks: map[string]clockMark{akID: tc.mem}}
		tr.merge(akID, tc.file)
		tr.merge(akID2, tc.file)
		if got := tr.marks[akID]; got != tc.want {
			t.Errorf("Test %d: merged %+v, want %+v", i, got, tc.want)
		}
		if got := tr.marks[akID2]; got != tc.file {
			t.Errorf("Test %d: new identity %+v, want %+v", i, got, tc.file)
		}
	}
}

// TestClockTrackerEvicts: past maxClockRecords identities, the one seen
// longest ago goes, never the one just observed.
func TestClockTrackerEvicts(t *testing.T) {
	t.Parallel()
	var tr clockTracker
	ids := make([]string, maxClockRecords+2)
	for i := range ids {
		ids[i] = fmt.Sprintf("000b%064x", i)
		tr.observe(ids[i], ci(1, 1, 0), time.Unix(int64(i), 0))
	}
	if len(tr.marks) != maxClockRecords {
		t.Fatalf("%d marks, want %d", len(tr.marks), maxClockRecords)
	}
	for i, id := range ids {
		_, kept := tr.marks[id]
		if kept != (i >= 2) {
			t.Errorf("identity %d kept %v", i, kept)
		}
	}
	// The oldest is seen again: it is kept, the next oldest goes.
	tr.observe(ids[0], ci(1, 1, 0), time.Unix(0, 0))
	if _, ok := tr.marks[ids[0]]; !ok || len(tr.marks) != maxClockRecords {
		t.Fatalf("re-observed identity evicted: %d marks", len(tr.marks))
	}
	if _, ok := tr.marks[ids[2]]; ok {
		t.Error("the identity seen longest ago was kept")
	}
}

func TestParseState(t *testing.T) {
	t.Parallel()
	rec := `{"reset_count": 3, "restart_count": 1, "clock": 812345, "seen": "2026-11-28T19:00:00Z"}`
	for i, tc := range []struct {
		in      string
		wantErr string // "" when valid
		want    map[string]clockMark
	}{
		{`{"version": 1, "tpms": {}}`, "", map[string]clockMark{}},
		{`{"version": 1, "tpms": {"` + akID + `": ` + rec + `}}` + "\n", "", map[string]clockMark{
			akID: {ci(812345, 3, 1), time.Date(2026, 11, 28, 19, 0, 0, 0, time.UTC)}}},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 4294967295, "restart_count": 0, "clock": 18446744073709551615, "seen": "2026-11-28T21:00:00.5+02:00"}}}`, "", map[string]clockMark{
			akID: {ci(1<<64-1, 1<<32-1, 0), time.Date(2026, 11, 28, 19, 0, 0, 5e8, time.UTC)}}},

		{``, "not a state file", nil},
		{`garbage`, "not a state file", nil},
		{`null`, "no version", nil},
		{`[]`, "not a state file", nil},
		{`{"tpms": {}}`, "no version", nil},
		{`{"version": 2, "tpms": {}}`, "version 2 is not supported", nil},
		{`{"version": 1}`, "no tpms object", nil},
		{`{"version": 1, "tpms": {}, "extra": 1}`, "unknown field", nil},
		{`{"version": 1, "tpms": {}} {}`, "data after the JSON object", nil},
		{`{"version": 1, "tpms": {"` + akID + `": ` + rec + `}`, "not a state file", nil},
		{`{"version": 1, "tpms": {"` + akID + `": null}}`, "null instead of a record", nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"restart_count": 1, "clock": 2, "seen": "2026-11-28T19:00:00Z"}}}`, "no reset_count", nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 1, "clock": 2, "seen": "2026-11-28T19:00:00Z"}}}`, "no restart_count", nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 1, "restart_count": 1, "seen": "2026-11-28T19:00:00Z"}}}`, "no clock", nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 1, "restart_count": 1, "clock": 2}}}`, "no seen", nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 1, "restart_count": 1, "clock": 2, "seen": "yesterday"}}}`, `seen "yesterday" is not an RFC 3339 time`, nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 1, "restart_count": 1, "clock": 2, "seen": "9999-12-31T23:00:00-02:00"}}}`, "out of range in UTC", nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": -1, "restart_count": 1, "clock": 2, "seen": "2026-11-28T19:00:00Z"}}}`, "not a state file", nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 4294967296, "restart_count": 1, "clock": 2, "seen": "2026-11-28T19:00:00Z"}}}`, "not a state file", nil},
		{`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 1.5, "restart_count": 1, "clock": 2, "seen": "2026-11-28T19:00:00Z"}}}`, "not a state file", nil},
		{`{"version": 1, "tpms": {"` + strings.ToUpper(akID) + `": ` + rec + `}}`, "is not a TPM key name", nil},
		{`{"version": 1, "tpms": {"000b12": ` + rec + `}}`, "is not a TPM key name", nil},
		{`{"version": 1, "tpms": {"ak": ` + rec + `}}`, "is not a TPM key name", nil},
		{`{"version": 1, "tpms": {"` + akID + `": ` + rec + `, "` + akID + `x": ` + rec + `}}`, "is not a TPM key name", nil},
		{`{"version": 1, "tpms": {}}` + strings.Repeat(" ", maxStateSize), "larger than", nil},
	} {
		got, err := parseState([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Test %d: %.80s: error %v, want %q", i, tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Test %d: %.80s: %v", i, tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Test %d: parsed %+v, want %+v", i, got, tc.want)
		}
	}

	// More records than the tracker keeps.
	var b strings.Builder
	b.WriteString(`{"version": 1, "tpms": {`)
	for i := range maxClockRecords + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"000b%064x": %s`, i, rec)
	}
	b.WriteString("}}")
	if _, err := parseState([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than the 16 kept") {
		t.Errorf("%d records: error %v", maxClockRecords+1, err)
	}
}

// TestStateRoundTrip: what encodeState writes, parseState reads back.
func TestStateRoundTrip(t *testing.T) {
	t.Parallel()
	marks := map[string]clockMark{
		akID:  {ci(812345, 3, 1), time.Date(2026, 11, 28, 19, 0, 0, 123, time.UTC)},
		akID2: {ci(0, 0, 0), time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
	b, err := encodeState(marks)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseState(b)
	if err != nil {
		t.Fatalf("parse %s: %v", b, err)
	}
	if !reflect.DeepEqual(got, marks) {
		t.Fatalf("round trip: %+v, want %+v\n%s", got, marks, b)
	}
	if !bytes.Contains(b, []byte(`"version": 1`)) || bytes.Index(b, []byte(akID)) > bytes.Index(b, []byte(akID2)) {
		t.Errorf("encoded state:\n%s", b)
	}
}

// FuzzParseState: whatever the file holds, parsing returns marks or an
// error, never panics, and what it accepts survives a round trip.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version": 1, "tpms": {}}`))
	f.Add([]byte(`{"version": 1, "tpms": {"` + akID + `": {"reset_count": 3, "restart_count": 1, "clock": 812345, "seen": "2026-11-28T19:00:00Z"}}}`))
	f.Add([]byte(`{"version": 1, "tpms": {"` + akID + `": null}}`))
	f.Add([]byte(`{"version": 2}`))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		marks, err := parseState(b)
		if err != nil {
			if marks != nil || err.Error() == "" {
				t.Fatalf("error %v with marks %v", err, marks)
			}
			return
		}
		out, err := encodeState(marks)
		if err != nil {
			t.Fatalf("encode accepted state: %v", err)
		}
		again, err := parseState(out)
		if err != nil {
			t.Fatalf("re-parse %s: %v", out, err)
		}
		if len(again) != len(marks) {
			t.Fatalf("round trip: %d marks, want %d", len(again), len(marks))
		}
		for id, m := range marks {
			a, ok := again[id]
			if !ok || a.clock != m.clock || !a.seen.Equal(m.seen) {
				t.Fatalf("round trip of %s: %+v, want %+v", id, a, m)
			}
		}
	})
}

func TestReadState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, err := encodeState(map[string]clockMark{akID: {ci(7, 1, 0), time.Unix(5, 0).UTC()}})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := write("valid.json", good)
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(valid, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	folder := filepath.Join(dir, "folder.json")
	if err := os.Mkdir(folder, 0o700); err != nil {
		t.Fatal(err)
	}
	notDir := write("plain", []byte("x"))

	for i, tc := range []struct {
		path    string
		marks   int    // when no error
		dirErr  string // *errStateDir with this message
		wantErr string
	}{
		{path: valid, marks: 1},
		{path: filepath.Join(dir, "absent.json"), marks: 0},
		{path: filepath.Join(dir, "missing", "tpm-clock.json"), dirErr: "state folder " + filepath.Join(dir, "missing") + " does not exist"},
		{path: filepath.Join(dir, "missing", "deeper", "tpm-clock.json"), dirErr: "does not exist"},
		{path: filepath.Join(notDir, "tpm-clock.json"), dirErr: "state folder " + notDir + " is not a folder"},
		{path: link, wantErr: "is a symbolic link"},
		{path: fifo, wantErr: "not a regular file"},
		{path: folder, wantErr: "not a regular file"},
		{path: write("empty.json", nil), wantErr: "not a state file"},
		{path: write("garbage.json", []byte("\x00garbage")), wantErr: "not a state file"},
		{path: write("big.json", append(good, bytes.Repeat([]byte(" "), maxStateSize)...)), wantErr: "larger than"},
	} {
		marks, err := readState(tc.path)
		var de *errStateDir
		switch {
		case tc.dirErr != "":
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.dirErr) {
				t.Errorf("Test %d: %s: error %v, want a folder error %q", i, tc.path, err, tc.dirErr)
			}
		case tc.wantErr != "":
			if err == nil || errors.As(err, &de) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Test %d: %s: error %v, want %q", i, tc.path, err, tc.wantErr)
			}
		default:
			if err != nil || len(marks) != tc.marks {
				t.Errorf("Test %d: %s: %d marks, %v; want %d", i, tc.path, len(marks), err, tc.marks)
			}
		}
	}
}

// otherFiles lists the files in dir other than keep.
func otherFiles(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !slices.Contains(keep, e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestWriteStateAtomic: the state file is replaced whole, 0600, with no
// temporary file left behind, and a failed write leaves the old file and
// no temporary file either.
func TestWriteStateAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "tpm-clock.json")
	for i, data := range [][]byte{[]byte("first\n"), []byte("second, longer\n")} {
		if err := writeState(path, data); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("write %d: file holds %q (%v), want %q", i, got, err, data)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("write %d: mode %v (%v), want 0600", i, fi.Mode(), err)
		}
		if other := otherFiles(t, dir, "tpm-clock.json"); len(other) != 0 {
			t.Fatalf("write %d left %v", i, other)
		}
	}

	// The rename fails (a non-empty folder stands where the file goes):
	// nothing is left behind and the folder is untouched.
	blocked := filepath.Join(dir, "blocked.json")
	if err := os.MkdirAll(filepath.Join(blocked, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := writeState(blocked, []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "over "+blocked) {
		t.Fatalf("write over a folder: %v", err)
	}
	if other := otherFiles(t, dir, "tpm-clock.json", "blocked.json"); len(other) != 0 {
		t.Fatalf("a failed write left %v", other)
	}
	if fi, err := os.Stat(blocked); err != nil || !fi.IsDir() {
		t.Fatalf("the folder in the way changed: %v", err)
	}

	// No folder: nothing can be created.
	if err := writeState(filepath.Join(dir, "missing", "tpm-clock.json"), []byte("x")); err == nil || !strings.Contains(err.Error(), "create a temporary file in") {
		t.Fatalf("write into a missing folder: %v", err)
	}
}

// TestRemoveStaleTemps: temporary files an interrupted write left beside
// the state file go; anything else in the folder stays.
func TestRemoveStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "tpm-clock.json")
	for _, name := range []string{"tpm-clock.json", ".tpm-clock.json.123.tmp", ".tpm-clock.json.456.tmp", ".other.json.1.tmp", "tpm-clock.json.tmp", "notes"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := removeStaleTemps(path)
	if err != nil || !slices.Equal(removed, []string{".tpm-clock.json.123.tmp", ".tpm-clock.json.456.tmp"}) {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if left := otherFiles(t, dir); !slices.Equal(left, []string{".other.json.1.tmp", "notes", "tpm-clock.json", "tpm-clock.json.tmp"}) {
		t.Fatalf("left %v", left)
	}
}
