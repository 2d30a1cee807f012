package audit

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// maxPending bounds the records kept in memory while writing fails; past it
// the oldest are dropped and a "dropped" record says how many.
const maxPending = 4096

// Log is an open audit log. It is safe for concurrent use.
type Log struct {
	path   string
	logger hclog.Logger
	now    func() time.Time

	maxPending int
	sync       syncer
	// segment is the size at which the live file is rotated (a quarter
	// of Options.MaxBytes; 0: never).
	segment  int64
	key      *keyState // nil: records are not MACed
	rotating bool      // the next reopen follows a rotation

	mu      sync.Mutex
	f       *os.File // nil after a write error or a vanished file: reopen on the next Append
	size    int64    // size of f as written by us
	seq     uint64   // seq of the last record written
	head    string   // lineHash of the last line written
	started bool     // a chain exists in memory (a file was opened once)
	pending []pending
	dropped int
	closed  bool
	// dirDirty: the folder holds a file entry not yet synced.
	dirDirty bool
	// deferMin, when above 0, defers the history of a live file of at
	// least that size at the first open (Options.DeferHistory); history
	// is what VerifyHistory has left to check.
	deferMin int64
	history  *history
}

// syncer is the log's durability seam: file makes a file's data durable
// (fsync), dir the entries of a folder (a new or renamed file). Tests replace
// it to prove that both happen before Append returns.
type syncer interface {
	file(f *os.File) error
	dir(path string) error
}

// osSync is the real thing.
type osSync struct{}

func (osSync) file(f *os.File) error { return f.Sync() }

func (osSync) dir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type pending struct {
	typ  string
	at   time.Time
	data json.RawMessage
}

// Open opens (creating with mode 0600, and its folder with mode 0700 when
// missing) the audit log at path and resumes its chain.
//
// A torn last line (no trailing newline, or a last line that is not JSON)
// is cut off: its bytes are saved to <path>.torn-<unix seconds> (mode 0600),
// the log is truncated to its last complete record and synced, and a
// "recovered" record names what was cut. A chain broken earlier in the file
// is not rewritten: Open logs it as an error, appends a "chain_broken"
// record that links to the last line as it is (once: a later Open that finds
// that record after the break adds no other) and goes on.
//
// Records Open must write and cannot (disk full) stay queued and are
// written by the next Append.
func Open(path string, logger hclog.Logger) (*Log, error) {
	return open(path, Options{Logger: logger}, osSync{})
}

// Options configure OpenOptions.
type Options struct {
	Logger hclog.Logger
	// KeyPath is the audit key file (see key.go); "" leaves records
	// without a MAC. When it does not exist, a seed is made, its first key
	// stored there (mode 0600) and the seed written once to KeyPath+".seed"
	// (mode 0400) for the operator to take away.
	KeyPath string
	// MaxBytes is the size budget of the log and its rotated files: the
	// live file is rotated at a quarter of it to <path>.1 (…1 to .2, .2
	// to .3, the old .3 removed), so at most MaxBytes plus one record are
	// kept. 0: no budget.
	MaxBytes int64
	// DeferHistory resumes a live file of 64 KiB or more from its last
	// record alone, when that record verifies by itself, and leaves the
	// chain of the records before it to VerifyHistory: reading a 16 MiB
	// live file costs about a second of CPU, ten under a 10% quota, which
	// the first verdict after a restart would otherwise wait for.
	DeferHistory bool
	// deferMin replaces deferMin in tests.
	deferMin int64
}

// Rotations is how many rotated files (<path>.1 … .3) a budgeted log keeps.
const Rotations = 3

// OpenOptions opens the log at path as Open does, with opts.
func OpenOptions(path string, opts Options) (*Log, error) {
	return open(path, opts, osSync{})
}

