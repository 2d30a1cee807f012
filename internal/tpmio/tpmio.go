// Package tpmio carries TPM 2.0 commands to a TPM, one at a time, under a
// context's deadline: to a Linux TPM character device (/dev/tpmrm0), to a
// swtpm data socket (`swtpm socket --server type=unixio,path=...`, which
// speaks the raw TPM command stream), or to an in-process TPM such as a
// simulator. Bind turns a connection into a go-tpm transport that retries a
// busy TPM (TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING) a bounded number
// of times.
//
// go-tpm's own transports (transport/linuxtpm, linuxudstpm) retry
// TPM_RC_RETRY for up to two seconds and block without a deadline; this
// package exists so that every TPM call stays inside a measurement's
// deadline.
package tpmio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// Errors a caller tells apart with errors.Is.
var (
	// ErrAbsent: there is no TPM at the configured path (no device node, no
	// socket, nobody listening on it).
	ErrAbsent = errors.New("no TPM present")
	// ErrBusy: the TPM stayed busy through every retry (a device held
	// exclusively by another process, or TPM_RC_RETRY/YIELDED/TESTING).
	ErrBusy = errors.New("TPM busy")
)

const (
	headerSize = 10
	// maxResponse bounds a response; TPMs answer with at most a few KiB.
	maxResponse = 1 << 16
)

// Conn is an open channel to a TPM: one command in, one response out.
// A Conn is not safe for concurrent use.
type Conn interface {
	// RoundTrip sends one command and returns the TPM's whole response,
	// returning early with an error wrapping ctx.Err() when ctx is done.
	// After an error the connection may be out of step with the TPM: close
	// it and open a new one.
	RoundTrip(ctx context.Context, cmd []byte) ([]byte, error)
	Close() error
}

// OpenDevice opens a TPM character device such as /dev/tpmrm0 (the
// kernel's resource manager, shared) or /dev/tpm0 (exclusive). A missing
// node is ErrAbsent; a node held by another process (EBUSY) is ErrBusy.
func OpenDevice(path string) (Conn, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrAbsent, path)
		}
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return nil, fmt.Errorf("%s is not a character device (mode %s)", path, fi.Mode())
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		switch {
		case errors.Is(err, syscall.EBUSY):
			return nil, fmt.Errorf("%w: open %s: %w", ErrBusy, path, err)
		case errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO), errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w: open %s: %w", ErrAbsent, path, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &deviceConn{f: f, path: path}, nil
}

// deviceConn is a TPM character device. The kernel takes one whole command
// per write and hands back one whole response per read; reads wait in Go's
// poller, so deadlines interrupt them.
type deviceConn struct {
	f      *os.File
	path   string
	broken error
}

func (d *deviceConn) RoundTrip(ctx context.Context, cmd []byte) ([]byte, error) {
	if d.broken != nil {
		return nil, fmt.Errorf("%s: connection unusable after an earlier failure: %w", d.path, d.broken)
	}
	stop := watchDeadline(ctx, d.f)
	defer stop()
	rsp, err := d.exchange(cmd)
	if err != nil {
		d.broken = err
		return nil, ioError(ctx, fmt.Sprintf("%s %s", commandName(cmd), d.path), err)
	}
	return rsp, nil
}

func (d *deviceConn) exchange(cmd []byte) ([]byte, error) {
	if _, err := d.f.Write(cmd); err != nil {
		return nil, fmt.Errorf("write command: %w", err)
	}
	buf := make([]byte, maxResponse)
	n, err := d.f.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return checkResponse(buf[:n])
}

func (d *deviceConn) Close() error { return d.f.Close() }

// DialSocket connects to the data socket of swtpm started with
// `--server type=unixio,path=PATH`. swtpm serves one client at a time and
// speaks the raw TPM command stream on it. A missing socket, or one nobody
// listens on, is ErrAbsent.
func DialSocket(ctx context.Context, path string) (Conn, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrAbsent, path)
		}
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("%s is not a Unix socket (mode %s)", path, fi.Mode())
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w: nobody listens on %s: %w", ErrAbsent, path, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect %s: %w", path, ctx.Err())
		}
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	return &streamConn{rw: c, dl: c, closer: c, name: path}, nil
}

