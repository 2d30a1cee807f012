package wire

import (
	"errors"
	"time"
)

// ProtocolError is an answer that breaks the protocol.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "protocol violation: " + e.Msg }

// IsProtocolError reports whether err is a *ProtocolError.
func IsProtocolError(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}

// DefaultTimeout is the deadline the sdktest harness uses when none is set.
const DefaultTimeout = 30 * time.Second
