package evidence

import (
	"encoding/binary"
	"sort"
)

// TPM2ToolsPCRs encodes SHA-256 PCR values in the "serialized" PCR file
// format that tpm2_quote -o writes and tpm2_checkquote -f reads (tpm2-tools
// 5; the "values" format with -l is not accepted by tpm2_checkquote 5.4).
// The format is tpm2-tools' in-memory structures, little-endian:
//
//	TPML_PCR_SELECTION: uint32 count, 16 x {uint16 hash, uint8 sizeofSelect,
//	                    uint8 pcrSelect[4], 1 pad byte}            132 bytes
//	uint32 n:           how many TPML_DIGEST follow                  4 bytes
//	n x TPML_DIGEST:    uint32 count, 8 x {uint16 size,
//	                    uint8 buffer[64]}                          532 bytes
//
// with the values in increasing PCR order, 8 per TPML_DIGEST.
func TPM2ToolsPCRs(pcrs map[int][]byte) []byte {
	idx := make([]int, 0, len(pcrs))
	for p := range pcrs {
		idx = append(idx, p)
	}
	sort.Ints(idx)
	const (
		selSize    = 4 + 16*8
		digestSize = 2 + 64
		listSize   = 4 + 8*digestSize
	)
	lists := (len(idx) + 7) / 8
	out := make([]byte, selSize+4+lists*listSize)
	le := binary.LittleEndian
	le.PutUint32(out[0:], 1)
	le.PutUint16(out[4:], 0x000b) // TPM_ALG_SHA256
	out[6] = 3
	for _, p := range idx {
		out[7+p/8] |= 1 << (p % 8)
	}
	le.PutUint32(out[selSize:], uint32(lists))
	for i, p := range idx {
		list := selSize + 4 + (i/8)*listSize
		le.PutUint32(out[list:], uint32(min(8, len(idx)-(i/8)*8)))
		d := list + 4 + (i%8)*digestSize
		le.PutUint16(out[d:], uint16(len(pcrs[p])))
		copy(out[d+2:], pcrs[p])
	}
	return out
}
