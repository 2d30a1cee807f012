package unaryrpc

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// The HTTP/2 frame types (RFC 9113, section 6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9
)

// The frame flags this server reads or sets.
const (
	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// The HTTP/2 error codes this server sends.
const (
	errNo            = 0x0
	errProtocol      = 0x1
	errFlowControl   = 0x3
	errFrameSize     = 0x6
	errRefusedStream = 0x7
	errCompression   = 0x9
)

// The settings this server reads or sets (RFC 9113, section 6.5.2).
const (
	settingHeaderTableSize      = 0x1
	settingMaxConcurrentStreams = 0x3
	settingInitialWindowSize    = 0x4
	settingMaxFrameSize         = 0x5
	settingMaxHeaderListSize    = 0x6
)

// clientPreface opens every HTTP/2 connection a client makes.
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	// maxFrameLen is the largest frame payload this server reads: the
	// protocol's default SETTINGS_MAX_FRAME_SIZE, which it keeps.
	maxFrameLen = 16384
	// maxHeaderBlock bounds a request's header block (its
	// SETTINGS_MAX_HEADER_LIST_SIZE, and the fragments it gathers).
	maxHeaderBlock = 64 << 10
	// maxStreams bounds the calls open at once on a connection.
	maxStreams = 16
	// defaultWindow is the protocol's initial flow-control window.
	defaultWindow = 65535
	// maxWindow is the largest window the protocol allows.
	maxWindow = 1<<31 - 1
)

// The server's patience with a client, by default (Server.WriteTimeout,
// Server.DrainTimeout).
const (
	defaultWriteTimeout = 10 * time.Second
	defaultDrainTimeout = 5 * time.Second
)

type frameHeader struct {
	length uint32
	typ    uint8
	flags  uint8
	stream uint32
}

// connError ends the connection with a GOAWAY carrying code.
type connError struct {
	code uint32
	msg  string
}

func (e *connError) Error() string { return fmt.Sprintf("http2: %s (error code %d)", e.msg, e.code) }

func protocolError(format string, a ...any) error {
	return &connError{code: errProtocol, msg: fmt.Sprintf(format, a...)}
}

// readFrame reads one frame into buf (at least maxFrameLen long) and
// returns its header and payload, which aliases buf.
func readFrame(r io.Reader, buf []byte) (frameHeader, []byte, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frameHeader{}, nil, err
	}
	fh := frameHeader{
		length: uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2]),
		typ:    h[3],
		flags:  h[4],
		stream: binary.BigEndian.Uint32(h[5:]) & 0x7fffffff,
	}
	if fh.length > maxFrameLen {
		return fh, nil, &connError{code: errFrameSize, msg: fmt.Sprintf("a frame of %d bytes, over the %d this server allows", fh.length, maxFrameLen)}
	}
	p := buf[:fh.length]
	if _, err := io.ReadFull(r, p); err != nil {
		return fh, nil, err
	}
	return fh, p, nil
}

// appendFrame appends a frame to dst.
func appendFrame(dst []byte, typ, flags uint8, stream uint32, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	dst = binary.BigEndian.AppendUint32(dst, stream&0x7fffffff)
	return append(dst, payload...)
}

// appendSettings appends a SETTINGS frame with the given id, value pairs.
func appendSettings(dst []byte, kv ...uint32) []byte {
	p := make([]byte, 0, 6*len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		p = binary.BigEndian.AppendUint16(p, uint16(kv[i]))
		p = binary.BigEndian.AppendUint32(p, kv[i+1])
	}
	return appendFrame(dst, frameSettings, 0, 0, p)
}

// appendU32Frame appends a frame whose payload is one 32-bit value
// (WINDOW_UPDATE, RST_STREAM).
func appendU32Frame(dst []byte, typ uint8, stream, v uint32) []byte {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], v)
	return appendFrame(dst, typ, 0, stream, p[:])
}

// appendGoAway appends a GOAWAY frame.
func appendGoAway(dst []byte, last, code uint32, msg string) []byte {
	p := binary.BigEndian.AppendUint32(nil, last&0x7fffffff)
	p = binary.BigEndian.AppendUint32(p, code)
	return appendFrame(dst, frameGoAway, 0, 0, append(p, msg...))
}

// unpad removes a padded frame's padding (DATA, HEADERS).
func unpad(flags uint8, p []byte) ([]byte, error) {
	if flags&flagPadded == 0 {
		return p, nil
	}
	if len(p) == 0 || int(p[0]) > len(p)-1 {
		return nil, protocolError("padding longer than its frame")
	}
	return p[1 : len(p)-int(p[0])], nil
}
