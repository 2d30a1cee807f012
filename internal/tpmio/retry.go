package tpmio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// Response codes of a TPM that asks to be asked again (TPM 2.0 Part 2,
// 6.6.3): TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING.
const (
	RCYielded uint32 = 0x908
	RCTesting uint32 = 0x90A
	RCRetry   uint32 = 0x922
)

// Policy bounds the retries of a busy TPM.
type Policy struct {
	// Retries is how many times a command (or an open) is tried again
	// after the first attempt found the TPM busy.
	Retries int
	// Delay is the wait between two attempts.
	Delay time.Duration
}

// BusyError is a TPM that stayed busy through every attempt. It matches
// ErrBusy with errors.Is.
type BusyError struct {
	Op       string // what was attempted ("TPM2_Quote", "open /dev/tpm0")
	Attempts int
	Last     string // the last answer (a response code or an error)
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s: TPM still busy after %d attempts (last: %s)", e.Op, e.Attempts, e.Last)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Bind returns a go-tpm transport that sends every command over c under
// ctx, and sends a command again, after p.Delay, while the TPM answers
// TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING, at most p.Retries times.
// When the retries run out the error is a *BusyError. Use the transport
// only while ctx is live.
func Bind(ctx context.Context, c Conn, p Policy) transport.TPM {
	return &bound{ctx: ctx, c: c, p: p}
}

type bound struct {
	ctx context.Context
	c   Conn
	p   Policy
}

func (b *bound) Send(cmd []byte) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		rsp, err := b.c.RoundTrip(b.ctx, cmd)
		if err != nil {
			return nil, err
		}
		rc := binary.BigEndian.Uint32(rsp[6:10])
		if rc != RCRetry && rc != RCYielded && rc != RCTesting {
			return rsp, nil
		}
		if attempt > b.p.Retries {
			return nil, &BusyError{Op: commandName(cmd), Attempts: attempt, Last: rcName(rc)}
		}
		if err := Sleep(b.ctx, b.p.Delay); err != nil {
			return nil, fmt.Errorf("%s: TPM busy (%s), and the deadline came while waiting to retry: %w", commandName(cmd), rcName(rc), err)
		}
	}
}

// Open calls open until it returns something other than ErrBusy, at most
// 1+p.Retries times, waiting p.Delay between attempts. When the retries run
// out the error is a *BusyError.
func Open(ctx context.Context, p Policy, op string, open func(context.Context) (Conn, error)) (Conn, error) {
	for attempt := 1; ; attempt++ {
		c, err := open(ctx)
		if err == nil || !errors.Is(err, ErrBusy) {
			return c, err
		}
		if attempt > p.Retries {
			return nil, &BusyError{Op: op, Attempts: attempt, Last: err.Error()}
		}
		if err := Sleep(ctx, p.Delay); err != nil {
			return nil, fmt.Errorf("%s: TPM busy, and the deadline came while waiting to retry: %w", op, err)
		}
	}
}

// Sleep waits for d or until ctx is done, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func rcName(rc uint32) string {
	switch rc {
	case RCRetry:
		return "TPM_RC_RETRY"
	case RCYielded:
		return "TPM_RC_YIELDED"
	case RCTesting:
		return "TPM_RC_TESTING"
	}
	return fmt.Sprintf("TPM_RC 0x%x", rc)
}
