package secureboot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseBool(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name    string
		data    []byte
		want    bool
		attrs   uint32
		wantErr string
	}{
		{"on BS|RT", []byte{0x06, 0, 0, 0, 0x01}, true, 0x06, ""},
		{"off BS|RT", []byte{0x06, 0, 0, 0, 0x00}, false, 0x06, ""},
		{"on NV|BS|RT", []byte{0x07, 0, 0, 0, 0x01}, true, 0x07, ""},
		{"authenticated write bits allowed", []byte{0x27, 0, 0, 0, 0x01}, true, 0x27, ""},
		{"empty", nil, false, 0, "empty: 0 bytes"},
		{"one byte", []byte{0x06}, false, 0, "truncated: 1 bytes"},
		{"three bytes", []byte{0x06, 0, 0}, false, 0, "truncated: 3 bytes"},
		{"attributes only", []byte{0x06, 0, 0, 0}, false, 0, "4 attribute bytes but no value"},
		{"value 2", []byte{0x06, 0, 0, 0, 0x02}, false, 0x06, "value 0x02 is neither 0x00 nor 0x01"},
		{"value 0xff", []byte{0x06, 0, 0, 0, 0xff}, false, 0x06, "value 0xff is neither"},
		{"two-byte value", []byte{0x06, 0, 0, 0, 0x01, 0x00}, false, 0x06, "value is 2 bytes, want exactly 1"},
		{"unknown attribute bit", []byte{0x06, 0x01, 0, 0, 0x01}, false, 0, "bits 0x00000100 that UEFI does not define"},
		{"high attribute bit", []byte{0x06, 0, 0, 0x80, 0x01}, false, 0, "bits 0x80000000"},
		{"no runtime access", []byte{0x02, 0, 0, 0, 0x01}, false, 0, "lack RUNTIME_ACCESS"},
		{"text", []byte("hello world\n"), false, 0, "UEFI does not define"},
	} {
		got, v, err := ParseBool(tc.data)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Test %d (%s): err = %v, want containing %q", i, tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Test %d (%s): unexpected error %v", i, tc.name, err)
			continue
		}
		if got != tc.want || v.Attributes != tc.attrs {
			t.Errorf("Test %d (%s): got %v attrs 0x%x, want %v attrs 0x%x", i, tc.name, got, v.Attributes, tc.want, tc.attrs)
		}
	}
}

func TestParseVariableKeepsValue(t *testing.T) {
	t.Parallel()
	// BootCurrent: a UINT16, not a boolean; ParseVariable still splits it.
	v, err := ParseVariable([]byte{0x06, 0, 0, 0, 0x03, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	if v.Attributes != AttrBootserviceAccess|AttrRuntimeAccess || string(v.Value) != "\x03\x00" {
		t.Fatalf("got %+v", v)
	}
}

// TestParseFixtures parses every fixture variable in testdata: each is in
// the exact efivarfs format (4 attribute bytes, then the value).
func TestParseFixtures(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		dir              string
		secureBoot, mode bool
		attrs            uint32
	}{
		{"enabled", true, false, 0x06},
		{"disabled", false, false, 0x06},
		{"setup_mode", false, true, 0x06},
		{"enabled_nv", true, false, 0x07},
	} {
		for _, v := range []struct {
			file string
			want bool
		}{{SecureBootFile, tc.secureBoot}, {SetupModeFile, tc.mode}} {
			data, err := os.ReadFile(filepath.Join("testdata", tc.dir, "efivars", v.file))
			if err != nil {
				t.Fatal(err)
			}
			got, variable, err := ParseBool(data)
			if err != nil || got != v.want || variable.Attributes != tc.attrs {
				t.Errorf("Test %d (%s/%s): got %v attrs 0x%x err %v; want %v attrs 0x%x", i, tc.dir, v.file, got, variable.Attributes, err, v.want, tc.attrs)
			}
		}
	}
}

// FuzzParseBool checks that no input panics and that an accepted input is
// exactly 4 attribute bytes with RUNTIME_ACCESS and a 0/1 byte.
func FuzzParseBool(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		got, v, err := ParseBool(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(data) != 5 || data[4] > 1 || got != (data[4] == 1) {
			t.Fatalf("accepted %x as %v", data, got)
		}
		if v.Attributes&AttrRuntimeAccess == 0 || v.Attributes&^knownAttrs != 0 {
			t.Fatalf("accepted attributes 0x%x", v.Attributes)
		}
	})
}