func open(path string, opts Options, sy syncer) (*Log, error) {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	l := &Log{path: abs, logger: logger, now: time.Now, head: ZeroHash, maxPending: maxPending, sync: sy, segment: opts.MaxBytes / (Rotations + 1)}
	if opts.DeferHistory {
		l.deferMin = cmp.Or(opts.deferMin, deferMin)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.reopen(); err != nil {
		return nil, err
	}
	if opts.KeyPath != "" {
		if err := l.openKey(opts.KeyPath); err != nil {
			if l.f != nil {
				l.f.Close()
			}
			return nil, err
		}
	}
	if err := l.flush(); err != nil {
		logger.Warn("audit log: records queued, will retry on the next append", "path", abs, "error", err)
	}
	return l, nil
}

// Path returns the log's absolute path.
func (l *Log) Path() string { return l.path }

// Head returns the seq and the line hash of the last record written (the
// prev of the next one); publish them to anchor the log against truncation.
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.head
}

// Flush writes the records still queued (after a failed write), if it can.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.pending) == 0 {
		return nil
	}
	return l.flush()
}

// Append writes one record of type typ with data (marshalled to a JSON
// object; nil is {}) as one line, with a single write(2) on the O_APPEND
// file, then fsyncs it. On error (disk full, file removed, I/O error) the
// record stays queued in memory and the error is returned; the next Append
// writes the queued records first, reopening the path (and starting a new
// file linked to the last record written) if the file went away.
func (l *Log) Append(typ string, data any) error {
	if !typeRE.MatchString(typ) {
		return fmt.Errorf("append audit record: type %q is not a lowercase name", typ)
	}
	if internalType(typ) {
		return fmt.Errorf("append audit record: type %q is written by the log itself", typ)
	}
	raw, err := marshalData(data)
	if err != nil {
		return fmt.Errorf("append audit record %s: %w", typ, err)
	}
	if len(raw) > MaxLine-512 {
		return fmt.Errorf("append audit record %s: data is %d bytes, over the limit of %d", typ, len(raw), MaxLine-512)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("append audit record %s: log is closed", typ)
	}
	l.queue(pending{typ: typ, at: l.now(), data: raw})
	if err := l.flush(); err != nil {
		return fmt.Errorf("append audit record %s (%d queued for retry): %w", typ, len(l.pending), err)
	}
	return nil
}

// Close writes what is queued, if it can, and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.history != nil {
		_ = l.history.f.Close()
		l.history = nil
	}
	var errs []error
	if len(l.pending) > 0 {
		if err := l.flush(); err != nil {
			errs = append(errs, fmt.Errorf("%d records not written: %w", len(l.pending), err))
		}
	}
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			errs = append(errs, err)
		}
		l.f = nil
	}
	l.key.close()
	l.key = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit log %s: %w", l.path, err)
	}
	return nil
}

// queue adds a record. When the queue is full, noise goes first: the
// newcomer if it is noise and noise already fills an eighth of the queue,
// else the oldest noise record; only a queue without noise loses its oldest
// caller record (the log's own records are never dropped: they keep the
// chain). So attestation, state, fault and policy records never make way
// for refused requests.
func (l *Log) queue(p pending) {
	noise := 0
	oldestNoise := -1
	for i, q := range l.pending {
		if q.typ == TypeRefreshRefused {
			noise++
			if oldestNoise < 0 {
				oldestNoise = i
			}
		}
	}
	if p.typ == TypeRefreshRefused && noise >= l.maxPending/8 {
		l.dropped++
		return
	}
	if len(l.pending) >= l.maxPending {
		switch i := l.internalPrefix(); {
		case oldestNoise >= 0:
			l.pending = append(l.pending[:oldestNoise], l.pending[oldestNoise+1:]...)
			l.dropped++
		case i < len(l.pending):
			l.pending = append(l.pending[:i], l.pending[i+1:]...)
			l.dropped++
		}
	}
	l.pending = append(l.pending, p)
}

// internalPrefix is the number of the log's own records at the head of the
// queue.
func (l *Log) internalPrefix() int {
	i := 0
	for i < len(l.pending) && internalType(l.pending[i].typ) {
		i++
	}
	return i
}

