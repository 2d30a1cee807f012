package bundle

import (
	"bytes"
	"encoding/json"
	"testing"
)

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `{"b":1,"a":[1,2.5,-0,1e21,1e-7,"x"]}`,
		`{"\u20ac":"\ud83d\ude00","a":"\u0000\u001f\\\"/"}`,
		`{"a":1,"a":2}`, "\"\xff\"", `[[[[[[]]]]]]`, `123456789012345678901234567890`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Canonical(raw)
		if err != nil {
			return
		}
		again, err := Canonical(c)
		if err != nil {
			t.Fatalf("canonical form %q does not canonicalize: %v", c, err)
		}
		if !bytes.Equal(c, again) {
			t.Fatalf("not idempotent:\n%q\n%q", c, again)
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form is not valid JSON: %q", c)
		}
		if Digest(raw) != Digest(c) {
			t.Fatal("digest differs between a document and its canonical form")
		}
	})
}

func FuzzVerify(f *testing.F) {
	b := sample()
	if err := b.Sign(testKey); err != nil {
		f.Fatal(err)
	}
	good, err := json.Marshal(b)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, testKey)
	f.Add([]byte(`{"bundle_hmac":"`+b.BundleHMAC+`"}`), []byte("k"))
	f.Add([]byte(`{"bundle_hmac":null}`), testKey)
	f.Add([]byte(`[]`), testKey)
	f.Fuzz(func(t *testing.T, raw, key []byte) {
		err := Verify(raw, key)
		if err == nil {
			// Whatever verified must survive a round trip through
			// canonicalization.
			c, cerr := Canonical(raw)
			if cerr != nil {
				t.Fatalf("verified a document that does not canonicalize: %v", cerr)
			}
			if err := Verify(c, key); err != nil {
				t.Fatalf("canonical form of a verified bundle does not verify: %v", err)
			}
		}
		_, _ = SigningInput(raw)
	})
}
