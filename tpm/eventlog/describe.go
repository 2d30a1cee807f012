package eventlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Event types this package reads (TCG PC Client Platform Firmware Profile,
// 10.4.1).
const (
	evNoAction        = 0x00000003
	evSeparator       = 0x00000004
	evIPL             = 0x0000000D
	evEFIVariableDrv  = 0x80000001
	evEFIVariableBoot = 0x80000002
	evEFIBootApp      = 0x80000003
	evEFIBootDriver   = 0x80000004
	evEFIRuntimeDrv   = 0x80000005
	evEFIVariableAuth = 0x800000E0
	evEFIVariableBt2  = 0x8000000C
)

var typeNames = map[uint32]string{
	0x00000000: "EV_PREBOOT_CERT",
	0x00000001: "EV_POST_CODE",
	0x00000002: "EV_UNUSED",
	0x00000003: "EV_NO_ACTION",
	0x00000004: "EV_SEPARATOR",
	0x00000005: "EV_ACTION",
	0x00000006: "EV_EVENT_TAG",
	0x00000007: "EV_S_CRTM_CONTENTS",
	0x00000008: "EV_S_CRTM_VERSION",
	0x00000009: "EV_CPU_MICROCODE",
	0x0000000A: "EV_PLATFORM_CONFIG_FLAGS",
	0x0000000B: "EV_TABLE_OF_DEVICES",
	0x0000000C: "EV_COMPACT_HASH",
	0x0000000D: "EV_IPL",
	0x0000000E: "EV_IPL_PARTITION_DATA",
	0x0000000F: "EV_NONHOST_CODE",
	0x00000010: "EV_NONHOST_CONFIG",
	0x00000011: "EV_NONHOST_INFO",
	0x00000012: "EV_OMIT_BOOT_DEVICE_EVENTS",
	0x80000000: "EV_EFI_EVENT_BASE",
	0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
	0x80000002: "EV_EFI_VARIABLE_BOOT",
	0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
	0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
	0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
	0x80000006: "EV_EFI_GPT_EVENT",
	0x80000007: "EV_EFI_ACTION",
	0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
	0x80000009: "EV_EFI_HANDOFF_TABLES",
	0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
	0x8000000B: "EV_EFI_HANDOFF_TABLES2",
	0x8000000C: "EV_EFI_VARIABLE_BOOT2",
	0x80000010: "EV_EFI_HCRTM_EVENT",
	0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
	0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB",
	0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}

// TypeName returns the TCG name of a firmware event type, or "EV_0x%08x"
// for a type the TCG does not define (vendor firmware emits many).
func TypeName(t uint32) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("EV_0x%08x", t)
}

// TypeByName is TypeName's inverse.
func TypeByName(name string) (uint32, bool) {
	for t, n := range typeNames {
		if n == name {
			return t, true
		}
	}
	var t uint32
	if _, err := fmt.Sscanf(name, "EV_0x%08x", &t); err == nil && fmt.Sprintf("EV_0x%08x", t) == name {
		return t, true
	}
	return 0, false
}

// maxDescription bounds a description: a name for a human, not the data.
const maxDescription = 200

// Description says in a few words what an event measured: the file path
// of an EFI application or driver, the name of an EFI variable, the text
// of a GRUB command or kernel command line, a systemd event's string. It
// is read from the event data, which the PCRs do not vouch for (only the
// digest is), so it names the event for a human and is never compared.
func (e Event) Description() string {
	var s string
	switch {
	case e.Source == Userspace:
		s = string(e.Data)
	case e.Type == evEFIBootApp || e.Type == evEFIBootDriver || e.Type == evEFIRuntimeDrv:
		s = imagePath(e.Data)
	case e.Type == evEFIVariableDrv || e.Type == evEFIVariableBoot || e.Type == evEFIVariableAuth || e.Type == evEFIVariableBt2:
		if v, ok := parseVariable(e.Data); ok {
			s = v.name
		}
	case e.Type == evSeparator:
		if len(e.Data) == 4 {
			s = fmt.Sprintf("0x%08x", binary.LittleEndian.Uint32(e.Data))
		}
	default:
		s = printable(e.Data)
	}
	return clip(s)
}

