package eventlog

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no firmware log crashes, hangs or over-allocates the parser,
// the replay, the Secure Boot reader or the comparison.
func FuzzParse(f *testing.F) {
	for _, n := range []string{"rhel8-uefi", "arch-linux-workstation", "ubuntu-2104-no-secure-boot"} {
		raw, err := os.ReadFile(filepath.Join("..", "testdata", "eventlog", n+".bin"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/3])
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		l, err := Parse(raw)
		if err != nil {
			return
		}
		if len(l.Events) > MaxEvents {
			t.Fatalf("%d events", len(l.Events))
		}
		zeros := map[int][]byte{}
		for p := 0; p <= 9; p++ {
			zeros[p] = make([]byte, 32)
		}
		Replay(l, nil, SHA256, zeros)
		_, _ = SecureBootState(l, SHA256)
		for _, e := range l.Events {
			_ = e.Description()
		}
		if ref, err := Record(l, nil, SHA256, nil); err == nil {
			Compare(l, nil, ref, ref.PCRList())
		}
	})
}

// FuzzParseCEL: systemd's userspace log parser.
func FuzzParseCEL(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "eventlog", "tpm2-measure.log"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte("\x1e{\"pcr\":11}\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		evs, err := ParseCEL(raw)
		if err != nil {
			return
		}
		for _, e := range evs {
			if e.PCR > MaxPCR || e.PCR < -1 {
				t.Fatalf("PCR %d", e.PCR)
			}
			_ = e.Description()
		}
	})
}

// FuzzParseReference: the boot reference parser.
func FuzzParseReference(f *testing.F) {
	f.Add([]byte("version: 1\nbank: sha256\npcrs:\n- pcr: 4\n  events:\n  - type: EV_SEPARATOR\n    digests: [df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119]\n"))
	f.Add([]byte("version: 1\nbank: sha1\npcrs:\n- pcr: 8\n  events:\n  - type: EV_IPL\n    values: [\"grub_cmd x\"]\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ParseReference(raw)
		if err != nil {
			return
		}
		if _, err := r.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}