// FromReadWriter wraps an in-process TPM that answers a Write of a command
// with the response on the following Reads (the go-tpm-tools simulator).
// ctx is checked before each command; the exchange itself cannot be
// interrupted. Close does not close rw.
func FromReadWriter(rw io.ReadWriter) Conn {
	return &streamConn{rw: rw, name: "in-process TPM"}
}

// streamConn frames responses on a byte stream: a 10-byte header whose
// size field says how many bytes follow.
type streamConn struct {
	rw     io.ReadWriter
	dl     deadliner // nil when the stream takes no deadlines
	closer io.Closer // nil when Close must leave the stream open
	name   string
	broken error
}

func (s *streamConn) RoundTrip(ctx context.Context, cmd []byte) ([]byte, error) {
	if s.broken != nil {
		return nil, fmt.Errorf("%s: connection unusable after an earlier failure: %w", s.name, s.broken)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", commandName(cmd), s.name, err)
	}
	if s.dl != nil {
		stop := watchDeadline(ctx, s.dl)
		defer stop()
	}
	rsp, err := s.exchange(cmd)
	if err != nil {
		s.broken = err
		return nil, ioError(ctx, fmt.Sprintf("%s %s", commandName(cmd), s.name), err)
	}
	return rsp, nil
}

func (s *streamConn) exchange(cmd []byte) ([]byte, error) {
	if _, err := s.rw.Write(cmd); err != nil {
		return nil, fmt.Errorf("write command: %w", err)
	}
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(s.rw, hdr); err != nil {
		return nil, fmt.Errorf("read response header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < headerSize || size > maxResponse {
		return nil, fmt.Errorf("response header declares %d bytes (want %d..%d)", size, headerSize, maxResponse)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(s.rw, rsp[headerSize:]); err != nil {
		return nil, fmt.Errorf("read response body of %d bytes: %w", size-headerSize, err)
	}
	return rsp, nil
}

func (s *streamConn) Close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}

// checkResponse checks that a response read in one piece is whole.
func checkResponse(b []byte) ([]byte, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("response of %d bytes is shorter than a header", len(b))
	}
	if size := binary.BigEndian.Uint32(b[2:6]); int(size) != len(b) {
		return nil, fmt.Errorf("response header declares %d bytes, read %d", size, len(b))
	}
	return b, nil
}

type deadliner interface{ SetDeadline(time.Time) error }

// watchDeadline applies ctx's deadline to d (or clears an earlier one)
// and, if ctx is cancelled first, moves the deadline to the past so that a
// blocked call returns. A stream that takes no deadlines (os.ErrNoDeadline)
// is left as it is.
func watchDeadline(ctx context.Context, d deadliner) (stop func()) {
	dl, _ := ctx.Deadline()
	if err := d.SetDeadline(dl); errors.Is(err, os.ErrNoDeadline) {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	cancel := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			_ = d.SetDeadline(time.Unix(1, 0))
		}
	})
	return func() {
		cancel()
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
}

// ioError wraps an I/O failure, reporting a passed deadline or a
// cancellation as ctx's error.
func ioError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		cause := ctx.Err()
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		return fmt.Errorf("%s: no answer before the deadline: %w", op, cause)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// IsTPMError reports whether err is a response code from the TPM (the TPM
// answered and refused), as opposed to a failure to reach it.
func IsTPMError(err error) bool {
	var rc tpm2.TPMRC
	return errors.As(err, &rc)
}

// commandName names a command by its code, for messages.
func commandName(cmd []byte) string {
	if len(cmd) < headerSize {
		return "TPM command"
	}
	cc := binary.BigEndian.Uint32(cmd[6:10])
	if n, ok := commandNames[cc]; ok {
		return n
	}
	return fmt.Sprintf("TPM command 0x%03x", cc)
}

var commandNames = map[uint32]string{
	0x131: "TPM2_CreatePrimary",
	0x144: "TPM2_Startup",
	0x145: "TPM2_Shutdown",
	0x158: "TPM2_Quote",
	0x165: "TPM2_FlushContext",
	0x173: "TPM2_ReadPublic",
	0x17A: "TPM2_GetCapability",
	0x17E: "TPM2_PCR_Read",
	0x181: "TPM2_ReadClock",
	0x182: "TPM2_PCR_Extend",
}
