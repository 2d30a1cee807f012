package wire

import (
	"encoding/json"
	"testing"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// TestValidateMeasurementCanonicalises: a measurement value that has an
// RFC 8785 form is kept in it (the daemon canonicalises a plugin's answer
// once, here); one that has none is a protocol error.
func TestValidateMeasurementCanonicalises(t *testing.T) {
	t.Parallel()
	d := sdk.Description{Name: "x", Version: "1"}
	tests := []struct {
		name, in, want string
		bad            bool
	}{
		{name: "object sorted, whitespace dropped", in: `{ "b" : 1.0, "a" : "\u00e9\/" }`, want: `{"a":"é/","b":1}`},
		{name: "already canonical", in: `{"a":[1,true,null]}`, want: `{"a":[1,true,null]}`},
		{name: "number", in: `1e21`, want: `1e+21`},
		{name: "duplicate member", in: `{"a":1,"a":2}`, bad: true},
		{name: "lone surrogate", in: `"\ud800"`, bad: true},
		{name: "invalid UTF-8", in: "\"\xff\"", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &Measurement{Measurements: map[string]json.RawMessage{"k": json.RawMessage(tt.in)}}
			err := ValidateMeasurement(d, m)
			if tt.bad {
				if !IsProtocolError(err) {
					t.Fatalf("ValidateMeasurement(%s) = %v, want a protocol error", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(m.Measurements["k"]); got != tt.want {
				t.Errorf("value kept as %s, want %s", got, tt.want)
			}
		})
	}
}