func mustData(v any) json.RawMessage {
	raw, err := marshalData(v)
	if err != nil {
		panic(err) // only called with maps of plain values
	}
	return raw
}

// flush makes sure the file is the one at the path, then writes every
// queued record. Caller holds mu.
func (l *Log) flush() error {
	if err := l.ensure(); err != nil {
		return err
	}
	if l.dropped > 0 {
		i := l.internalPrefix()
		d := pending{typ: TypeDropped, at: l.now(), data: mustData(map[string]any{"count": l.dropped, "reason": "audit log not writable for longer than the queue holds"})}
		l.pending = append(l.pending[:i], append([]pending{d}, l.pending[i:]...)...)
		l.dropped = 0
	}
	for len(l.pending) > 0 {
		err := l.write(l.pending[0])
		var enc *encodeError
		var dur *durabilityError
		switch {
		case errors.As(err, &enc):
			// Cannot happen with data that passed Append; never let one
			// record block the queue.
			l.logger.Error("audit log: dropping a record that cannot be encoded", "type", l.pending[0].typ, "error", err)
		case errors.As(err, &dur):
			// The record is in the file: never write it twice.
			l.pending = l.pending[1:]
			return err
		case errors.Is(err, errRotate):
			if err := l.rotate(); err != nil {
				return err
			}
			continue // the new file's "reopened" record is now first
		case err != nil:
			return err
		}
		l.pending = l.pending[1:]
	}
	return nil
}

// durabilityError: the record was written but a sync after it failed.
type durabilityError struct{ err error }

func (e *durabilityError) Error() string { return e.err.Error() }
func (e *durabilityError) Unwrap() error { return e.err }

type encodeError struct{ err error }

func (e *encodeError) Error() string { return "encode audit record: " + e.err.Error() }
func (e *encodeError) Unwrap() error { return e.err }

// ensure reopens the path when the file was closed after an error, removed,
// replaced, or changed size behind our back. Caller holds mu.
func (l *Log) ensure() error {
	if l.f != nil {
		st, err := os.Lstat(l.path)
		fst, ferr := l.f.Stat()
		if err == nil && ferr == nil && os.SameFile(st, fst) && fst.Size() == l.size {
			return nil
		}
		reason := "file removed or replaced"
		if err == nil && ferr == nil && os.SameFile(st, fst) {
			reason = fmt.Sprintf("file changed size behind the daemon (%d bytes, expected %d)", fst.Size(), l.size)
		}
		l.logger.Warn("audit log: reopening", "path", l.path, "reason", reason)
		_ = l.f.Close()
		l.f = nil
	}
	return l.reopen()
}

// write appends one record with one write(2) and fsyncs. On a failed or
// short write it cuts the file back and closes it, so the next flush
// reopens and rescans. Caller holds mu.
func (l *Log) write(p pending) error {
	line, err := encode(l.seq+1, p.at, p.typ, p.data, l.head, l.key)
	if err == nil && len(line) >= MaxLine {
		err = fmt.Errorf("record of %d bytes is over the limit of %d", len(line), MaxLine)
	}
	if err != nil {
		return &encodeError{err}
	}
	if l.segment > 0 && l.size > 0 && l.size+int64(len(line))+1 > l.segment && p.typ != TypeReopened {
		return errRotate
	}
	buf := append(line, '\n')
	n, err := writeOnce(l.f, buf)
	if err != nil || n != len(buf) {
		if err == nil {
			err = fmt.Errorf("%w: %d of %d bytes (file system full?)", io.ErrShortWrite, n, len(buf))
		}
		if n > 0 {
			if terr := l.f.Truncate(l.size); terr != nil {
				l.logger.Error("audit log: cannot cut a partial record; it will be recovered on reopen", "path", l.path, "error", terr)
			}
		}
		_ = l.f.Close()
		l.f = nil
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	l.size += int64(n)
	l.seq++
	l.head = lineHash(line)
	if l.key != nil {
		// The record is written: its key is of no more use. Stored
		// after the record, so the file is never ahead of the log.
		l.key.key = evolve(l.key.key)
		l.key.seq++
		if err := l.key.store(l.sync); err != nil {
			l.logger.Error("audit log: could not store the evolved key; the stored one is behind and will be evolved at the next start", "error", err)
		}
	}
	if err := l.sync.file(l.f); err != nil {
		// The record is in the file; only its durability is in doubt.
		return &durabilityError{fmt.Errorf("fsync %s: %w", l.path, err)}
	}
	if l.dirDirty {
		// A file created since the last record: its name is durable only
		// once its folder is synced.
		if err := l.sync.dir(filepath.Dir(l.path)); err != nil {
			return &durabilityError{fmt.Errorf("fsync folder of %s: %w", l.path, err)}
		}
		l.dirDirty = false
	}
	return nil
}

// writeOnce issues exactly one write(2), so a record is never split across
// two system calls.
func writeOnce(f *os.File, buf []byte) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Write(int(fd), buf)
			if !errors.Is(werr, unix.EINTR) {
				return true
			}
		}
	}); err != nil {
		return 0, err
	}
	if n < 0 {
		n = 0
	}
	return n, werr
}

