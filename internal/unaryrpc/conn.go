package unaryrpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2/hpack"
)

// conn is one client connection. The reading goroutine (serve) owns the
// fields above mu; the rest are shared with the goroutines answering
// calls, under mu. Every write to the socket happens under mu, so frames
// and the header encoder's state stay in step.
type conn struct {
	srv    *Server
	nc     net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	calls  sync.WaitGroup

	br     *bufio.Reader
	rbuf   []byte
	dec    *hpack.Decoder
	lastID uint32
	block  *headerBlock // a header block still awaiting CONTINUATION

	mu       sync.Mutex
	cond     *sync.Cond
	streams  map[uint32]*stream
	sendWin  int64 // the connection's send window
	initWin  int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame int   // the peer's SETTINGS_MAX_FRAME_SIZE
	enc      *hpack.Encoder
	hbuf     bytes.Buffer
	dead     bool // the socket is closed or a write failed
	stopping bool // the server stops or the client went away: no new call starts
	// running counts the handlers still running, a reset call's too: the
	// limit on open calls counts them, so that calls opened and reset at
	// once cannot pile up handlers.
	running int
}

// stream is one call.
type stream struct {
	id      uint32
	handler Handler
	timeout time.Duration // from grpc-timeout; 0: none
	body    []byte
	sendWin int64
	started bool // the request is complete and its handler runs
	reset   bool // the client reset the stream
	cancel  context.CancelFunc
}

type headerBlock struct {
	stream    uint32
	endStream bool
	frag      []byte
}

func newConn(srv *Server, nc net.Conn) *conn {
	c := &conn{srv: srv, nc: nc, br: bufio.NewReaderSize(nc, maxFrameLen+9), rbuf: make([]byte, maxFrameLen),
		streams: map[uint32]*stream{}, sendWin: defaultWindow, initWin: defaultWindow, maxFrame: maxFrameLen}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.cond = sync.NewCond(&c.mu)
	c.dec = hpack.NewDecoder(4096, nil)
	c.dec.SetMaxStringLength(maxHeaderBlock)
	c.enc = hpack.NewEncoder(&c.hbuf)
	return c
}

// serve reads the connection until it ends, then waits for the calls it
// started and closes it.
func (c *conn) serve() error {
	defer c.close()
	c.mu.Lock()
	c.writeLocked(appendSettings(nil, settingMaxConcurrentStreams, maxStreams, settingMaxHeaderListSize, maxHeaderBlock))
	c.mu.Unlock()
	pre := make([]byte, len(clientPreface))
	if _, err := io.ReadFull(c.br, pre); err != nil {
		return fmt.Errorf("read the client preface: %w", err)
	}
	if string(pre) != clientPreface {
		return errors.New("the client did not open with the HTTP/2 preface")
	}
	for {
		fh, p, err := readFrame(c.br, c.rbuf)
		if err == nil {
			err = c.frame(fh, p)
		}
		if err != nil {
			var ce *connError
			if errors.As(err, &ce) {
				c.mu.Lock()
				c.writeLocked(appendGoAway(nil, c.lastID, ce.code, ce.msg))
				c.mu.Unlock()
			}
			return err
		}
	}
}

// frame handles one frame.
func (c *conn) frame(fh frameHeader, p []byte) error {
	if c.block != nil && (fh.typ != frameContinuation || fh.stream != c.block.stream) {
		return protocolError("a header block interrupted by a frame of type %d", fh.typ)
	}
	switch fh.typ {
	case frameData:
		return c.data(fh, p)
	case frameHeaders:
		return c.headers(fh, p)
	case frameContinuation:
		return c.continuation(fh, p)
	case frameRSTStream:
		return c.rstStream(fh, p)
	case frameSettings:
		return c.settings(fh, p)
	case framePing:
		return c.ping(fh, p)
	case frameWindowUpdate:
		return c.windowUpdate(fh, p)
	case frameGoAway:
		// The client opens no more calls; those in flight are answered
		// until it closes the connection.
		c.mu.Lock()
		c.stopping = true
		c.mu.Unlock()
		return nil
	case framePushPromise:
		return protocolError("a client sent PUSH_PROMISE")
	}
	return nil // PRIORITY and unknown types are ignored
}

