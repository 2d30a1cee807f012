package unaryrpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawClient speaks HTTP/2 frame by frame (x/net's Framer), to do what
// grpc-go's client would not.
type rawClient struct {
	t      *testing.T
	fr     *http2.Framer
	enc    *hpack.Encoder
	ebuf   bytes.Buffer
	frames chan http2.Frame
}

// copied is a frame whose payload outlives the framer's next read.
type copied struct {
	http2.FrameHeader
	b []byte
}

func newRaw(t *testing.T, s *Server) *rawClient {
	t.Helper()
	a, b := net.Pipe()
	go func() { _ = s.ServeConn(b) }()
	t.Cleanup(func() { a.Close() })
	c := &rawClient{t: t, fr: http2.NewFramer(a, a), frames: make(chan http2.Frame, 4096)}
	c.enc = hpack.NewEncoder(&c.ebuf)
	go func() {
		defer close(c.frames)
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.DataFrame:
				c.frames <- &copied{f.FrameHeader, bytes.Clone(f.Data())}
			case *http2.HeadersFrame:
				c.frames <- &copied{f.FrameHeader, bytes.Clone(f.HeaderBlockFragment())}
			case *http2.ContinuationFrame:
				c.frames <- &copied{f.FrameHeader, bytes.Clone(f.HeaderBlockFragment())}
			default:
				c.frames <- f
			}
		}
	}()
	if _, err := a.Write([]byte(clientPreface)); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rawClient) call(id uint32, path string, msg []byte) {
	c.ebuf.Reset()
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}} {
		_ = c.enc.WriteField(f)
	}
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.ebuf.Bytes(), EndHeaders: true})
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	_ = c.fr.WriteData(id, true, append(body, msg...))
}

func (c *rawClient) next() http2.Frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatal("the server closed the connection")
		}
		return f
	case <-time.After(10 * time.Second):
		c.t.Fatal("no frame from the server")
	}
	return nil
}

// answers reads frames until every stream in ids has ended, decoding every
// header block with one decoder (as a client must, to stay in step with
// the server's encoder), and returns the DATA bytes of each stream.
func (c *rawClient) answers(dec *hpack.Decoder, ids ...uint32) map[uint32]int {
	c.t.Helper()
	got, ended := map[uint32]int{}, map[uint32]bool{}
	var block []byte
	for len(ended) < len(ids) {
		switch f := c.next().(type) {
		case *copied:
			if f.Type == http2.FrameData {
				got[f.StreamID] += len(f.b)
				continue
			}
			block = append(block, f.b...)
			if f.Flags&http2.FlagHeadersEndHeaders == 0 {
				continue
			}
			if _, err := dec.DecodeFull(block); err != nil {
				c.t.Fatalf("stream %d: header block: %v", f.StreamID, err)
			}
			block = nil
			if f.Type == http2.FrameHeaders && f.Flags&http2.FlagHeadersEndStream != 0 {
				ended[f.StreamID] = true
			}
		case *http2.GoAwayFrame:
			c.t.Fatalf("GOAWAY %v: %s", f.ErrCode, f.DebugData())
		}
	}
	return got
}

func echoHandler(_ context.Context, b []byte) ([]byte, error) { return b, nil }

// TestHeaderTableSizeUpdate: a client that shrinks its HPACK table to 0
// gets a block that opens with the size update and indexes nothing old.
func TestHeaderTableSizeUpdate(t *testing.T) {
	t.Parallel()
	c := newRaw(t, &Server{Methods: map[string]Handler{"/t.S/E": echoHandler}})
	_ = c.fr.WriteSettings()
	dec := hpack.NewDecoder(4096, nil)
	c.call(1, "/t.S/E", []byte("a"))
	c.answers(dec, 1)
	_ = c.fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
	dec.SetAllowedMaxDynamicTableSize(0)
	c.call(3, "/t.S/E", []byte("b"))
	for {
		f, ok := c.next().(*copied)
		if ok && f.StreamID == 3 && f.Type == http2.FrameHeaders {
			if f.b[0]&0xe0 != 0x20 {
				t.Fatalf("the first block after the change opens % x, not with a table size update", f.b[:min(len(f.b), 4)])
			}
			return
		}
	}
}

