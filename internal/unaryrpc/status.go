package unaryrpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Code is a gRPC status code (the numbers of google.golang.org/grpc/codes).
type Code uint32

// The status codes this server and its handlers answer with.
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
)

// Status is an error a handler answers a call with: the client sees Code
// and Message as the call's gRPC status.
type Status struct {
	Code    Code
	Message string
}

func (s *Status) Error() string {
	return fmt.Sprintf("rpc error: code = %d desc = %s", s.Code, s.Message)
}

// Errorf returns a *Status with code c and a formatted message.
func Errorf(c Code, format string, a ...any) error {
	return &Status{Code: c, Message: fmt.Sprintf(format, a...)}
}

// FromContextError returns the status of a call whose context ended with
// err: Canceled or DeadlineExceeded, Unknown for any other error.
func FromContextError(err error) *Status {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Status{Code: DeadlineExceeded, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return &Status{Code: Canceled, Message: err.Error()}
	}
	return &Status{Code: Unknown, Message: err.Error()}
}

// statusOf returns the status a handler's error answers with: its own
// *Status, the context's for a context error, else Unknown.
func statusOf(err error) *Status {
	var st *Status
	if errors.As(err, &st) {
		return st
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return FromContextError(err)
	}
	return &Status{Code: Unknown, Message: err.Error()}
}

// encodeMessage percent-encodes a status message for the grpc-message
// trailer, as the gRPC HTTP/2 protocol asks: every byte outside printable
// ASCII, and '%'.
func encodeMessage(m string) string {
	var b strings.Builder
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// parseTimeout reads a grpc-timeout header: at most eight digits and a
// unit (H, M, S, m, u, n).
func parseTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	// 99,999,999 hours overflows a Duration: cap at the largest.
	if n > int64(1<<63-1)/int64(unit) {
		return time.Duration(1<<63 - 1), true
	}
	return time.Duration(n) * unit, true
}