func (c *conn) headers(fh frameHeader, p []byte) error {
	if fh.stream == 0 {
		return protocolError("HEADERS on stream 0")
	}
	p, err := unpad(fh.flags, p)
	if err != nil {
		return err
	}
	if fh.flags&flagPriority != 0 {
		if len(p) < 5 {
			return protocolError("HEADERS too short for its priority")
		}
		p = p[5:]
	}
	c.block = &headerBlock{stream: fh.stream, endStream: fh.flags&flagEndStream != 0, frag: append([]byte(nil), p...)}
	if fh.flags&flagEndHeaders != 0 {
		return c.endHeaders()
	}
	return nil
}

func (c *conn) continuation(fh frameHeader, p []byte) error {
	if c.block == nil {
		return protocolError("CONTINUATION outside a header block")
	}
	if len(c.block.frag)+len(p) > maxHeaderBlock {
		return &connError{code: errProtocol, msg: fmt.Sprintf("a header block over %d bytes", maxHeaderBlock)}
	}
	c.block.frag = append(c.block.frag, p...)
	if fh.flags&flagEndHeaders != 0 {
		return c.endHeaders()
	}
	return nil
}

// endHeaders decodes a complete header block: a new call, or the end of
// one (trailers, which a gRPC client does not send but may).
func (c *conn) endHeaders() error {
	b := c.block
	c.block = nil
	fields, err := c.dec.DecodeFull(b.frag)
	if err != nil {
		return &connError{code: errCompression, msg: "header block: " + err.Error()}
	}
	if b.stream <= c.lastID {
		c.mu.Lock()
		st := c.streams[b.stream]
		c.mu.Unlock()
		if st != nil && b.endStream {
			c.start(st)
		}
		return nil
	}
	if b.stream%2 == 0 {
		return protocolError("a client opened the even stream %d", b.stream)
	}
	c.lastID = b.stream
	return c.open(b.stream, fields, b.endStream)
}