// TestAnswersInterleaveUnderFlowControl: an answer waiting for its stream
// window does not hold up the others; raising the initial window mid-
// stream releases it, every byte arrives and one decoder follows all.
func TestAnswersInterleaveUnderFlowControl(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("z"), 200000)
	c := newRaw(t, &Server{Methods: map[string]Handler{
		"/t.S/Big":   func(context.Context, []byte) ([]byte, error) { return big, nil },
		"/t.S/Small": echoHandler,
	}})
	_ = c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	_ = c.fr.WriteWindowUpdate(0, 10<<20)
	dec := hpack.NewDecoder(4096, nil)
	c.call(1, "/t.S/Big", nil)
	var small []uint32
	for id := uint32(3); id < 19; id += 2 {
		c.call(id, "/t.S/Small", []byte{byte(id)})
		_ = c.fr.WriteWindowUpdate(id, 100)
		small = append(small, id)
	}
	got := c.answers(dec, small...)
	if got[1] != 0 {
		t.Fatalf("%d bytes of stream 1 sent with a window of 0", got[1])
	}
	_ = c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	if got := c.answers(dec, 1); got[1] != len(big)+5 {
		t.Fatalf("stream 1: %d bytes, want %d", got[1], len(big)+5)
	}
}

// TestResetCallsCountAgainstTheLimit: calls opened and reset at once do
// not pile up handlers: a handler still running counts against the limit
// of open calls, and the calls over it are refused.
func TestResetCallsCountAgainstTheLimit(t *testing.T) {
	t.Parallel()
	var running atomic.Int32
	release := make(chan struct{})
	c := newRaw(t, &Server{Methods: map[string]Handler{"/t.S/Block": func(context.Context, []byte) ([]byte, error) {
		running.Add(1)
		<-release // ignores its cancellation
		return nil, nil
	}}})
	defer close(release)
	_ = c.fr.WriteSettings()
	go func() {
		for range c.frames {
		}
	}()
	for id := uint32(1); id < 2*1000; id += 2 {
		c.call(id, "/t.S/Block", nil)
		_ = c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	_ = c.fr.WritePing(false, [8]byte{}) // the server has read everything before it answers
	time.Sleep(100 * time.Millisecond)
	if n := running.Load(); n > maxStreams {
		t.Fatalf("%d handlers running after 1,000 calls opened and reset, over the limit of %d", n, maxStreams)
	}
}

// TestStopDoesNotWaitForever: Stop ends even when a client reads nothing
// of a large answer, and when a call in flight never returns.
func TestStopDoesNotWaitForever(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		handler Handler
	}{
		{"a client that does not read", func(context.Context, []byte) ([]byte, error) { return bytes.Repeat([]byte("z"), 8<<20), nil }},
		{"a call that never returns", func(ctx context.Context, _ []byte) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &Server{WriteTimeout: 200 * time.Millisecond, DrainTimeout: 200 * time.Millisecond,
				Methods: map[string]Handler{"/t.S/M": tt.handler}}
			path := filepath.Join(t.TempDir(), "s")
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Serve(l) }()
			nc, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_, _ = nc.Write([]byte(clientPreface))
			fr := http2.NewFramer(nc, nil)
			_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
			_ = fr.WriteWindowUpdate(0, 1<<31-1-65535)
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			_ = enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/t.S/M"})
			_ = enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
			_ = fr.WriteData(1, true, binary.BigEndian.AppendUint32([]byte{0}, 0))
			time.Sleep(100 * time.Millisecond)
			go s.Stop()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return after Stop")
			}
		})
	}
}
