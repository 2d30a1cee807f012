package verdict

import (
	"os"
	"testing"
)

// FuzzParse: the verdict log parser (the log comes from the appliance,
// an untrusted source for a remote verifier) never panics, and whatever it
// accepts re-encodes to records it accepts again, with the same replay.
func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/genuine.log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(append([]byte{0x1e}, seed...))
	f.Add([]byte("{}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Parse(data, testPCR)
		if err != nil {
			return
		}
		var again []byte
		for _, r := range recs {
			line, err := r.Encode()
			if err != nil {
				t.Fatalf("accepted record does not encode: %v", err)
			}
			again = append(again, line...)
		}
		recs2, err := Parse(again, testPCR)
		if err != nil || len(recs2) != len(recs) {
			t.Fatalf("re-encoded log refused: %v", err)
		}
		a, _ := Replay(recs)
		b, _ := Replay(recs2)
		if string(a) != string(b) {
			t.Fatal("re-encoded log replays to another value")
		}
	})
}
