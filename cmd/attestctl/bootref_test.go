package main_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/tpm/eventlog"
)

var rhel8Log = filepath.Join("..", "..", "tpm", "testdata", "eventlog", "rhel8-uefi.bin")

// TestBootReferenceRecord: the binary records a reference from a real log,
// and --merge adds a changed boot as a variant that the comparison accepts
// along with the old one.
func TestBootReferenceRecord(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "boot-reference.yaml")
	r := attestctl(t, "", nil, "boot-reference", "record", "--event-log", rhel8Log, "--userspace-log", "", "-o", out)
	if r.code != 0 || !strings.Contains(r.stderr, "recorded 82 events of PCRs 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14 (sha256)") {
		t.Fatalf("%v", r)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := eventlog.ParseReference(raw)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(rhel8Log)
	l, _ := eventlog.Parse(good)
	if d := eventlog.Compare(l, nil, ref, ref.PCRList()); len(d) != 0 {
		t.Fatalf("the recorded boot differs from its reference: %v", d)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}

	// A new shim: merge it in, only PCR 4.
	shim := l.Events[22].Digest(eventlog.SHA256)
	changed := bytes.ReplaceAll(good, shim, bytes.Repeat([]byte{0xab}, 32))
	newLog := filepath.Join(dir, "new.bin")
	if err := os.WriteFile(newLog, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	r = attestctl(t, "", nil, "boot-reference", "record", "--event-log", newLog, "--userspace-log", "", "--pcrs", "4", "--merge", out, "-o", out)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	raw, _ = os.ReadFile(out)
	merged, err := eventlog.ParseReference(raw)
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := eventlog.Parse(changed)
	for _, lg := range []*eventlog.Log{l, l2} {
		if d := eventlog.Compare(lg, nil, merged, merged.PCRList()); len(d) != 0 {
			t.Errorf("merged reference: %v", d)
		}
	}
	if !strings.Contains(string(raw), strings.Repeat("ab", 32)) || strings.Count(string(raw), "- pcr: 4") != 1 {
		t.Errorf("the new shim is not a second digest of the same event:\n%s", raw)
	}

	// To standard output, and errors.
	if r := attestctl(t, "", nil, "boot-reference", "record", "--event-log", rhel8Log, "--userspace-log", "", "--pcrs", "7"); r.code != 0 || !strings.HasPrefix(r.stdout, "# runtime-attestor boot reference") || !strings.Contains(r.stdout, "- pcr: 7") {
		t.Errorf("stdout: %v", r)
	}
	for i, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"boot-reference"}, 2, "needs the subcommand record"},
		{[]string{"boot-reference", "record", "--pcrs", "4,99"}, 2, `--pcrs: "99" is not a PCR`},
		{[]string{"boot-reference", "record", "--event-log", filepath.Join(dir, "none")}, 2, "firmware event log: open"},
		{[]string{"boot-reference", "record", "--event-log", out}, 2, "does not parse"},
		{[]string{"boot-reference", "record", "--event-log", rhel8Log, "--userspace-log", "", "--merge", newLog}, 2, "--merge " + newLog + ": the boot reference is not valid YAML"},
	} {
		if r := attestctl(t, "", nil, tc.args...); r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("Test %d: %v, want exit %d and %q", i, r, tc.code, tc.want)
		}
	}
}
