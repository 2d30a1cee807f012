// Package attest verifies TPM 2.0 quotes without a TPM: it parses the
// signed TPMS_ATTEST structure, the TPMT_SIGNATURE over it and the
// attestation key's TPMT_PUBLIC from their wire bytes, and checks a quote
// against what the verifier expects (magic, type, nonce, PCR selection,
// PCR digest, signature). It is pure: bytes in, a report out.
//
// Structures follow the TPM 2.0 Library Specification, Part 2: Structures
// (TPMS_ATTEST 10.12.12, TPMS_QUOTE_INFO 10.12.4, TPMS_CLOCK_INFO 10.11.1,
// TPML_PCR_SELECTION 10.9.7, TPMT_SIGNATURE 11.3.4, TPMT_PUBLIC 12.2.4).
package attest

import (
	"sort"
)

// Constants of the TPMS_ATTEST header.
const (
	// GeneratedValue is TPM_GENERATED_VALUE, the magic that only a TPM puts
	// at the start of the structures it signs.
	GeneratedValue uint32 = 0xff544347
	// STAttestQuote is TPM_ST_ATTEST_QUOTE, the type of a TPM2_Quote.
	STAttestQuote uint16 = 0x8018
)

// Parsing limits. They are above anything a TPM produces and bound what a
// hostile input can make the parser allocate.
const (
	maxName       = 2 + 64 // TPM2B_NAME: hash algorithm + largest digest
	maxData       = 2 + 64 // TPM2B_DATA: sizeof(TPMT_HA)
	maxDigest     = 64     // TPM2B_DIGEST: largest digest
	maxBanks      = 16     // TPML_PCR_SELECTION count (HASH_COUNT)
	maxSelectSize = 32     // sizeofSelect: 256 PCRs
	maxAttested   = 2048   // the attested union of a non-quote type
)

// ClockInfo is TPMS_CLOCK_INFO: the TPM's clock and its reset and restart
// counters when the structure was signed.
type ClockInfo struct {
	// Clock is milliseconds the TPM has been powered, persisted across resets.
	Clock uint64 `json:"clock"`
	// ResetCount counts TPM Resets (reboots) since the last TPM2_Clear.
	ResetCount uint32 `json:"reset_count"`
	// RestartCount counts TPM Restarts/Resumes (suspend) since the last Reset.
	RestartCount uint32 `json:"restart_count"`
	// Safe is set when no greater Clock value has ever been reported.
	Safe bool `json:"safe"`
}

// PCRSelection is one TPMS_PCR_SELECTION: a PCR bank (hash algorithm) and a
// bitmap of PCR indices.
type PCRSelection struct {
	Hash   uint16
	Bitmap []byte // sizeofSelect bytes; bit i of byte j selects PCR 8*j+i
}

// PCRs returns the selected PCR indices in increasing order.
func (s PCRSelection) PCRs() []int {
	var out []int
	for j, b := range s.Bitmap {
		for i := 0; i < 8; i++ {
			if b&(1<<i) != 0 {
				out = append(out, 8*j+i)
			}
		}
	}
	return out
}

// NewPCRSelection selects pcrs (each 0..255) in the bank hash, with a
// bitmap of at least 3 bytes (PCR_SELECT_MIN).
func NewPCRSelection(hash uint16, pcrs []int) PCRSelection {
	size := 3
	for _, p := range pcrs {
		if p/8+1 > size {
			size = p/8 + 1
		}
	}
	bm := make([]byte, size)
	for _, p := range pcrs {
		bm[p/8] |= 1 << (p % 8)
	}
	return PCRSelection{Hash: hash, Bitmap: bm}
}

// QuoteInfo is TPMS_QUOTE_INFO: the PCRs quoted and the digest of their
// values.
type QuoteInfo struct {
	Selection []PCRSelection
	PCRDigest []byte
}

// Attest is a parsed TPMS_ATTEST.
type Attest struct {
	Magic           uint32
	Type            uint16
	QualifiedSigner []byte
	ExtraData       []byte
	Clock           ClockInfo
	FirmwareVersion uint64
	// Quote is set when Type is STAttestQuote.
	Quote *QuoteInfo
	// Attested holds the attested union verbatim for any other type.
	Attested []byte
}

