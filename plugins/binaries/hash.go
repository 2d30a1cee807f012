package binaries

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Target is one file to hash.
type Target struct {
	// Name identifies the file in the results (a service name); free-form.
	Name string
	// Path is the file's absolute path as configured.
	Path string
}

// Digest is what hashing one Target gave.
type Digest struct {
	Name string
	Path string
	// ResolvedPath is Path with every symlink resolved ("" when the path
	// could not be resolved).
	ResolvedPath string
	// Size is the number of bytes hashed.
	Size int64
	// SHA256 is the lowercase hex SHA-256 of the file's content, "" when
	// Err is set.
	SHA256 string
	// Err is nil when the file was hashed, else a *FileError.
	Err error
}

// Kind says why a file could not be hashed.
type Kind string

// The kinds of FileError; each maps to the finding code binaries.<kind>.
const (
	KindMissing            Kind = "missing"
	KindNotRegular         Kind = "not_regular"
	KindSymlinkOutOfPolicy Kind = "symlink_out_of_policy"
	KindUnreadable         Kind = "unreadable"
	KindTooLarge           Kind = "too_large"
)

const (
	// defaultBufferSize is the read size: large enough that system calls
	// cost nothing next to hashing, small enough to stay in cache.
	defaultBufferSize = 1 << 20
	// Files larger than one buffer are hashed through a read-only
	// mapping, mapWindow bytes at a time: no copy into a buffer, which
	// was a fifth of the CPU hashing a large file took.
	mapThreshold     = defaultBufferSize
	mapWindow        = 8 << 20
	maxPathInMessage = 512
)

// FileError is why one file could not be hashed.
type FileError struct {
	Kind Kind
	Path string
	Msg  string
	Err  error // the underlying error, if any
}

func (e *FileError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Path, e.Msg, e.Err)
	}
	return e.Path + ": " + e.Msg
}

func (e *FileError) Unwrap() error { return e.Err }

// Options tunes Hash.
type Options struct {
	// Parallel is how many files are hashed at once (at least 1).
	Parallel int
	// AllowedRoots lists the directories a path that goes through a
	// symlink may resolve into. nil means the default: the file's own
	// directory tree (as written and as resolved) and DefaultSymlinkRoot.
	// A non-nil empty slice forbids following any symlink. A path that
	// goes through no symlink is never refused by this rule.
	AllowedRoots []string
	// MaxFileBytes, when positive, refuses files larger than this.
	MaxFileBytes int64
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, defaultBufferSize); return &b }}

// HashFiles hashes files with at most parallel files at once and the default
// symlink policy, returning one Digest per Target in the same order. A file
// that cannot be hashed has its Digest.Err set; the error is non-nil only
// when ctx ends first or parallel is below 1. Memory use does not depend on
// file sizes: each file is streamed through a reused 1 MiB buffer, or,
// when larger, through a read-only mapping of at most 8 MiB at a time.
func HashFiles(ctx context.Context, files []Target, parallel int) ([]Digest, error) {
	return Hash(ctx, files, Options{Parallel: parallel})
}

// Hash is HashFiles with every option.
func Hash(ctx context.Context, files []Target, opt Options) ([]Digest, error) {
	if opt.Parallel < 1 {
		return nil, fmt.Errorf("hash files: parallel must be at least 1, got %d", opt.Parallel)
	}
	out := make([]Digest, len(files))
	workers := min(opt.Parallel, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) || ctx.Err() != nil {
					return
				}
				out[i] = hashOne(ctx, files[i], &opt)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("hash files: %w", err)
	}
	return out, nil
}

func hashOne(ctx context.Context, t Target, opt *Options) Digest {
	d := Digest{Name: t.Name, Path: t.Path}
	fail := func(k Kind, msg string, err error) Digest {
		d.Err = &FileError{Kind: k, Path: t.Path, Msg: msg, Err: err}
		return d
	}
	clean := filepath.Clean(t.Path)
	resolved, err := filepath.EvalSymlinks(clean)
	if err != nil {
		return fail(classify(err), describeResolveError(clean, err), err)
	}
	d.ResolvedPath = resolved
	if resolved != clean && !symlinkAllowed(clean, resolved, opt.AllowedRoots) {
		return fail(KindSymlinkOutOfPolicy, fmt.Sprintf("resolves through a symlink to %s, outside the allowed roots (%s); not followed", clip(resolved, maxPathInMessage), rootsText(clean, opt.AllowedRoots)), nil)
	}
	// Look before opening, so that a device or FIFO is never opened.
	fi, err := os.Lstat(resolved)
	if err != nil {
		return fail(classify(err), "stat", err)
	}
	if !fi.Mode().IsRegular() {
		return fail(KindNotRegular, "is a "+modeText(fi.Mode())+", not a regular file", nil)
	}
	f, err := openNoSymlinks(resolved)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EXDEV) {
			return fail(KindSymlinkOutOfPolicy, "a symlink appeared in the resolved path "+clip(resolved, maxPathInMessage)+" while it was being checked; not followed", err)
		}
		return fail(classify(err), "open", err)
	}
	defer f.Close()
	// Hash the file that was opened, whatever happens to the path now.
	st, err := f.Stat()
	if err != nil {
		return fail(KindUnreadable, "fstat", err)
	}
	if !st.Mode().IsRegular() {
		return fail(KindNotRegular, "is a "+modeText(st.Mode())+", not a regular file (it changed while being checked)", nil)
	}
	if opt.MaxFileBytes > 0 && st.Size() > opt.MaxFileBytes {
		return fail(KindTooLarge, fmt.Sprintf("is %d bytes, more than max_file_bytes (%d)", st.Size(), opt.MaxFileBytes), nil)
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	h := sha256.New()
	n, err := hashFile(ctx, f, st.Size(), h, opt.MaxFileBytes)
	d.Size = n
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			fe.Path = t.Path
			d.Err = fe
			return d
		}
		return fail(KindUnreadable, "read", err)
	}
	d.SHA256 = hex.EncodeToString(h.Sum(nil))
	return d
}

