package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// VerifyReport describes a log (or the part of it before the first break).
type VerifyReport struct {
	// Records is the number of records that verified.
	Records int
	// FirstSeq is the seq of the first record; 1 unless the log continues
	// another file (its first record is "reopened").
	FirstSeq uint64
	// LastSeq is the seq of the last record that verified.
	LastSeq uint64
	// LastHash is the SHA-256 of the last verified line (without its
	// newline): the prev that the next record must carry. Keep it
	// elsewhere to detect later truncation of the log.
	LastHash string
	// FirstPrev is the prev of the first record: ZeroHash, or the hash of
	// the last line of the file this one continues.
	FirstPrev string
	// MACs is the number of records whose MAC was checked with the seed
	// (VerifyWithSeed, VerifyFiles with a seed).
	MACs int
}

// BreakError says where and why a log's chain is broken.
type BreakError struct {
	// Line is the 1-based line number.
	Line int
	// Seq is the seq the record on that line claims, 0 when unreadable.
	Seq uint64
	// Reason says what is wrong.
	Reason string
	// File is the file it is in, when VerifyFiles or VerifyFile read it.
	File string
}

func (e *BreakError) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("record %d (line %d): %s", e.Seq, e.Line, e.Reason)
}

// Reason of the BreakError for a last line that has no newline.
const reasonTorn = "torn final line: no trailing newline"

// chain follows the chain line by line, noting every break and going on
// from the broken line as it is.
type chain struct {
	lines    int
	records  int // lines that verified
	firstSeq uint64
	seq      uint64 // seq of the last readable record
	seqKnown bool   // the last line was readable, so seq is what comes next
	head     string // lineHash of the last line, ZeroHash before any
	first    *BreakError
	last     *BreakError
	breaks   int
	// acked: a chain_broken record appears after the last break.
	acked bool
	// lastInvalidJSON: the last line is not JSON at all.
	lastInvalidJSON bool
	firstPrev       string
	// mac, when set, checks every record's MAC with the seed.
	mac  *macChecker
	macs int
}

func newChain() chain { return chain{head: ZeroHash} }

func (c *chain) brk(seq uint64, reason string) {
	e := &BreakError{Line: c.lines, Seq: seq, Reason: reason}
	if c.first == nil {
		c.first = e
	}
	c.last = e
	c.breaks++
	c.acked = false
}

// add checks one line (without its newline) whose SHA-256 is hash against
// the chain so far.
func (c *chain) add(line []byte, tooLong bool, hash string) {
	c.lines++
	prevHead := c.head
	c.head = hash
	if tooLong {
		c.lastInvalidJSON = false
		c.brk(0, fmt.Sprintf("line longer than %d bytes", MaxLine))
		c.seqKnown = false
		return
	}
	r, reason := parseLine(line)
	c.lastInvalidJSON = r == nil && reason == "not valid JSON"
	if r == nil {
		c.brk(0, reason)
		c.seqKnown = false
		return
	}
	wasKnown, prevSeq := c.seqKnown, c.seq
	c.seq, c.seqKnown = r.Seq, true
	if reason != "" {
		c.brk(r.Seq, reason)
		return
	}
	if c.lines == 1 {
		switch {
		case r.Prev == ZeroHash && r.Seq != 1:
			c.brk(r.Seq, fmt.Sprintf("first record has seq %d, want 1 (records before it were removed)", r.Seq))
			return
		case r.Prev != ZeroHash && r.Type != TypeReopened:
			c.brk(r.Seq, "first record links to a previous line, and is not a \"reopened\" record (records before it were removed)")
			return
		}
	} else {
		if wasKnown && r.Seq != prevSeq+1 {
			c.brk(r.Seq, fmt.Sprintf("seq %d follows %d, want %d (a record was removed, inserted or reordered)", r.Seq, prevSeq, prevSeq+1))
			return
		}
		if r.Prev != prevHead {
			c.brk(r.Seq, "prev does not match the line before (a line was edited, removed, inserted or reordered)")
			return
		}
	}
	if c.mac != nil {
		if reason := c.mac.check(r); reason != "" {
			c.brk(r.Seq, reason)
			return
		}
		if r.Mac != "" {
			c.macs++
		}
	}
	if c.records == 0 && c.first == nil {
		c.firstSeq, c.firstPrev = r.Seq, r.Prev
	}
	if c.first == nil {
		c.records++
	}
	if r.Type == TypeChainBroken && c.last != nil {
		c.acked = true
	}
}

