// Package regfile opens files that must be regular files (policies, keys,
// tokens) without ever blocking: a FIFO or a device put where a file is
// expected is refused instead of hanging the daemon in open(2) or read(2).
package regfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Errors, wrapped with the path.
var (
	// ErrNotRegular: anything but a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: more bytes than the caller's limit.
	ErrTooLarge = errors.New("file too large")
)

// Open opens path read-only and non-blocking and checks, on the open
// descriptor, that it is a regular file.
func Open(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	return f, st, nil
}

// ReadContext is Read for a caller under a deadline: it returns ctx's
// error, reading nothing, once ctx is done. The read itself never blocks
// (a FIFO or device is refused by Open).
func ReadContext(ctx context.Context, path string, limit int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return Read(path, limit)
}

// Read reads the regular file at path, refusing one larger than limit bytes.
func Read(path string, limit int64) ([]byte, error) {
	f, _, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", path, ErrTooLarge, limit)
	}
	return data, nil
}
