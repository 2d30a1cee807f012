package attest

import (
	"encoding/binary"
	"fmt"
)

// reader decodes the big-endian TPM wire format from a byte slice. Every
// read that runs past the end fails with an error naming what was being read
// and where, so a parse error says which field of which structure is bad.
type reader struct {
	what string // the structure being parsed, for errors
	b    []byte
	off  int
}

func newReader(what string, b []byte) *reader { return &reader{what: what, b: b} }

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: at byte %d: %s", r.what, r.off, fmt.Sprintf(format, args...))
}

func (r *reader) need(n int, field string) error {
	if n < 0 || len(r.b)-r.off < n {
		return r.errorf("%s: need %d bytes, %d left", field, n, len(r.b)-r.off)
	}
	return nil
}

func (r *reader) u8(field string) (uint8, error) {
	if err := r.need(1, field); err != nil {
		return 0, err
	}
	v := r.b[r.off]
	r.off++
	return v, nil
}

func (r *reader) u16(field string) (uint16, error) {
	if err := r.need(2, field); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v, nil
}

func (r *reader) u32(field string) (uint32, error) {
	if err := r.need(4, field); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v, nil
}

func (r *reader) u64(field string) (uint64, error) {
	if err := r.need(8, field); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v, nil
}

func (r *reader) bytes(n int, field string) ([]byte, error) {
	if err := r.need(n, field); err != nil {
		return nil, err
	}
	v := append([]byte(nil), r.b[r.off:r.off+n]...)
	r.off += n
	return v, nil
}

// tpm2b reads a TPM2B: a 16-bit size, then that many bytes, at most max.
func (r *reader) tpm2b(field string, max int) ([]byte, error) {
	n, err := r.u16(field + " size")
	if err != nil {
		return nil, err
	}
	if int(n) > max {
		return nil, r.errorf("%s: size %d is larger than the limit of %d", field, n, max)
	}
	return r.bytes(int(n), field)
}

// end fails unless every byte was consumed.
func (r *reader) end() error {
	if r.off != len(r.b) {
		return r.errorf("%d trailing bytes", len(r.b)-r.off)
	}
	return nil
}

// writer encodes the TPM wire format.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *writer) tpm2b(v []byte) {
	w.u16(uint16(len(v)))
	w.b = append(w.b, v...)
}
