package eventlog

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// celRecord is one record of systemd's userspace measurement log
// (/run/log/systemd/tpm2-measure.log): a JSON object in the TCG Canonical
// Event Log's JSON encoding, the records separated as JSON-SEQ (RFC 7464:
// each record starts with RS 0x1E and ends with LF).
type celRecord struct {
	PCR     *int `json:"pcr"`
	Digests []struct {
		HashAlg string `json:"hashAlg"`
		Digest  string `json:"digest"`
	} `json:"digests"`
	ContentType string `json:"content_type"`
	Content     struct {
		String    string `json:"string"`
		EventType string `json:"eventType"`
	} `json:"content"`
}

// ParseCEL parses systemd's userspace measurement log. Records of an NvPCR
// (no "pcr" member) are kept with PCR -1. A record that is not JSON, names
// a PCR out of range, or carries a digest that is not hex of its bank's
// size is an error naming the record.
func ParseCEL(raw []byte) ([]Event, error) {
	if len(raw) > MaxLogSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d are read", ErrTooLarge, len(raw), MaxLogSize)
	}
	var out []Event
	for i, rec := range splitSeq(raw) {
		if len(out) >= MaxEvents {
			return nil, fmt.Errorf("%w: more than %d records", ErrTooLarge, MaxEvents)
		}
		var r celRecord
		dec := json.NewDecoder(bytes.NewReader(rec))
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("record %d is not a CEL-JSON object: %w", i, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("record %d holds more than one JSON value", i)
		}
		e := Event{Source: Userspace, Index: i, PCR: -1, Digests: map[Bank][]byte{}, Data: []byte(r.Content.String)}
		if r.PCR != nil {
			if *r.PCR < 0 || *r.PCR > MaxPCR {
				return nil, fmt.Errorf("record %d names PCR %d, outside 0..%d", i, *r.PCR, MaxPCR)
			}
			e.PCR = *r.PCR
		}
		e.TypeName = r.ContentType
		if r.Content.EventType != "" {
			e.TypeName += ":" + r.Content.EventType
		}
		if e.TypeName == "" {
			e.TypeName = "cel"
		}
		for _, d := range r.Digests {
			b, err := ParseBank(d.HashAlg)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", i, err)
			}
			v, err := hex.DecodeString(d.Digest)
			if err != nil || len(v) != b.Hash().Size() {
				return nil, fmt.Errorf("record %d: %s digest %q is not %d hex-encoded bytes", i, b, clip(d.Digest), b.Hash().Size())
			}
			e.Digests[b] = v
		}
		if e.PCR >= 0 && len(e.Digests) == 0 {
			return nil, fmt.Errorf("record %d extends PCR %d with no digest", i, e.PCR)
		}
		out = append(out, e)
	}
	return out, nil
}

// splitSeq splits a JSON-SEQ text into its records. Plain JSON Lines (no
// RS) are accepted too; blank records are skipped.
func splitSeq(raw []byte) [][]byte {
	sep := []byte{0x1e}
	if !bytes.Contains(raw, sep) {
		sep = []byte{'\n'}
	}
	var out [][]byte
	for _, r := range bytes.Split(raw, sep) {
		if r = bytes.TrimSpace(r); len(r) > 0 {
			out = append(out, r)
		}
	}
	return out
}
