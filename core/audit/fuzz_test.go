package audit

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzVerify(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Add([]byte(`{"data":{},"hash":"` + ZeroHash + `","prev":"` + ZeroHash + `","seq":1,"time":"2026-01-01T00:00:00Z","type":"start"}` + "\n"))
	f.Add([]byte(`{"seq":1}` + "\n" + `{"seq":2`))
	f.Add([]byte("\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Verify(bytes.NewReader(data))
		var be *BreakError
		if err != nil && !errors.As(err, &be) {
			t.Fatalf("error that is not a break: %v", err)
		}
		if err == nil {
			if n := bytes.Count(data, []byte("\n")); n != rep.Records {
				t.Fatalf("%d lines but %d records verified", n, rep.Records)
			}
			if len(data) > 0 && data[len(data)-1] != '\n' {
				t.Fatal("verified a log without a final newline")
			}
		} else if be.Line < 1 || be.Reason == "" {
			t.Fatalf("break without a line or reason: %+v", be)
		}
	})
}
