package ostree

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"
)

// This file reads the two GVariant serializations the fallback needs:
// the a{sv} that ostree-prepare-root writes to /run/ostree-booted, and an
// ostree commit object, (a{sv}aya(say)sstayay). Both are written by GLib
// in its serialized normal form, in the machine's byte order; this reader
// takes little-endian, the order of every machine the product runs on
// (x86-64, aarch64). It is pure and refuses anything out of bounds.

// maxVarDictEntries bounds a dictionary: the record has a handful of keys,
// a commit's metadata a few dozen.
const maxVarDictEntries = 4096

// Variant is one value of an a{sv}: its GVariant type string and its
// serialized bytes.
type Variant struct {
	Type string
	Data []byte
}

// VarDict is a parsed a{sv}.
type VarDict map[string]Variant

// offsetSize is the size of a framing offset in a container of n bytes.
func offsetSize(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= 0xff:
		return 1
	case n <= 0xffff:
		return 2
	case int64(n) <= 0xffffffff:
		return 4
	}
	return 8
}

// readOffset reads the framing offset at data[at:at+size].
func readOffset(data []byte, at, size int) (int, error) {
	if at < 0 || at+size > len(data) {
		return 0, errors.New("framing offset out of bounds")
	}
	var v uint64
	switch size {
	case 1:
		v = uint64(data[at])
	case 2:
		v = uint64(binary.LittleEndian.Uint16(data[at:]))
	case 4:
		v = uint64(binary.LittleEndian.Uint32(data[at:]))
	case 8:
		v = binary.LittleEndian.Uint64(data[at:])
	}
	if v > uint64(len(data)) {
		return 0, fmt.Errorf("framing offset %d beyond the container's %d bytes", v, len(data))
	}
	return int(v), nil
}

func align8(n int) int { return (n + 7) &^ 7 }

// ParseVarDict parses a serialized a{sv}. An empty input is an empty
// dictionary (GVariant's serialization of an empty array), which is also
// what an older ostree-prepare-root leaves in /run/ostree-booted.
func ParseVarDict(data []byte) (VarDict, error) {
	d := VarDict{}
	n := len(data)
	if n == 0 {
		return d, nil
	}
	osz := offsetSize(n)
	tableStart, err := readOffset(data, n-osz, osz)
	if err != nil {
		return nil, fmt.Errorf("a{sv}: %w", err)
	}
	tableLen := n - tableStart
	if tableLen <= 0 || tableLen%osz != 0 {
		return nil, fmt.Errorf("a{sv}: framing table of %d bytes is not a multiple of %d", tableLen, osz)
	}
	count := tableLen / osz
	if count > maxVarDictEntries {
		return nil, fmt.Errorf("a{sv}: %d entries, more than %d", count, maxVarDictEntries)
	}
	start := 0
	for i := 0; i < count; i++ {
		end, err := readOffset(data, tableStart+i*osz, osz)
		if err != nil {
			return nil, fmt.Errorf("a{sv} entry %d: %w", i, err)
		}
		start = align8(start)
		if start > end || end > tableStart {
			return nil, fmt.Errorf("a{sv} entry %d: bounds %d..%d out of order", i, start, end)
		}
		k, v, err := parseDictEntry(data[start:end])
		if err != nil {
			return nil, fmt.Errorf("a{sv} entry %d: %w", i, err)
		}
		d[k] = v
		start = end
	}
	return d, nil
}

// parseDictEntry parses one {sv}: the key, padding to 8, the variant, and
// the framing offset of the key's end.
func parseDictEntry(e []byte) (string, Variant, error) {
	osz := offsetSize(len(e))
	if osz == 0 {
		return "", Variant{}, errors.New("empty dictionary entry")
	}
	keyEnd, err := readOffset(e, len(e)-osz, osz)
	if err != nil {
		return "", Variant{}, err
	}
	body := len(e) - osz
	if keyEnd > body {
		return "", Variant{}, errors.New("key runs past the entry")
	}
	key, err := parseString(e[:keyEnd])
	if err != nil {
		return "", Variant{}, fmt.Errorf("key: %w", err)
	}
	vstart := align8(keyEnd)
	if vstart > body {
		return "", Variant{}, fmt.Errorf("key %q: no value", clip(key, 80))
	}
	v, err := parseVariant(e[vstart:body])
	if err != nil {
		return "", Variant{}, fmt.Errorf("key %q: %w", clip(key, 80), err)
	}
	return key, v, nil
}

