package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// fixture reads a real log of ../testdata/eventlog and its real PCR
// values (see the README there).
func fixture(t *testing.T, name string) ([]byte, map[Bank]map[int][]byte) {
	t.Helper()
	dir := filepath.Join("..", "testdata", "eventlog")
	raw, err := os.ReadFile(filepath.Join(dir, name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(filepath.Join(dir, name+".pcrs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hexes map[Bank]map[string]string
	if err := json.Unmarshal(j, &hexes); err != nil {
		t.Fatal(err)
	}
	out := map[Bank]map[int][]byte{}
	for b, m := range hexes {
		out[b] = map[int][]byte{}
		for k, v := range m {
			p, _ := strconv.Atoi(k)
			out[b][p], _ = hex.DecodeString(v)
		}
	}
	return raw, out
}

func mustParse(t *testing.T, raw []byte) *Log {
	t.Helper()
	l, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestReplayRealLogs: each real log replays, in every bank it has, against
// the PCR values of the machine it came from.
func TestReplayRealLogs(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name   string
		banks  []string
		events int
		sb     string // on, off, unknown
	}{
		{"rhel8-uefi", []string{"sha1", "sha256", "sha384"}, 82, "on"},
		{"ubuntu-2104-no-secure-boot", []string{"sha1", "sha256", "sha384"}, 105, "off"},
		{"arch-linux-workstation", []string{"sha1", "sha256"}, 24, "unknown"},
	} {
		raw, pcrs := fixture(t, tc.name)
		l := mustParse(t, raw)
		if got := strings.Join(l.BankNames(), ","); got != strings.Join(tc.banks, ",") {
			t.Errorf("Test %d %s: banks %s, want %v", i, tc.name, got, tc.banks)
		}
		if len(l.Events) != tc.events || l.Events[0].Index != 1 {
			t.Errorf("Test %d %s: %d events from index %d, want %d from 1", i, tc.name, len(l.Events), l.Events[0].Index, tc.events)
		}
		for _, b := range []Bank{SHA1, SHA256} {
			for _, r := range Replay(l, nil, b, pcrs[b]) {
				if r.Logged && !r.OK {
					t.Errorf("Test %d %s: PCR %d %s does not replay: %s", i, tc.name, r.PCR, b, r.Problem)
				}
			}
		}
		sb, err := SecureBootState(l, SHA256)
		switch {
		case tc.sb == "unknown" && err == nil:
			t.Errorf("Test %d %s: Secure Boot read as %+v, want an error", i, tc.name, sb)
		case tc.sb != "unknown" && err != nil:
			t.Errorf("Test %d %s: %v", i, tc.name, err)
		case err == nil && sb.Enabled != (tc.sb == "on"):
			t.Errorf("Test %d %s: Secure Boot enabled %v, want %s", i, tc.name, sb.Enabled, tc.sb)
		}
	}
}

// TestReplayFailsOnChangedEvent: one changed digest makes exactly its PCR
// fail in that bank, naming the values.
func TestReplayFailsOnChangedEvent(t *testing.T) {
	t.Parallel()
	raw, pcrs := fixture(t, "rhel8-uefi")
	l := mustParse(t, raw)
	l.Events[22].Digests[SHA256][0] ^= 1 // event 23: shimx64.efi, PCR 4
	var failed []string
	for _, r := range Replay(l, nil, SHA256, pcrs[SHA256]) {
		if !r.OK && r.Logged {
			failed = append(failed, strconv.Itoa(r.PCR)+": "+r.Problem)
		}
	}
	if len(failed) != 1 || !strings.HasPrefix(failed[0], "4: its 5 logged events give ") {
		t.Fatalf("failed %q, want PCR 4 only", failed)
	}
	// A PCR 0-9 with no event must hold its reset value.
	q := map[int][]byte{}
	for k, v := range pcrs[SHA256] {
		q[k] = v
	}
	q[3] = bytes.Repeat([]byte{1}, 32)
	mustParse(t, raw) // the parsed log above was changed
	for _, r := range Replay(mustParse(t, raw), nil, SHA256, map[int][]byte{3: q[3]}) {
		if r.OK {
			t.Errorf("PCR 3 replays with a value its events do not give")
		}
	}
}

func TestSecureBootDetails(t *testing.T) {
	t.Parallel()
	raw, _ := fixture(t, "rhel8-uefi")
	sb, err := SecureBootState(mustParse(t, raw), SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if sb.PK == "" || sb.KEK == "" || sb.DB == "" || sb.DBX == "" {
		t.Errorf("missing key database digests: %+v", sb)
	}
	if len(sb.Authorities) != 2 {
		t.Fatalf("authorities %+v, want 2", sb.Authorities)
	}
	a := sb.Authorities[0]
	if a.Event != 21 || a.Database != "db" || a.Application != `\EFI\redhat\shimx64.efi` || a.ApplicationEvent != 23 || !strings.Contains(a.Subject, "Microsoft") {
		t.Errorf("first authority %+v: want db's Microsoft key verifying shimx64.efi (event 23)", a)
	}
	if b := sb.Authorities[1]; b.Database != "Shim" || b.ApplicationEvent != 77 {
		t.Errorf("second authority %+v: want shim's key verifying event 77 (the kernel)", b)
	}
}

// TestCompareNamesTheEvent: a reference recorded from the log matches it;
// with the shim changed, exactly one difference names PCR 4 event 23, its
// type, path and digests; the new digest as a variant matches again.
func TestCompareNamesTheEvent(t *testing.T) {
	t.Parallel()
	raw, _ := fixture(t, "rhel8-uefi")
	l := mustParse(t, raw)
	ref, err := Record(l, nil, SHA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := ref.PCRList()
	if d := Compare(l, nil, ref, all); len(d) != 0 {
		t.Fatalf("the recorded log differs from its own reference: %v", d)
	}
	changed := mustParse(t, raw)
	newDigest := sha256.Sum256([]byte("another shim"))
	changed.Events[22].Digests[SHA256] = newDigest[:]
	d := Compare(changed, nil, ref, all)
	if len(d) != 1 {
		t.Fatalf("differences %v, want 1", d)
	}
	msg := d[0].String()
	want := `PCR 4 event 23 EV_EFI_BOOT_SERVICES_APPLICATION \EFI\redhat\shimx64.efi: digest ` + hex.EncodeToString(newDigest[:]) +
		", the reference allows digest 40d6cae02973789080cf4c3a9ad11b5a0a4d8bba4438ab96e276cc784454dee7"
	if msg != want || d[0].Subject() != "pcr:4/event:23" {
		t.Errorf("difference\n%s (%s)\nwant\n%s", msg, d[0].Subject(), want)
	}
	// Only PCRs that replayed are compared.
	if d := Compare(changed, nil, ref, []int{0, 7}); len(d) != 0 {
		t.Errorf("PCR 4 compared though not replayed: %v", d)
	}
	// Record the changed boot and merge: old and new both allowed.
	ref2, err := Record(changed, nil, SHA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Merge(ref2); err != nil {
		t.Fatal(err)
	}
	for _, lg := range []*Log{l, changed} {
		if d := Compare(lg, nil, ref, all); len(d) != 0 {
			t.Errorf("merged reference: %v", d)
		}
	}
	// It survives a round trip through its file format.
	b, err := ref.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseReference(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if d := Compare(changed, nil, back, all); len(d) != 0 {
		t.Errorf("reference read back: %v", d)
	}
}

// TestCompareExtraAndMissing: an inserted and a removed event are one
// difference each, not a cascade over every later event.
func TestCompareExtraAndMissing(t *testing.T) {
	t.Parallel()
	raw, _ := fixture(t, "rhel8-uefi")
	l := mustParse(t, raw)
	ref, err := Record(l, nil, SHA256, []int{8})
	if err != nil {
		t.Fatal(err)
	}
	extra := mustParse(t, raw)
	ev := extra.Events[40]
	ev.Index = 999
	extra.Events = append(extra.Events[:30], append([]Event{ev}, extra.Events[30:]...)...)
	d := Compare(extra, nil, ref, []int{8})
	if len(d) != 1 || d[0].Allowed != nil || !strings.HasSuffix(d[0].String(), "which the reference does not list") {
		t.Errorf("inserted event: %v", d)
	}
	gone := mustParse(t, raw)
	gone.Events = append(gone.Events[:60], gone.Events[61:]...) // event 61, PCR 8
	d = Compare(gone, nil, ref, []int{8})
	if len(d) != 1 || d[0].Event != nil || !strings.Contains(d[0].String(), "after event 60, the log has none") {
		t.Errorf("removed event: %v", d)
	}
}

// TestValues: a text event matches an allowed value only when its digest
// is the hash of what it says was measured.
func TestValues(t *testing.T) {
	t.Parallel()
	raw, _ := fixture(t, "rhel8-uefi")
	l := mustParse(t, raw)
	e := l.Events[77] // event 78: grub_kernel_cmdline
	if !strings.HasPrefix(e.Description(), "grub_kernel_cmdline ") {
		t.Fatalf("event 78 is %q", e.Description())
	}
	r := &EventRef{Type: "EV_IPL", Values: []string{e.Description()}}
	if ok, _ := matches(e, r, SHA256); !ok {
		t.Fatalf("the measured command line does not match its own text")
	}
	forged := e
	forged.Digests = map[Bank][]byte{SHA256: bytes.Repeat([]byte{7}, 32)}
	if ok, textOnly := matches(forged, r, SHA256); ok || !textOnly {
		t.Errorf("an event whose digest does not hash its text matched (%v, %v)", ok, textOnly)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	raw, _ := fixture(t, "rhel8-uefi")
	for i, tc := range []struct {
		raw  []byte
		want string
	}{
		{nil, "empty"},
		{raw[:len(raw)-7], "does not parse"},
		{[]byte("garbage garbage garbage garbage garbage"), "does not parse"},
		{make([]byte, MaxLogSize+1), "too large"},
	} {
		if _, err := Parse(tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: %v, want %q", i, err, tc.want)
		}
	}
}

func TestReferenceRejects(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct{ yaml, want string }{
		{"", "empty"},
		{"version: 2\nbank: sha256\npcrs: []\n", "version: 2 is not 1"},
		{"version: 1\nbank: md5\npcrs: []\n", "bank:"},
		{"version: 1\nbank: sha256\npcrs: []\n", "lists no PCR"},
		{"version: 1\nbank: sha256\npcrs:\n- pcr: 24\n  events: []\n", "pcrs[0].pcr: 24 is outside"},
		{"version: 1\nbank: sha256\npcrs:\n- pcr: 4\n  events:\n  - type: EV_BOGUS\n    digests: [aa]\n", "pcrs[0].events[0].type"},
		{"version: 1\nbank: sha256\npcrs:\n- pcr: 4\n  events:\n  - type: EV_SEPARATOR\n    digests: [aa]\n", "pcrs[0].events[0].digests[0]"},
		{"version: 1\nbank: sha256\npcrs:\n- pcr: 4\n  events:\n  - type: EV_SEPARATOR\n", "at least one digest"},
		{"version: 1\nbank: sha256\nextra: 1\npcrs: []\n", "field extra not found"},
	} {
		if _, err := ParseReference([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: %v, want %q", i, err, tc.want)
		}
	}
}

// TestUserspaceLog: systemd's records extend PCRs 11 and 15 after the
// firmware's events; a reference names a changed record by its index.
func TestUserspaceLog(t *testing.T) {
	t.Parallel()
	user := userLog(t)
	if len(user) != 6 || user[0].PCR != 11 || user[0].TypeName != "systemd:phase" || user[0].Description() != "enter-initrd" {
		t.Fatalf("events %+v", user)
	}
	want := map[int][]byte{}
	for _, p := range []int{11, 15} {
		v, _ := chain(nil, perPCR(user, p), p, SHA256)
		want[p] = v
	}
	for _, r := range Replay(nil, user, SHA256, want) {
		if !r.OK {
			t.Errorf("PCR %d: %s", r.PCR, r.Problem)
		}
	}
	ref, err := Record(nil, user, SHA256, []int{11})
	if err != nil {
		t.Fatal(err)
	}
	user[3].Digests[SHA256] = bytes.Repeat([]byte{9}, 32)
	d := Compare(nil, user, ref, []int{11})
	if len(d) != 1 || d[0].Subject() != "pcr:11/userspace:3" || !strings.HasPrefix(d[0].String(), "PCR 11 userspace event 3 systemd:phase leave-initrd: digest 0909") {
		t.Errorf("differences %v", d)
	}
	for i, bad := range []string{"\x1e{\"pcr\":24,\"digests\":[]}\n", "\x1e{\"pcr\":11}\n", "\x1e{\"pcr\":11,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"zz\"}]}\n", "\x1enot json\n"} {
		if _, err := ParseCEL([]byte(bad)); err == nil || !strings.Contains(err.Error(), "record 0") {
			t.Errorf("Test %d: %v, want an error naming record 0", i, err)
		}
	}
}

// userLog parses ../testdata/eventlog/tpm2-measure.log.
func userLog(t *testing.T) []Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "eventlog", "tpm2-measure.log"))
	if err != nil {
		t.Fatal(err)
	}
	user, err := ParseCEL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return user
}

func perPCR(evs []Event, p int) []Event {
	var out []Event
	for _, e := range evs {
		if e.PCR == p {
			out = append(out, e)
		}
	}
	return out
}

// TestDocumentedReference: the reference shown in docs/tpm.md is valid,
// and matches the real boot it was taken from but for the second shim.
func TestDocumentedReference(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "tpm.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "### The boot reference")
	if !ok {
		t.Fatal("docs/tpm.md has no boot reference section")
	}
	_, block, _ := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	ref, err := ParseReference([]byte(block))
	if err != nil {
		t.Fatalf("the documented reference: %v\n%s", err, block)
	}
	raw, _ := fixture(t, "rhel8-uefi")
	l := mustParse(t, raw)
	// Its PCR 4 is the real boot's first three events; its PCR 8 the
	// first GRUB command, allowed by its text.
	l.Events = append(append([]Event{}, l.Events[12], l.Events[17], l.Events[22]), l.Events[27])
	if d := Compare(l, nil, ref, []int{4, 8}); len(d) != 0 {
		t.Errorf("the documented reference does not match the boot it shows: %v", d)
	}
}

// TestUserspaceLogAheadOfTheQuote: systemd appended events after the quote
// was taken: the log still replays; a log missing an event does not.
func TestUserspaceLogAheadOfTheQuote(t *testing.T) {
	t.Parallel()
	user := userLog(t)
	pcr11 := perPCR(user, 11) // enter-initrd, leave-initrd, sysinit, ready
	atQuote, _ := chain(nil, pcr11[:2], 11, SHA256)
	r := Replay(nil, user, SHA256, map[int][]byte{11: atQuote})
	if !r[0].OK || len(r[0].Late) != 2 {
		t.Fatalf("a log two events ahead of the quote: %+v", r[0])
	}
	// The late events are not vouched for: a reference asking for them
	// is not satisfied by them.
	ref, _ := Record(nil, user, SHA256, []int{11})
	d := Compare(nil, WithoutLate(user, r), ref, []int{11})
	if len(d) != 2 || d[0].Event != nil {
		t.Errorf("differences %v, want the two late events missing", d)
	}
	all, _ := chain(nil, pcr11, 11, SHA256)
	if r := Replay(nil, pcr11[:3], SHA256, map[int][]byte{11: all}); r[0].OK {
		t.Error("a log missing the last event replays")
	}
}

// TestDescriptionsAreSafeText: what a hostile log puts in a description
// reaches findings as bounded, valid, single-line text without bidi
// controls.
func TestDescriptionsAreSafeText(t *testing.T) {
	t.Parallel()
	for i, in := range []string{"a\nb\x1b[31mred", "bad \xff\xfe utf8", "rtl \u202eexe.gpj", strings.Repeat("x", 5000)} {
		e := Event{Source: Userspace, Data: []byte(in)}
		d := e.Description()
		if !utf8.ValidString(d) || strings.ContainsAny(d, "\n\x1b\u202e") || len(d) > maxDescription+len("…") {
			t.Errorf("Test %d: %q", i, d)
		}
	}
}

// TestKernelLoadedFromMemory: shim's measurement of the kernel has no
// device path; its description says so and gives the image size.
func TestKernelLoadedFromMemory(t *testing.T) {
	t.Parallel()
	raw, _ := fixture(t, "rhel8-uefi")
	if d := mustParse(t, raw).Events[76].Description(); d != "image in memory, 9485680 bytes, no device path" {
		t.Errorf("event 77: %q", d)
	}
}
