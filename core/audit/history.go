package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// deferMin is the smallest live file whose history Open defers when
// Options.DeferHistory is set: a smaller one is checked at once (about
// 140 records, a few milliseconds).
const deferMin = 64 << 10

// historyChunk is how many lines VerifyHistory checks between pauses.
const historyChunk = 512

// history is the part of the live file that Open resumed without reading
// (Options.DeferHistory): its own descriptor, so that a rotation or a
// replacement of the file does not take it away, and its length.
type history struct {
	f   *os.File
	end int64
}

// tailResume resumes the chain from the file's last line alone: the
// record's seq and the line's hash are all that the next record needs. It
// does so only for a file that ends with a newline and whose last line is
// a readable record that verifies by itself; anything else (a torn or
// unreadable last line, a line longer than MaxLine) reports false, and the
// caller reads the whole file as before. The records before it are checked
// later, by VerifyHistory.
func tailResume(f *os.File, size, min int64) (chain, bool) {
	if size < min || size == 0 {
		return chain{}, false
	}
	n := size
	if max := int64(MaxLine + 2); n > max {
		n = max
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return chain{}, false
	}
	if buf[len(buf)-1] != '\n' {
		return chain{}, false
	}
	start := bytes.LastIndexByte(buf[:len(buf)-1], '\n') + 1
	if start == 0 && n < size {
		return chain{}, false // the line began before the window: longer than MaxLine
	}
	line := buf[start : len(buf)-1]
	r, reason := parseLine(line)
	if r == nil || reason != "" {
		return chain{}, false
	}
	c := newChain()
	c.lines, c.records = 1, 1
	c.seq, c.seqKnown, c.head = r.Seq, true, lineHash(line)
	return c, true
}

// VerifyHistory checks the chain of the records that Open resumed after
// without reading them (Options.DeferHistory), as Open checks them without
// it: a break that no chain_broken record after it acknowledges is logged
// as an error and acknowledged with a chain_broken record, appended now.
// With rate above 0 it paces itself to about that share of one CPU
// (pausing between chunks of lines for the time they took, scaled), so
// that checking a long history leaves the service its CPU quota. It
// returns at once when there is nothing to check (a small or unreadable
// last line made Open read the whole file, or it ran already), and when
// ctx ends, leaving the rest unchecked.
func (l *Log) VerifyHistory(ctx context.Context, rate float64) error {
	l.mu.Lock()
	h := l.history
	l.history = nil
	l.mu.Unlock()
	if h == nil {
		return nil
	}
	defer h.f.Close()
	c := newChain()
	lines, began := 0, time.Now()
	_, err := scanLines(io.NewSectionReader(h.f, 0, h.end), func(line []byte, tooLong bool, hash string, _ int64) {
		if ctx.Err() != nil {
			return
		}
		c.add(line, tooLong, hash)
		if lines++; rate > 0 && lines%historyChunk == 0 {
			pause(ctx, time.Since(began), rate)
			began = time.Now()
		}
	})
	if err != nil {
		return fmt.Errorf("verify audit log %s: %w", l.path, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if c.last == nil || c.acked {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.pending = append(l.pending, l.brokenRecord(c))
	return l.flush()
}

// pause waits so that work (wall time spent working) averages rate CPUs.
func pause(ctx context.Context, work time.Duration, rate float64) {
	d := time.Duration(float64(work) * (1/rate - 1))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