// parseVariant splits a serialized variant into its value and type string
// (after the last NUL byte).
func parseVariant(v []byte) (Variant, error) {
	i := bytes.LastIndexByte(v, 0)
	if i < 0 {
		return Variant{}, errors.New("variant without a type string")
	}
	t := string(v[i+1:])
	if t == "" || len(t) > 255 || !printableASCII(t) {
		return Variant{}, fmt.Errorf("variant type %q is not a type string", clip(t, 80))
	}
	return Variant{Type: t, Data: v[:i]}, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseString parses a serialized s: UTF-8 bytes ended by one NUL.
func parseString(b []byte) (string, error) {
	if len(b) == 0 || b[len(b)-1] != 0 {
		return "", errors.New("string not NUL-terminated")
	}
	s := b[:len(b)-1]
	if bytes.IndexByte(s, 0) >= 0 {
		return "", errors.New("NUL byte inside a string")
	}
	if !utf8.Valid(s) {
		return "", errors.New("string is not valid UTF-8")
	}
	return string(s), nil
}

// Bool returns a b value.
func (v Variant) Bool() (bool, error) {
	if v.Type != "b" || len(v.Data) != 1 || v.Data[0] > 1 {
		return false, fmt.Errorf("not a boolean (type %q, %d bytes)", v.Type, len(v.Data))
	}
	return v.Data[0] == 1, nil
}

// Str returns an s value.
func (v Variant) Str() (string, error) {
	if v.Type != "s" {
		return "", fmt.Errorf("not a string (type %q)", v.Type)
	}
	return parseString(v.Data)
}

// Uint64Pair returns a (tt) value.
func (v Variant) Uint64Pair() (uint64, uint64, error) {
	if v.Type != "(tt)" || len(v.Data) != 16 {
		return 0, 0, fmt.Errorf("not a (tt) pair (type %q, %d bytes)", v.Type, len(v.Data))
	}
	return binary.LittleEndian.Uint64(v.Data), binary.LittleEndian.Uint64(v.Data[8:]), nil
}

// Commit is the part of an ostree commit object the fallback reads.
type Commit struct {
	Metadata VarDict
	// Parent is the parent commit's checksum, "" for none.
	Parent string
}

// commitOffsets is the number of framing offsets in a commit tuple
// (a{sv}aya(say)sstayay): one per variable-size member but the last.
const commitOffsets = 6

// ParseCommit parses an ostree commit object (objects/xx/….commit).
func ParseCommit(data []byte) (*Commit, error) {
	n := len(data)
	osz := offsetSize(n)
	if n < commitOffsets*osz+8 {
		return nil, fmt.Errorf("commit object of %d bytes is too short", n)
	}
	// Offsets are stored last-member-first: the a{sv}'s end is the final
	// one, the parent's the one before it.
	metaEnd, err := readOffset(data, n-osz, osz)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	parentEnd, err := readOffset(data, n-2*osz, osz)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	if metaEnd > parentEnd || parentEnd > n-commitOffsets*osz {
		return nil, errors.New("commit: member bounds out of order")
	}
	meta, err := ParseVarDict(data[:metaEnd])
	if err != nil {
		return nil, fmt.Errorf("commit metadata: %w", err)
	}
	c := &Commit{Metadata: meta}
	switch parent := data[metaEnd:parentEnd]; len(parent) {
	case 0:
	case 32:
		c.Parent = hex.EncodeToString(parent)
	default:
		return nil, fmt.Errorf("commit: parent checksum of %d bytes, want 32", len(parent))
	}
	return c, nil
}

// MetaString returns a string from the commit's metadata, "" when absent.
func (c *Commit) MetaString(key string) (string, error) {
	v, ok := c.Metadata[key]
	if !ok {
		return "", nil
	}
	s, err := v.Str()
	if err != nil {
		return "", fmt.Errorf("commit metadata %s: %w", key, err)
	}
	return s, nil
}