// scanLines feeds every newline-terminated line of r to fn: the line
// without its newline (at most MaxLine+1 bytes of it when tooLong), the
// SHA-256 of the whole line, and the offset just past its newline. It
// returns the number of bytes after the last newline (a torn tail).
func scanLines(r io.Reader, fn func(line []byte, tooLong bool, hash string, end int64)) (tail int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	var buf []byte
	var n int64
	h := sha256.New()
	for {
		chunk, err := br.ReadSlice('\n')
		off += int64(len(chunk))
		n += int64(len(chunk))
		if room := MaxLine + 1 - len(buf); room > 0 {
			buf = append(buf, chunk[:min(len(chunk), room)]...)
		}
		switch {
		case err == nil:
			h.Write(chunk[:len(chunk)-1])
			tooLong := n-1 > MaxLine
			line := buf
			if !tooLong {
				line = buf[:len(buf)-1]
			}
			fn(line, tooLong, hex.EncodeToString(h.Sum(nil)), off)
			buf, n = buf[:0], 0
			h.Reset()
		case errors.Is(err, bufio.ErrBufferFull):
			h.Write(chunk)
		case errors.Is(err, io.EOF):
			return n, nil
		default:
			return 0, err
		}
	}
}

// Verify reads a whole log and checks every line: canonical JSON with
// exactly the six members, a hash that matches the record, seq one more
// than the record before, prev equal to the SHA-256 of the line before (or
// ZeroHash and seq 1 for the first record, unless that record is
// "reopened"), and a trailing newline on the last line. It returns the
// report of the records before the first break and a *BreakError for that
// break, or another error if reading failed.
func Verify(r io.Reader) (VerifyReport, error) {
	return verify(r, nil)
}

// VerifyWithSeed is Verify that also checks the MAC of every record from
// the seed's first_seq on with the keys derived from the seed: a record
// rewritten by anyone without the daemon's key for its seq, even with
// every SHA-256 recomputed, or a MAC stripped, is a break.
func VerifyWithSeed(r io.Reader, seed Seed) (VerifyReport, error) {
	m, err := newMACChecker(seed)
	if err != nil {
		return VerifyReport{}, err
	}
	return verify(r, m)
}

func verify(r io.Reader, m *macChecker) (VerifyReport, error) {
	c := newChain()
	c.mac = m
	var rep VerifyReport
	tail, err := scanLines(r, func(line []byte, tooLong bool, hash string, _ int64) {
		if c.first != nil {
			c.lines++
			return
		}
		c.add(line, tooLong, hash)
		if c.first == nil {
			rep = VerifyReport{Records: c.records, FirstSeq: c.firstSeq, LastSeq: c.seq, LastHash: c.head, FirstPrev: c.firstPrev, MACs: c.macs}
		}
	})
	if err != nil {
		return rep, fmt.Errorf("read audit log: %w", err)
	}
	if c.first != nil {
		return rep, c.first
	}
	if tail > 0 {
		return rep, &BreakError{Line: c.lines + 1, Reason: fmt.Sprintf("%s (%d bytes)", reasonTorn, tail)}
	}
	return rep, nil
}

// VerifyFiles verifies a log kept in several files, oldest first (<path>.3,
// .2, .1, then <path>): each file on its own (Verify, or VerifyWithSeed
// when seed is not nil) and each after the first continuing the one before
// (its first record a "reopened" one whose seq and prev follow the last
// line before). The report covers all the files.
func VerifyFiles(paths []string, seed *Seed) (VerifyReport, error) {
	var m *macChecker
	if seed != nil {
		var err error
		if m, err = newMACChecker(*seed); err != nil {
			return VerifyReport{}, err
		}
	}
	var total VerifyReport
	for i, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return total, fmt.Errorf("verify audit log: %w", err)
		}
		rep, err := verify(f, m)
		f.Close()
		if err != nil {
			var be *BreakError
			if errors.As(err, &be) {
				be.File = path
				if total.Records == 0 {
					total.FirstSeq = rep.FirstSeq
				}
				if rep.Records > 0 {
					total.LastSeq, total.LastHash = rep.LastSeq, rep.LastHash
				}
				total.Records += rep.Records
			}
			return total, fmt.Errorf("verify audit log %s: %w", path, err)
		}
		if i > 0 && rep.Records > 0 && (rep.FirstSeq != total.LastSeq+1 || rep.FirstPrev != total.LastHash) {
			return total, fmt.Errorf("verify audit log %s: its first record (seq %d) does not continue %s (last seq %d): a file is missing, or they are out of order",
				path, rep.FirstSeq, paths[i-1], total.LastSeq)
		}
		if i == 0 || total.Records == 0 {
			total.FirstSeq, total.FirstPrev = rep.FirstSeq, rep.FirstPrev
		}
		total.Records += rep.Records
		total.MACs += rep.MACs
		if rep.Records > 0 {
			total.LastSeq, total.LastHash = rep.LastSeq, rep.LastHash
		}
	}
	return total, nil
}

// VerifyFile verifies the log at path (see Verify).
func VerifyFile(path string) (VerifyReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("verify audit log: %w", err)
	}
	defer f.Close()
	rep, err := Verify(f)
	if err != nil {
		var be *BreakError
		if errors.As(err, &be) {
			be.File = path
			return rep, fmt.Errorf("verify audit log %s: %w", path, be)
		}
		return rep, fmt.Errorf("verify audit log %s: %w", path, err)
	}
	return rep, nil
}
