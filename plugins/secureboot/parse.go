package secureboot

import (
	"errors"
	"fmt"
)

// GlobalVariableGUID is EFI_GLOBAL_VARIABLE, the vendor GUID of the
// SecureBoot and SetupMode variables (UEFI specification, section 3.3).
const GlobalVariableGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

// The efivarfs file names of the two variables this plugin reads.
const (
	SecureBootFile = "SecureBoot-" + GlobalVariableGUID
	SetupModeFile  = "SetupMode-" + GlobalVariableGUID
)

// EFI variable attribute bits (UEFI specification, GetVariable). efivarfs
// prefixes every variable's value with them as a little-endian uint32.
const (
	AttrNonVolatile                       uint32 = 0x01
	AttrBootserviceAccess                 uint32 = 0x02
	AttrRuntimeAccess                     uint32 = 0x04
	AttrHardwareErrorRecord               uint32 = 0x08
	AttrAuthenticatedWriteAccess          uint32 = 0x10
	AttrTimeBasedAuthenticatedWriteAccess uint32 = 0x20
	AttrAppendWrite                       uint32 = 0x40
	AttrEnhancedAuthenticatedAccess       uint32 = 0x80

	knownAttrs = AttrNonVolatile | AttrBootserviceAccess | AttrRuntimeAccess |
		AttrHardwareErrorRecord | AttrAuthenticatedWriteAccess |
		AttrTimeBasedAuthenticatedWriteAccess | AttrAppendWrite |
		AttrEnhancedAuthenticatedAccess
)

// attrLen is the size of the attribute prefix of an efivarfs file.
const attrLen = 4

// ErrEmpty is returned for a variable file with no bytes at all.
var ErrEmpty = errors.New("empty: 0 bytes, want 4 attribute bytes followed by the value")

// Variable is one EFI variable as efivarfs presents it.
type Variable struct {
	// Attributes are the variable's EFI attribute bits.
	Attributes uint32
	// Value is the variable's data, after the attribute bytes.
	Value []byte
}

// ParseVariable splits the bytes of an efivarfs file into attributes and
// value. It refuses a file shorter than the attribute prefix, a variable
// with no value, attribute bits the UEFI specification does not define, and
// a variable without RUNTIME_ACCESS (efivarfs only ever shows runtime
// variables, so such a file did not come from the firmware).
func ParseVariable(data []byte) (Variable, error) {
	switch {
	case len(data) == 0:
		return Variable{}, ErrEmpty
	case len(data) < attrLen:
		return Variable{}, fmt.Errorf("truncated: %d bytes, want 4 attribute bytes followed by the value", len(data))
	case len(data) == attrLen:
		return Variable{}, errors.New("truncated: 4 attribute bytes but no value")
	}
	attrs := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
	if unknown := attrs &^ knownAttrs; unknown != 0 {
		return Variable{}, fmt.Errorf("attributes 0x%08x have bits 0x%08x that UEFI does not define", attrs, unknown)
	}
	if attrs&AttrRuntimeAccess == 0 {
		return Variable{}, fmt.Errorf("attributes 0x%08x lack RUNTIME_ACCESS (0x04)", attrs)
	}
	return Variable{Attributes: attrs, Value: data[attrLen:]}, nil
}

// ParseBool parses a one-byte boolean variable such as SecureBoot or
// SetupMode: the attribute bytes, then exactly one byte, 0x00 or 0x01.
func ParseBool(data []byte) (bool, Variable, error) {
	v, err := ParseVariable(data)
	if err != nil {
		return false, v, err
	}
	if len(v.Value) != 1 {
		return false, v, fmt.Errorf("value is %d bytes, want exactly 1", len(v.Value))
	}
	switch v.Value[0] {
	case 0:
		return false, v, nil
	case 1:
		return true, v, nil
	}
	return false, v, fmt.Errorf("value 0x%02x is neither 0x00 nor 0x01", v.Value[0])
}
