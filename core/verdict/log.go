package verdict

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-ai/runtime-attestor/core/evidence"
)

// ContentType is the content_type of the verdict log's records.
const ContentType = "runtime-attestor-verdict"

// Limits of the verdict log a parser accepts.
const (
	// MaxRecord bounds one record (one line).
	MaxRecord = 64 << 10
	// MaxLog bounds the whole log; the daemon stops measuring (and says
	// so) rather than grow it beyond.
	MaxLog = evidence.MaxVerdictLog
)

// Record is one record of the verdict log: a TCG canonical event log
// (CEL) record in its JSON encoding, as systemd writes
// /run/log/systemd/tpm2-measure.log, with recnum.
type Record struct {
	RecNum      uint64   `json:"recnum"`
	PCR         int      `json:"pcr"`
	Digests     []Digest `json:"digests"`
	ContentType string   `json:"content_type"`
	Content     Content  `json:"content"`
}

// Digest is one digest of a record.
type Digest struct {
	HashAlg string `json:"hashAlg"`
	Digest  string `json:"digest"`
}

// Content is a record's content: the verdict extended, the measurements
// its measurements_sha256 is the digest of, and, not covered by the
// extended digest, when and in which attestation the daemon reached it.
type Content struct {
	Verdict      Verdict      `json:"verdict"`
	Measurements Measurements `json:"measurements"`
	// Time is the bundle's timestamp; Sequence its sequence; BundleDigest
	// its bundle_digest (bundle.ContentDigest), lowercase hex. The daemon
	// asserts them; the TPM does not.
	Time         string `json:"time"`
	Sequence     uint64 `json:"sequence"`
	BundleDigest string `json:"bundle_digest"`
}

// Encode returns r as one line of the log.
func (r Record) Encode() ([]byte, error) {
	if r.Content.Verdict.FindingCodes == nil {
		r.Content.Verdict.FindingCodes = []string{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode verdict record: %w", err)
	}
	return append(b, '\n'), nil
}

// Parse parses a verdict log: one JSON record per line, each optionally
// preceded by the RS character (0x1E) of RFC 7464 as systemd writes its
// log. It checks each record's form, that recnum counts from 0, that every
// record is for pcr and that its SHA-256 digest is the digest of its
// verdict, and its measurements_sha256 that of its measurements. It does
// not replay: see Replay.
func Parse(data []byte, pcr int) ([]Record, error) {
	if len(data) > MaxLog {
		return nil, fmt.Errorf("verdict log is %d bytes, more than %d", len(data), MaxLog)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		return nil, errors.New("verdict log: the last record is not ended by a newline (cut short?)")
	}
	var out []Record
	for n := 1; len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		line := bytes.TrimPrefix(data[:i], []byte{0x1e})
		data = data[i+1:]
		r, err := parseRecord(line, pcr, uint64(len(out)))
		if err != nil {
			return nil, fmt.Errorf("verdict log line %d: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRecord(line []byte, pcr int, recnum uint64) (Record, error) {
	if len(line) > MaxRecord {
		return Record{}, fmt.Errorf("record is %d bytes, more than %d", len(line), MaxRecord)
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("not a verdict record: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("data after the record")
	}
	switch {
	case r.RecNum != recnum:
		return Record{}, fmt.Errorf("recnum %d, want %d (records removed, added or reordered)", r.RecNum, recnum)
	case r.PCR != pcr:
		return Record{}, fmt.Errorf("pcr %d, want %d", r.PCR, pcr)
	case r.ContentType != ContentType:
		return Record{}, fmt.Errorf("content_type %q, want %q", clip(r.ContentType), ContentType)
	case len(r.Digests) != 1 || r.Digests[0].HashAlg != "sha256":
		return Record{}, errors.New(`digests: want exactly one, {"hashAlg": "sha256"}`)
	case r.Content.Verdict.VerdictVersion != Version:
		return Record{}, fmt.Errorf("verdict_version %d, this reader reads %d", r.Content.Verdict.VerdictVersion, Version)
	case !r.Content.Verdict.State.Valid():
		return Record{}, fmt.Errorf("verdict state %q is not a state", clip(string(r.Content.Verdict.State)))
	}
	d, err := r.Digest()
	if err != nil {
		return Record{}, err
	}
	want, err := r.Content.Verdict.Digest()
	if err != nil {
		return Record{}, err
	}
	if subtle.ConstantTimeCompare(d, want) != 1 {
		return Record{}, errors.New("its digest is not the SHA-256 of its verdict (edited record)")
	}
	md, err := digestJSON(r.Content.Measurements)
	if err != nil {
		return Record{}, err
	}
	if hex.EncodeToString(md) != r.Content.Verdict.MeasurementsSHA256 {
		return Record{}, errors.New("its measurements are not those its verdict's measurements_sha256 is the digest of (edited record)")
	}
	return r, nil
}

// Digest returns the record's SHA-256 digest.
func (r Record) Digest() ([]byte, error) {
	if len(r.Digests) != 1 {
		return nil, errors.New("record has no single digest")
	}
	d, err := hex.DecodeString(r.Digests[0].Digest)
	if err != nil || len(d) != sha256.Size || hex.EncodeToString(d) != r.Digests[0].Digest {
		return nil, errors.New("digest is not 64 lowercase hex digits")
	}
	return d, nil
}

// Extend returns SHA-256(pcr || digest): a TPM's PCR extend.
func Extend(pcr, digest []byte) []byte {
	h := sha256.New()
	h.Write(pcr)
	h.Write(digest)
	return h.Sum(nil)
}

// Replay returns the PCR value records extend a zero PCR to.
func Replay(records []Record) ([]byte, error) {
	v := make([]byte, sha256.Size)
	for _, r := range records {
		d, err := r.Digest()
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", r.RecNum, err)
		}
		v = Extend(v, d)
	}
	return v, nil
}

// Check parses data, replays it and compares with the PCR value quoted
// (constant time).
func Check(data []byte, pcr int, quoted []byte) ([]Record, error) {
	recs, err := Parse(data, pcr)
	if err != nil {
		return nil, err
	}
	v, err := Replay(recs)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(v, quoted) != 1 {
		return nil, fmt.Errorf("the verdict log (%d records) replays PCR %d to %x, but the TPM holds %x: records are missing, added or forged, or something else extended the PCR", len(recs), pcr, v, quoted)
	}
	return recs, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