// errTooLarge builds the error for a file that grew past the cap while it
// was read.
func errTooLarge(maxBytes int64) error {
	return &FileError{Kind: KindTooLarge, Msg: fmt.Sprintf("grew past max_file_bytes (%d) while it was read", maxBytes)}
}

func hashSimple(ctx context.Context, r io.Reader, h hash.Hash, maxBytes int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := r.Read(buf)
		if n > 0 {
			total += int64(n)
			if maxBytes > 0 && total > maxBytes {
				return total, errTooLarge(maxBytes)
			}
			h.Write(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// openNoSymlinks opens the resolved path read-only without following any
// symlink in any component (openat2 RESOLVE_NO_SYMLINKS), falling back to
// O_NOFOLLOW on the last component where openat2 is unavailable. O_NONBLOCK
// keeps a FIFO swapped in at the last moment from blocking the open.
func openNoSymlinks(path string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY
	for {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EINTR {
			continue
		}
		if err == unix.ENOSYS || err == unix.EPERM {
			break
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
	for {
		fd, err := unix.Open(path, flags, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// symlinkAllowed applies the symlink policy to a path that resolved through
// at least one symlink.
func symlinkAllowed(clean, resolved string, roots []string) bool {
	if roots == nil {
		dir := filepath.Dir(clean)
		roots = []string{dir, DefaultSymlinkRoot}
	}
	for _, r := range roots {
		if Within(r, resolved) {
			return true
		}
		// A root that is itself reached through a symlink (/opt → /var/opt
		// on ostree systems) also covers where it resolves to.
		if rr, err := filepath.EvalSymlinks(r); err == nil && rr != r && Within(rr, resolved) {
			return true
		}
	}
	return false
}

func rootsText(clean string, roots []string) string {
	if roots == nil {
		return "the binary's directory " + clip(filepath.Dir(clean), 256) + " and /usr"
	}
	if len(roots) == 0 {
		return "none: allowed_symlink_roots is empty"
	}
	s := ""
	for i, r := range roots {
		if i > 0 {
			s += ", "
		}
		if len(s) > 512 {
			return s + "…"
		}
		s += r
	}
	return s
}

func classify(err error) Kind {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return KindMissing
	default:
		return KindUnreadable
	}
}

func describeResolveError(clean string, err error) string {
	if classify(err) == KindMissing {
		if fi, lerr := os.Lstat(clean); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(clean)
			return "is a symlink to " + clip(target, maxPathInMessage) + ", which does not exist"
		}
		return "does not exist"
	}
	return "cannot resolve the path"
}

func modeText(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	default:
		return "special file (" + m.Type().String() + ")"
	}
}

// hashFile hashes f, whose size fstat gave, to its end: the first size
// bytes through mappings when size is over mapThreshold (and the file
// system can map it), then whatever a read still finds (a file that grew).
func hashFile(ctx context.Context, f *os.File, size int64, h hash.Hash, maxBytes int64) (int64, error) {
	if size <= mapThreshold {
		return hashSimple(ctx, f, h, maxBytes)
	}
	n, err := hashMapped(ctx, f, size, h)
	if errors.Is(err, errCantMap) {
		return hashSimple(ctx, f, h, maxBytes)
	}
	if err != nil {
		return n, err
	}
	// A cut within the last mapped page faults nowhere: the bytes past
	// the new end read as zeros. The size afterwards tells.
	if st, err := f.Stat(); err != nil || st.Size() < n {
		return n, errShrank
	}
	if _, err := f.Seek(n, io.SeekStart); err != nil {
		return n, err
	}
	var tail io.Reader = f
	if maxBytes > 0 {
		tail = io.LimitReader(f, maxBytes-n+1)
	}
	m, err := hashSimple(ctx, tail, h, 0)
	if maxBytes > 0 && n+m > maxBytes {
		return n + m, errTooLarge(maxBytes)
	}
	return n + m, err
}

// errCantMap: the file system cannot map the file; it is read instead.
var errCantMap = errors.New("cannot be mapped")

// hashMapped hashes the first size bytes of f through read-only shared
// mappings of at most mapWindow bytes, one after the other. It returns
// errCantMap, having hashed nothing, when the first mapping fails.
func hashMapped(ctx context.Context, f *os.File, size int64, h hash.Hash) (int64, error) {
	var n int64
	for n < size {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		l := min(mapWindow, size-n)
		if err := hashWindow(f, n, int(l), h); err != nil {
			if n == 0 && !errors.Is(err, errShrank) {
				return 0, errCantMap
			}
			return n, err
		}
		n += l
	}
	return n, nil
}

// errShrank: the file was truncated while it was hashed.
var errShrank = errors.New("the file shrank while it was hashed")

// hashWindow hashes l bytes of f from off through one mapping. A file cut
// shorter meanwhile makes reading past its new end fault (SIGBUS), which
// the runtime turns into a panic for this goroutine only
// (debug.SetPanicOnFault), recovered here as errShrank.
func hashWindow(f *os.File, off int64, l int, h hash.Hash) (err error) {
	m, err := unix.Mmap(int(f.Fd()), off, l, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	defer func() { _ = unix.Munmap(m) }()
	_ = unix.Madvise(m, unix.MADV_SEQUENTIAL)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			err = errShrank
		}
	}()
	h.Write(m)
	return nil
}