// reopen opens the file at the path and resumes its chain, queueing the
// records that recovery calls for in front of what is pending. Caller
// holds mu.
func (l *Log) reopen() (err error) {
	f, err := l.openFile()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := l.checkFile(f)
	if err != nil {
		return err
	}
	c, cut, err := l.scan(f, st.Size())
	if err != nil {
		return err
	}
	var front []pending
	if size := st.Size(); cut < size {
		rec, err := l.cutTorn(f, cut, size)
		if err != nil {
			return err
		}
		front = append(front, rec)
	}
	front = l.resumeChain(c, front)
	l.f, l.size, l.started = f, cut, true
	l.queueFront(front)
	return nil
}

// openFile opens the log file, creating it (and its folder) when missing.
func (l *Log) openFile() (*os.File, error) {
	dir := filepath.Dir(l.path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open audit log %s: %w", l.path, err)
		}
	}
	created := false
	// O_NOFOLLOW: a symbolic link planted at the path must not redirect
	// the daemon's writes.
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
		created = err == nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("open audit log %s: it is a symbolic link; refusing to follow it", l.path)
	}
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", l.path, err)
	}
	if created {
		// The folder is synced right after the first record's fsync
		// (write): only that makes the record reachable after a crash.
		l.dirDirty = true
	}
	return f, nil
}

// checkFile refuses anything but a regular file and warns when group or
// others may access it.
func (l *Log) checkFile(f *os.File) (os.FileInfo, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", l.path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("open audit log %s: not a regular file", l.path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		l.logger.Warn("audit log is accessible to group or others", "path", l.path, "mode", fmt.Sprintf("%#o", st.Mode().Perm()))
	}
	return st, nil
}

// scanFile reads the whole file and returns its chain and the offset where
// the good records end: a torn tail (bytes after the last newline, or a
// last line that is not JSON at all) lies past it.
// scan resumes the chain of f: from its last line alone when the log
// defers its history (the first open only, see tailResume), else by
// reading the whole file (scanFile).
func (l *Log) scan(f *os.File, size int64) (chain, int64, error) {
	if l.deferMin > 0 && !l.started {
		if c, ok := tailResume(f, size, l.deferMin); ok {
			// A descriptor of its own: a rotation or a replacement of
			// the file leaves it readable.
			if fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0); err == nil {
				l.history = &history{f: os.NewFile(uintptr(fd), l.path), end: size}
				return c, size, nil
			}
		}
	}
	return l.scanFile(f, size)
}

