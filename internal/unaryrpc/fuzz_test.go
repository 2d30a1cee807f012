package unaryrpc

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzServeConn feeds a connection the preface and then arbitrary bytes:
// the reader must end (an error or the bytes' end) without a panic and
// without a call left running.
func FuzzServeConn(f *testing.F) {
	settings := appendSettings(nil, settingInitialWindowSize, 10, settingMaxFrameSize, 16384, settingHeaderTableSize, 0)
	// A real call, as grpc-go sends it: HEADERS (literal fields), DATA.
	var hb []byte
	for _, kv := range [][2]string{{":method", "POST"}, {":path", "/t.S/Echo"}, {"content-type", "application/grpc"}, {"grpc-timeout", "1S"}} {
		hb = append(hb, 0x00, byte(len(kv[0])))
		hb = append(hb, kv[0]...)
		hb = append(hb, byte(len(kv[1])))
		hb = append(hb, kv[1]...)
	}
	call := appendFrame(nil, frameHeaders, flagEndHeaders, 1, hb)
	call = appendFrame(call, frameData, flagEndStream, 1, []byte{0, 0, 0, 0, 2, 'h', 'i'})
	f.Add(append(settings, call...))
	f.Add(appendFrame(nil, framePing, 0, 0, make([]byte, 8)))
	f.Add(appendFrame(nil, frameHeaders, 0, 1, hb[:10]))
	f.Add(appendU32Frame(appendFrame(nil, frameHeaders, flagEndHeaders, 3, hb), frameRSTStream, 3, 8))
	f.Add(appendFrame(nil, frameData, flagPadded, 1, []byte{200, 1}))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Server{MaxRecvMsgSize: 1 << 10, Methods: map[string]Handler{
			"/t.S/Echo": func(ctx context.Context, b []byte) ([]byte, error) { return append(b, b...), nil },
		}}
		client, server := net.Pipe()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		go func() {
			_, _ = client.Write([]byte(clientPreface))
			_, _ = client.Write(in)
			time.Sleep(time.Millisecond)
			_ = client.Close()
		}()
		done := make(chan struct{})
		go func() { _ = s.ServeConn(server); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not end after its input")
		}
	})
}