func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxDescription {
		cut := maxDescription
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// printable returns data as text when it is mostly printable ASCII (GRUB
// commands, EFI actions, version strings; one trailing NUL allowed).
func printable(data []byte) string {
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return ""
	}
	for _, c := range data {
		if (c < 0x20 && c != '\t' && c != '\n') || c > 0x7e {
			return utf16String(data)
		}
	}
	return string(data)
}

// utf16String reads data as UTF-16LE text (firmware version strings),
// returning "" when it is not.
func utf16String(data []byte) string {
	if len(data)%2 != 0 || len(data) == 0 {
		return ""
	}
	u := make([]uint16, 0, len(data)/2)
	for i := 0; i+1 < len(data); i += 2 {
		c := binary.LittleEndian.Uint16(data[i:])
		if c == 0 {
			break
		}
		if c < 0x20 || c > 0x7e {
			return ""
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// variable is a UEFI_VARIABLE_DATA (TCG PC Client PFP 10.4.8): the
// variable's GUID, its name, and its data.
type variable struct {
	guid [16]byte
	name string
	data []byte
}

// parseVariable parses a UEFI_VARIABLE_DATA.
func parseVariable(b []byte) (variable, bool) {
	const hdr = 16 + 8 + 8
	if len(b) < hdr {
		return variable{}, false
	}
	var v variable
	copy(v.guid[:], b)
	nameLen := binary.LittleEndian.Uint64(b[16:])
	dataLen := binary.LittleEndian.Uint64(b[24:])
	rest := uint64(len(b) - hdr)
	if nameLen > rest/2 || dataLen > rest-2*nameLen {
		return variable{}, false
	}
	u := make([]uint16, nameLen)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[hdr+2*i:])
	}
	v.name = string(utf16.Decode(u))
	start := uint64(hdr) + 2*nameLen
	v.data = b[start : start+dataLen]
	return v, true
}

// imagePath returns the file path in the device path of a
// UEFI_IMAGE_LOAD_EVENT (TCG PC Client PFP 10.4.3): the media file path
// nodes, joined ("\EFI\fedora\shimx64.efi"), or the kind of the last
// node when there is no file path (a PCI option ROM, firmware volume).
func imagePath(b []byte) string {
	const hdr = 8 * 4 // location, length, link-time address, device path length
	if len(b) < hdr {
		return ""
	}
	n := binary.LittleEndian.Uint64(b[24:])
	if n > uint64(len(b)-hdr) {
		return ""
	}
	if n == 0 {
		// shim and GRUB load the kernel from a buffer: the size tells
		// which image it was.
		return fmt.Sprintf("image in memory, %d bytes, no device path", binary.LittleEndian.Uint64(b[8:]))
	}
	dp := b[hdr : hdr+int(n)]
	var parts []string
	last := ""
	for len(dp) >= 4 {
		typ, sub := dp[0], dp[1]
		size := int(binary.LittleEndian.Uint16(dp[2:]))
		if size < 4 || size > len(dp) {
			break
		}
		node := dp[4:size]
		switch {
		case typ == 0x7f: // end of the device path (instance)
		case typ == 0x04 && sub == 0x04: // media: file path
			if p := utf16Path(node); p != "" {
				parts = append(parts, p)
			}
		case typ == 0x04 && sub == 0x06:
			last = "firmware file"
		case typ == 0x04 && sub == 0x07:
			last = "firmware volume"
		case typ == 0x01 && sub == 0x01:
			last = "PCI device"
		case typ == 0x04 && sub == 0x08:
			last = "PCI option ROM"
		}
		dp = dp[size:]
	}
	if len(parts) == 0 {
		return last
	}
	p := strings.Join(parts, "\\")
	return strings.ReplaceAll(p, "\\\\", "\\")
}

func utf16Path(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