func (l *Log) scanFile(f *os.File, size int64) (chain, int64, error) {
	c := newChain()
	var before chain // the chain before the last line
	var goodEnd, lastStart int64
	tail, err := scanLines(io.NewSectionReader(f, 0, size), func(line []byte, tooLong bool, hash string, end int64) {
		before = c
		lastStart = goodEnd
		c.add(line, tooLong, hash)
		goodEnd = end
	})
	if err != nil {
		return chain{}, 0, fmt.Errorf("read audit log %s: %w", l.path, err)
	}
	if tail == 0 && c.lines > 0 && c.lastInvalidJSON {
		return before, lastStart, nil
	}
	return c, goodEnd, nil
}

// cutTorn saves the torn tail [cut, size) beside the log, cuts it off the
// log, and returns the recovered record that tells of it.
func (l *Log) cutTorn(f *os.File, cut, size int64) (pending, error) {
	saved, err := l.saveTorn(f, cut, size)
	if err != nil {
		return pending{}, fmt.Errorf("recover torn tail of audit log %s: %w", l.path, err)
	}
	if err := f.Truncate(cut); err != nil {
		return pending{}, fmt.Errorf("recover torn tail of audit log %s: truncate: %w", l.path, err)
	}
	if err := l.sync.file(f); err != nil {
		return pending{}, fmt.Errorf("recover torn tail of audit log %s: fsync: %w", l.path, err)
	}
	l.logger.Warn("audit log: cut a torn last line", "path", l.path, "offset", cut, "bytes", size-cut, "saved_to", saved)
	return pending{typ: TypeRecovered, at: l.now(), data: mustData(map[string]any{
		"reason":     "torn last line (interrupted write)",
		"cut_offset": cut,
		"cut_bytes":  size - cut,
		"saved_to":   saved,
	})}, nil
}

// resumeChain continues the chain from the file's last record (or, for a
// new or emptied file while the daemon runs, from the last record written
// before) and adds to front the reopened and chain_broken records the
// file's state calls for.
func (l *Log) resumeChain(c chain, front []pending) []pending {
	prevSeq, prevHead, had := l.seq, l.head, l.started
	switch {
	case c.lines == 0 && had:
		// A new or emptied file while the daemon runs: link it to the
		// last record written before.
		l.seq, l.head = prevSeq, prevHead
		reason := "audit log file removed, replaced or truncated while the daemon ran"
		if l.rotating {
			reason = fmt.Sprintf("rotated at a quarter of audit_max_bytes: the records before are in %s.1", filepath.Base(l.path))
			l.rotating = false
		}
		front = append([]pending{{typ: TypeReopened, at: l.now(), data: mustData(map[string]any{
			"reason":        reason,
			"previous_seq":  prevSeq,
			"previous_hash": prevHead,
		})}}, front...)
	case c.lines == 0:
		l.seq, l.head = 0, ZeroHash
	default:
		l.seq, l.head = c.seq, c.head
		if had && c.head != prevHead {
			front = append(front, pending{typ: TypeReopened, at: l.now(), data: mustData(map[string]any{
				"reason":        "audit log file replaced by another one while the daemon ran",
				"previous_seq":  prevSeq,
				"previous_hash": prevHead,
			})})
		}
	}
	if c.last != nil && !c.acked {
		front = append(front, l.brokenRecord(c))
	}
	return front
}

// brokenRecord logs c's breaks as an error and returns the chain_broken
// record that acknowledges them.
func (l *Log) brokenRecord(c chain) pending {
	l.logger.Error("AUDIT LOG CHAIN IS BROKEN: history is kept as it is, the chain goes on from the last line",
		"path", l.path, "line", c.first.Line, "reason", c.first.Error(), "breaks", c.breaks, "last_break_line", c.last.Line)
	return pending{typ: TypeChainBroken, at: l.now(), data: mustData(map[string]any{
		"first_break_line":   c.first.Line,
		"first_break_seq":    c.first.Seq,
		"first_break_reason": c.first.Reason,
		"last_break_line":    c.last.Line,
		"breaks":             c.breaks,
		"lines":              c.lines,
	})}
}

