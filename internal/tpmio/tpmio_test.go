package tpmio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pcrReadCmd is a TPM2_PCR_Read of SHA-256 PCR 0, as go-tpm sends it.
var pcrReadCmd = []byte{0x80, 0x01, 0, 0, 0, 0x14, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0, 0x0b, 3, 1, 0, 0}

// response builds a TPM response with code rc and body.
func response(rc uint32, body []byte) []byte {
	b := make([]byte, 10, 10+len(body))
	binary.BigEndian.PutUint16(b, 0x8001)
	binary.BigEndian.PutUint32(b[2:], uint32(10+len(body)))
	binary.BigEndian.PutUint32(b[6:], rc)
	return append(b, body...)
}

// tpmServer serves a Unix socket like swtpm's data channel, answering each
// command with answer(n) for the n-th command (from 0), written in pieces.
func tpmServer(t *testing.T, answer func(n int) []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tpm.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				hdr := make([]byte, 10)
				for {
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					rest := make([]byte, binary.BigEndian.Uint32(hdr[2:6])-10)
					if _, err := io.ReadFull(c, rest); err != nil {
						return
					}
					rsp := answer(int(n.Add(1) - 1))
					if rsp == nil {
						_, _ = io.Copy(io.Discard, c) // hang
						return
					}
					for len(rsp) > 0 { // a few bytes at a time
						k := min(3, len(rsp))
						if _, err := c.Write(rsp[:k]); err != nil {
							return
						}
						rsp = rsp[k:]
					}
				}
			}()
		}
	}()
	return path
}

func TestSocketFraming(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte{0xab}, 300)
	path := tpmServer(t, func(int) []byte { return response(0, body) })
	c, err := DialSocket(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		rsp, err := c.RoundTrip(t.Context(), pcrReadCmd)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rsp, response(0, body)) {
			t.Fatalf("response %x", rsp)
		}
	}
}

func TestBadResponses(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		rsp []byte
		msg string
	}{
		{[]byte{0x80, 0x01, 0, 0, 0, 9, 0, 0, 0, 0}, "declares 9 bytes"},
		{[]byte{0x80, 0x01, 0, 0x10, 0, 0, 0, 0, 0, 0}, "declares 1048576 bytes"},
	} {
		path := tpmServer(t, func(int) []byte { return tc.rsp })
		c, err := DialSocket(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.RoundTrip(t.Context(), pcrReadCmd)
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "TPM2_PCR_Read") {
			t.Errorf("Test %d: %v, want %q", i, err, tc.msg)
		}
		// Out of step now: the connection refuses further use.
		if _, err := c.RoundTrip(t.Context(), pcrReadCmd); err == nil || !strings.Contains(err.Error(), "unusable") {
			t.Errorf("Test %d: second round trip: %v", i, err)
		}
		c.Close()
	}
}

func TestDeadlineAndCancel(t *testing.T) {
	t.Parallel()
	path := tpmServer(t, func(int) []byte { return nil })

	c, err := DialSocket(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.RoundTrip(ctx, pcrReadCmd); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung TPM: %v, want DeadlineExceeded", err)
	}

	c2, err := DialSocket(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ctx2, cancel2 := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := c2.RoundTrip(ctx2, pcrReadCmd); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want Canceled", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	for i, tc := range []struct {
		open   func() (Conn, error)
		absent bool
		msg    string
	}{
		{func() (Conn, error) { return OpenDevice(filepath.Join(dir, "tpmrm0")) }, true, "does not exist"},
		{func() (Conn, error) { return OpenDevice(file) }, false, "not a character device"},
		{func() (Conn, error) { return DialSocket(t.Context(), filepath.Join(dir, "none.sock")) }, true, "does not exist"},
		{func() (Conn, error) { return DialSocket(t.Context(), stale) }, true, "nobody listens"},
		{func() (Conn, error) { return DialSocket(t.Context(), file) }, false, "not a Unix socket"},
	} {
		_, err := tc.open()
		if err == nil || errors.Is(err, ErrAbsent) != tc.absent || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Test %d: %v (absent %v), want %q", i, err, tc.absent, tc.msg)
		}
	}

	// /dev/null is a character device that answers nothing.
	c, err := OpenDevice("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.RoundTrip(t.Context(), pcrReadCmd); err == nil || !strings.Contains(err.Error(), "/dev/null") {
		t.Fatalf("/dev/null: %v", err)
	}
}

func TestBindRetries(t *testing.T) {
	t.Parallel()
	ok := response(0, []byte{1, 2, 3})
	for i, tc := range []struct {
		busy    int // commands answered with a retry code first
		code    uint32
		retries int
		wantErr bool
	}{
		{0, RCRetry, 0, false},
		{2, RCRetry, 2, false},
		{3, RCRetry, 2, true},
		{1, RCYielded, 0, true},
		{4, RCTesting, 5, false},
	} {
		path := tpmServer(t, func(n int) []byte {
			if n < tc.busy {
				return response(tc.code, nil)
			}
			return ok
		})
		c, err := DialSocket(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		rsp, err := Bind(t.Context(), c, Policy{Retries: tc.retries, Delay: time.Millisecond}).Send(pcrReadCmd)
		c.Close()
		var be *BusyError
		if tc.wantErr {
			if !errors.As(err, &be) || !errors.Is(err, ErrBusy) || be.Attempts != tc.retries+1 || be.Op != "TPM2_PCR_Read" {
				t.Errorf("Test %d: %v, want a BusyError after %d attempts", i, err, tc.retries+1)
			}
			continue
		}
		if err != nil || !bytes.Equal(rsp, ok) {
			t.Errorf("Test %d: %x, %v", i, rsp, err)
		}
	}

	// A retry that would wait past the deadline gives up at the deadline.
	path := tpmServer(t, func(int) []byte { return response(RCRetry, nil) })
	c, err := DialSocket(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := Bind(ctx, c, Policy{Retries: 1000, Delay: 10 * time.Millisecond}).Send(pcrReadCmd); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v, want DeadlineExceeded", err)
	}
}

func TestOpenRetries(t *testing.T) {
	t.Parallel()
	calls := 0
	busy := func(context.Context) (Conn, error) {
		calls++
		return nil, errors.New("open /dev/tpm0: device or resource busy: " + ErrBusy.Error())
	}
	// Only ErrBusy is retried, and it must be wrapped, not merely named.
	if _, err := Open(t.Context(), Policy{Retries: 3}, "open /dev/tpm0", busy); err == nil || calls != 1 {
		t.Fatalf("%v after %d calls", err, calls)
	}
	calls = 0
	wrapped := func(context.Context) (Conn, error) {
		calls++
		if calls <= 2 {
			return nil, &os.PathError{Op: "open", Path: "/dev/tpm0", Err: ErrBusy}
		}
		return FromReadWriter(&bytes.Buffer{}), nil
	}
	if c, err := Open(t.Context(), Policy{Retries: 2, Delay: time.Millisecond}, "open /dev/tpm0", wrapped); err != nil || c == nil || calls != 3 {
		t.Fatalf("%v after %d calls", err, calls)
	}
	calls = 0
	_, err := Open(t.Context(), Policy{Retries: 1, Delay: time.Millisecond}, "open /dev/tpm0", wrapped)
	var be *BusyError
	if !errors.As(err, &be) || be.Attempts != 2 || be.Op != "open /dev/tpm0" {
		t.Fatalf("%v", err)
	}
}