// ParseAttest parses the bytes of a TPMS_ATTEST (the contents of a
// TPM2B_ATTEST, exactly what the TPM signed). It judges only the structure:
// a wrong magic or type still parses, so that Verify can name the problem.
// For a type other than TPM_ST_ATTEST_QUOTE the attested union is kept
// verbatim in Attested.
func ParseAttest(b []byte) (*Attest, error) {
	r := newReader("TPMS_ATTEST", b)
	a := &Attest{}
	var err error
	if a.Magic, err = r.u32("magic"); err != nil {
		return nil, err
	}
	if a.Type, err = r.u16("type"); err != nil {
		return nil, err
	}
	if a.QualifiedSigner, err = r.tpm2b("qualifiedSigner", maxName); err != nil {
		return nil, err
	}
	if a.ExtraData, err = r.tpm2b("extraData", maxData); err != nil {
		return nil, err
	}
	if a.Clock, err = parseClockInfo(r); err != nil {
		return nil, err
	}
	if a.FirmwareVersion, err = r.u64("firmwareVersion"); err != nil {
		return nil, err
	}
	if a.Type != STAttestQuote {
		rest := len(b) - r.off
		if rest > maxAttested {
			return nil, r.errorf("attested: %d bytes is larger than the limit of %d", rest, maxAttested)
		}
		a.Attested, _ = r.bytes(rest, "attested")
		return a, nil
	}
	q := &QuoteInfo{}
	if q.Selection, err = parsePCRSelectionList(r); err != nil {
		return nil, err
	}
	if q.PCRDigest, err = r.tpm2b("pcrDigest", maxDigest); err != nil {
		return nil, err
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	a.Quote = q
	return a, nil
}

func parseClockInfo(r *reader) (ClockInfo, error) {
	var c ClockInfo
	var err error
	if c.Clock, err = r.u64("clockInfo.clock"); err != nil {
		return c, err
	}
	if c.ResetCount, err = r.u32("clockInfo.resetCount"); err != nil {
		return c, err
	}
	if c.RestartCount, err = r.u32("clockInfo.restartCount"); err != nil {
		return c, err
	}
	safe, err := r.u8("clockInfo.safe")
	if err != nil {
		return c, err
	}
	if safe > 1 {
		r.off--
		return c, r.errorf("clockInfo.safe: %d is not a TPMI_YES_NO", safe)
	}
	c.Safe = safe == 1
	return c, nil
}

func parsePCRSelectionList(r *reader) ([]PCRSelection, error) {
	n, err := r.u32("pcrSelect.count")
	if err != nil {
		return nil, err
	}
	if n > maxBanks {
		r.off -= 4
		return nil, r.errorf("pcrSelect.count: %d banks is more than the limit of %d", n, maxBanks)
	}
	out := make([]PCRSelection, 0, n)
	for i := range int(n) {
		var s PCRSelection
		if s.Hash, err = r.u16("pcrSelect.hash"); err != nil {
			return nil, err
		}
		size, err := r.u8("pcrSelect.sizeofSelect")
		if err != nil {
			return nil, err
		}
		if size > maxSelectSize {
			r.off--
			return nil, r.errorf("pcrSelect[%d].sizeofSelect: %d is more than the limit of %d", i, size, maxSelectSize)
		}
		if s.Bitmap, err = r.bytes(int(size), "pcrSelect.pcrSelect"); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Marshal encodes a as TPMS_ATTEST bytes. For a parsed structure it gives
// back exactly the bytes parsed.
func (a *Attest) Marshal() []byte {
	var w writer
	w.u32(a.Magic)
	w.u16(a.Type)
	w.tpm2b(a.QualifiedSigner)
	w.tpm2b(a.ExtraData)
	w.u64(a.Clock.Clock)
	w.u32(a.Clock.ResetCount)
	w.u32(a.Clock.RestartCount)
	if a.Clock.Safe {
		w.u8(1)
	} else {
		w.u8(0)
	}
	w.u64(a.FirmwareVersion)
	if a.Type != STAttestQuote || a.Quote == nil {
		w.b = append(w.b, a.Attested...)
		return w.b
	}
	w.u32(uint32(len(a.Quote.Selection)))
	for _, s := range a.Quote.Selection {
		w.u16(s.Hash)
		w.u8(uint8(len(s.Bitmap)))
		w.b = append(w.b, s.Bitmap...)
	}
	w.tpm2b(a.Quote.PCRDigest)
	return w.b
}

// selectionKey is one (bank, PCR index) pair.
type selectionKey struct {
	hash uint16
	pcr  int
}

// selectionSet flattens selections into the set of (bank, PCR) pairs they
// select; banks with an empty bitmap select nothing.
func selectionSet(sel []PCRSelection) map[selectionKey]bool {
	out := map[selectionKey]bool{}
	for _, s := range sel {
		for _, p := range s.PCRs() {
			out[selectionKey{s.Hash, p}] = true
		}
	}
	return out
}

// sortedInts returns a sorted copy.
func sortedInts(v []int) []int {
	out := append([]int(nil), v...)
	sort.Ints(out)
	return out
}