// queueFront puts front ahead of the pending records. A reopened or
// chain_broken record still queued from an earlier attempt describes the
// same state: only the fresh one is kept.
func (l *Log) queueFront(front []pending) {
	fresh := map[string]bool{}
	for _, p := range front {
		fresh[p.typ] = p.typ == TypeReopened || p.typ == TypeChainBroken
	}
	kept := l.pending[:0]
	for _, p := range l.pending {
		if !fresh[p.typ] {
			kept = append(kept, p)
		}
	}
	l.pending = append(front, kept...)
}

// saveTorn copies bytes [from, to) of f to a new file beside the log.
func (l *Log) saveTorn(f *os.File, from, to int64) (string, error) {
	base := fmt.Sprintf("%s.torn-%d", l.path, l.now().Unix())
	name := base
	var out *os.File
	var err error
	for i := 1; ; i++ {
		out, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
		if !errors.Is(err, os.ErrExist) || i > 100 {
			break
		}
		name = fmt.Sprintf("%s.%d", base, i)
	}
	if err != nil {
		return "", fmt.Errorf("save cut bytes: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(f, from, to-from))
	if err == nil {
		err = l.sync.file(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("save cut bytes to %s: %w", name, err)
	}
	if err := l.sync.dir(filepath.Dir(l.path)); err != nil {
		l.logger.Warn("audit log: cannot sync the folder of the saved torn line", "path", name, "error", err)
	}
	return name, nil
}

// errRotate: the record does not fit in the live file's share of the
// budget.
var errRotate = errors.New("audit log segment full")

// rotate shifts <path>.2 to .3 (replacing the oldest), .1 to .2 and the
// live file to .1, syncs the folder and opens a new live file, which
// starts with a "reopened" record linking to the last line of .1. Caller
// holds mu.
func (l *Log) rotate() error {
	_ = l.f.Close()
	l.f = nil
	name := func(i int) string {
		if i == 0 {
			return l.path
		}
		return fmt.Sprintf("%s.%d", l.path, i)
	}
	for i := Rotations; i >= 1; i-- {
		if err := os.Rename(name(i-1), name(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate audit log %s: %w", l.path, err)
		}
	}
	if err := l.sync.dir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("rotate audit log %s: fsync folder: %w", l.path, err)
	}
	l.rotating = true
	return l.reopen()
}

// openKey loads the audit key (or makes one with its seed) and binds it to
// the next record. Caller holds mu.
func (l *Log) openKey(path string) error {
	ks, ok, err := loadKey(path)
	if err != nil {
		return err
	}
	next := l.seq + 1
	seedPath := path + ".seed"
	if !ok {
		if ks, err = createKey(path, seedPath, next, l.sync); err != nil {
			return fmt.Errorf("audit key %s: %w", path, err)
		}
		l.logger.Warn("audit log: made a new audit seed; take it off this machine and delete it here (attestctl audit verify --seed)", "seed", seedPath, "first_seq", next)
		l.pending = append([]pending{{typ: TypeKeyCreated, at: l.now(), data: mustData(map[string]any{
			"first_seq": next, "seed_file": seedPath,
		})}}, l.pending...)
		l.key = ks
		return nil
	}
	if _, err := os.Lstat(seedPath); err == nil {
		l.logger.Warn("audit log: the audit seed is still on this machine: whoever reads it can rewrite the whole log; copy it away and delete it", "seed", seedPath)
	}
	switch {
	case ks.seq > next:
		l.logger.Error("AUDIT LOG IS SHORTER THAN ITS KEY: records are missing; the chain goes on at the key's record", "path", l.path, "last_seq", l.seq, "key_seq", ks.seq)
		l.seq = ks.seq - 1
	case ks.seq < next:
		if err := ks.advanceTo(next); err != nil {
			ks.close()
			return err
		}
		if err := ks.store(l.sync); err != nil {
			ks.close()
			return fmt.Errorf("audit key %s: %w", path, err)
		}
	}
	l.key = ks
	return nil
}