// open starts call id, or answers it at once when it cannot be served.
func (c *conn) open(id uint32, fields []hpack.HeaderField, endStream bool) error {
	var method, ctype, enc, timeout string
	for _, f := range fields {
		switch f.Name {
		case ":path":
			method = f.Value
		case "content-type":
			ctype = f.Value
		case "grpc-encoding":
			enc = f.Value
		case "grpc-timeout":
			timeout = f.Value
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.streams) >= maxStreams || c.running >= maxStreams || c.stopping {
		c.writeLocked(appendU32Frame(nil, frameRSTStream, id, errRefusedStream))
		return nil
	}
	st := &stream{id: id, sendWin: c.initWin}
	var fail *Status
	switch h, ok := c.srv.Methods[method]; {
	case ctype != "application/grpc" && !strings.HasPrefix(ctype, "application/grpc+") && !strings.HasPrefix(ctype, "application/grpc;"):
		fail = &Status{Code: Internal, Message: fmt.Sprintf("content-type %q is not gRPC", ctype)}
	case enc != "" && enc != "identity":
		fail = &Status{Code: Unimplemented, Message: fmt.Sprintf("grpc-encoding %q: this server does not decompress", enc)}
	case !ok:
		fail = &Status{Code: Unimplemented, Message: fmt.Sprintf("unknown method %s", method)}
	default:
		st.handler = h
	}
	if timeout != "" {
		d, ok := parseTimeout(timeout)
		if !ok && fail == nil {
			fail = &Status{Code: Internal, Message: fmt.Sprintf("malformed grpc-timeout %q", timeout)}
		}
		st.timeout = d
	}
	if fail != nil {
		c.writeLocked(c.trailersOnly(id, fail, !endStream))
		return nil
	}
	c.streams[id] = st
	if endStream {
		c.startLocked(st)
	}
	return nil
}

func (c *conn) data(fh frameHeader, p []byte) error {
	if fh.stream == 0 {
		return protocolError("DATA on stream 0")
	}
	if fh.stream > c.lastID {
		return protocolError("DATA on the idle stream %d", fh.stream)
	}
	n := uint32(len(p))
	body, err := unpad(fh.flags, p)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.streams[fh.stream]
	var out []byte
	if n > 0 {
		// What the client sent is read at once: give it back.
		out = appendU32Frame(out, frameWindowUpdate, 0, n)
	}
	if st == nil || st.started {
		c.writeLocked(out)
		return nil // a call already answered or complete: ignored
	}
	if len(st.body)+len(body) > 5+c.srv.maxRecv() {
		delete(c.streams, st.id)
		out = append(out, c.trailersOnly(st.id, &Status{Code: ResourceExhausted,
			Message: fmt.Sprintf("a request over the %d bytes this server accepts", c.srv.maxRecv())}, true)...)
		c.writeLocked(out)
		return nil
	}
	st.body = append(st.body, body...)
	if fh.flags&flagEndStream == 0 && n > 0 {
		out = appendU32Frame(out, frameWindowUpdate, st.id, n)
	}
	c.writeLocked(out)
	if fh.flags&flagEndStream != 0 {
		c.startLocked(st)
	}
	return nil
}

func (c *conn) rstStream(fh frameHeader, p []byte) error {
	if len(p) != 4 {
		return &connError{code: errFrameSize, msg: "RST_STREAM of the wrong length"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.streams[fh.stream]; st != nil {
		st.reset = true
		if st.cancel != nil {
			st.cancel()
		}
		delete(c.streams, fh.stream)
		c.cond.Broadcast()
	}
	return nil
}

func (c *conn) settings(fh frameHeader, p []byte) error {
	if fh.stream != 0 {
		return protocolError("SETTINGS on stream %d", fh.stream)
	}
	if fh.flags&flagAck != 0 {
		return nil
	}
	if len(p)%6 != 0 {
		return &connError{code: errFrameSize, msg: "SETTINGS of a length not a multiple of 6"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for ; len(p) > 0; p = p[6:] {
		id, v := binary.BigEndian.Uint16(p), binary.BigEndian.Uint32(p[2:])
		switch id {
		case settingHeaderTableSize:
			c.enc.SetMaxDynamicTableSizeLimit(v)
		case settingInitialWindowSize:
			if v > maxWindow {
				return &connError{code: errFlowControl, msg: "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1"}
			}
			for _, st := range c.streams {
				st.sendWin += int64(v) - c.initWin
			}
			c.initWin = int64(v)
		case settingMaxFrameSize:
			if v < maxFrameLen || v > 1<<24-1 {
				return protocolError("SETTINGS_MAX_FRAME_SIZE %d out of range", v)
			}
			c.maxFrame = int(v)
		}
	}
	c.writeLocked(appendFrame(nil, frameSettings, flagAck, 0, nil))
	c.cond.Broadcast()
	return nil
}

func (c *conn) ping(fh frameHeader, p []byte) error {
	if len(p) != 8 {
		return &connError{code: errFrameSize, msg: "PING of the wrong length"}
	}
	if fh.flags&flagAck != 0 {
		return nil
	}
	c.mu.Lock()
	c.writeLocked(appendFrame(nil, framePing, flagAck, 0, p))
	c.mu.Unlock()
	return nil
}

func (c *conn) windowUpdate(fh frameHeader, p []byte) error {
	if len(p) != 4 {
		return &connError{code: errFrameSize, msg: "WINDOW_UPDATE of the wrong length"}
	}
	inc := int64(binary.BigEndian.Uint32(p) & 0x7fffffff)
	c.mu.Lock()
	defer c.mu.Unlock()
	if fh.stream == 0 {
		c.sendWin = min(c.sendWin+inc, maxWindow)
	} else if st := c.streams[fh.stream]; st != nil {
		st.sendWin = min(st.sendWin+inc, maxWindow)
	}
	c.cond.Broadcast()
	return nil
}

func (c *conn) start(st *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.startLocked(st)
}

// startLocked runs a complete request's handler on a goroutine of its own.
func (c *conn) startLocked(st *stream) {
	if st.started || st.reset || c.dead {
		return
	}
	st.started = true
	msg, fail := unframe(st.body, c.srv.maxRecv())
	st.body = nil
	if c.stopping {
		fail = &Status{Code: Unavailable, Message: "the server is stopping"}
	}
	if fail != nil {
		delete(c.streams, st.id)
		c.writeLocked(c.trailersOnly(st.id, fail, false))
		return
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if st.timeout > 0 {
		ctx, cancel = context.WithTimeout(c.ctx, st.timeout)
	} else {
		ctx, cancel = context.WithCancel(c.ctx)
	}
	st.cancel = cancel
	c.running++
	c.calls.Add(1)
	go func() {
		defer c.calls.Done()
		defer cancel()
		resp, err := st.handler(ctx, msg)
		c.reply(st, resp, err)
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
	}()
}

// unframe returns the one message of a unary request: a byte saying
// whether it is compressed, its length (32 bits, big-endian), itself.
func unframe(b []byte, max int) ([]byte, *Status) {
	if len(b) < 5 {
		return nil, &Status{Code: Internal, Message: "a request without its message"}
	}
	if b[0] != 0 {
		return nil, &Status{Code: Unimplemented, Message: "a compressed request: this server does not decompress"}
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if uint64(n) > uint64(max) {
		return nil, &Status{Code: ResourceExhausted, Message: fmt.Sprintf("a request of %d bytes, over the %d this server accepts", n, max)}
	}
	if int(n) != len(b)-5 {
		return nil, &Status{Code: Internal, Message: fmt.Sprintf("a unary request of %d bytes framed as %d", len(b)-5, n)}
	}
	return b[5:], nil
}

// reply answers st: its headers, its message within the flow-control
// windows, its trailers.
func (c *conn) reply(st *stream, resp []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer delete(c.streams, st.id)
	if st.reset || c.dead {
		return
	}
	if err != nil {
		c.writeLocked(c.trailersOnly(st.id, statusOf(err), false))
		return
	}
	out := c.headerFrames(nil, st.id, false, hpack.HeaderField{Name: ":status", Value: "200"},
		hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(resp)))
	msg = append(msg, resp...)
	for len(msg) > 0 {
		n := min(int64(len(msg)), int64(c.maxFrame), c.sendWin, st.sendWin)
		if n <= 0 {
			c.writeLocked(out) // what is encoded goes out before waiting
			out = out[:0]
			c.cond.Wait()
			if st.reset || c.dead {
				return
			}
			continue
		}
		out = appendFrame(out, frameData, 0, st.id, msg[:n])
		msg, c.sendWin, st.sendWin = msg[n:], c.sendWin-n, st.sendWin-n
	}
	out = c.headerFrames(out, st.id, true, hpack.HeaderField{Name: "grpc-status", Value: "0"})
	c.writeLocked(out)
}

// trailersOnly encodes the answer of a call that failed before its
// message: one header block with its status. With rst, a RST_STREAM
// follows (NO_ERROR), so that a client still sending stops.
func (c *conn) trailersOnly(id uint32, st *Status, rst bool) []byte {
	fields := []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"},
		{Name: "grpc-status", Value: strconv.FormatUint(uint64(st.Code), 10)}}
	if st.Message != "" {
		fields = append(fields, hpack.HeaderField{Name: "grpc-message", Value: encodeMessage(st.Message)})
	}
	out := c.headerFrames(nil, id, true, fields...)
	if rst {
		out = appendU32Frame(out, frameRSTStream, id, errNo)
	}
	return out
}

// headerFrames appends fields as HEADERS and as many CONTINUATION frames
// as the peer's frame size needs. Under mu: the encoder's table changes.
func (c *conn) headerFrames(dst []byte, id uint32, endStream bool, fields ...hpack.HeaderField) []byte {
	c.hbuf.Reset()
	for _, f := range fields {
		_ = c.enc.WriteField(f) // writes to a bytes.Buffer: no error
	}
	block := c.hbuf.Bytes()
	typ, flags := uint8(frameHeaders), uint8(0)
	if endStream {
		flags = flagEndStream
	}
	for {
		n := min(len(block), c.maxFrame)
		if n == len(block) {
			return appendFrame(dst, typ, flags|flagEndHeaders, id, block)
		}
		dst = appendFrame(dst, typ, flags, id, block[:n])
		block, typ, flags = block[n:], frameContinuation, 0
	}
}

// writeLocked writes b; a failed write ends the connection, and so does
// a client that reads nothing for Server.WriteTimeout (the reader, which
// writes too, is never wedged behind it for longer).
func (c *conn) writeLocked(b []byte) {
	if len(b) == 0 || c.dead {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout()))
	if _, err := c.nc.Write(b); err != nil {
		c.dead = true
		c.cond.Broadcast()
		_ = c.nc.Close()
	}
}

// close ends the connection: the calls it runs are cancelled and waited
// for.
func (c *conn) close() {
	c.cancel()
	c.mu.Lock()
	c.dead = true
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.nc.Close()
	c.calls.Wait()
}

// drain lets the calls the connection runs finish, for
// Server.DrainTimeout at most (then they are cancelled and left), starts no other and closes it.
func (c *conn) drain() {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.calls.Wait(); close(done) }()
	t := time.NewTimer(c.srv.drainTimeout())
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.cancel()
	}
	c.mu.Lock()
	c.dead = true
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.nc.Close()
}
