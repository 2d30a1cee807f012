package unaryrpc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/secure-ai/runtime-attestor/internal/unaryrpc"
)

// raw is a grpc-go codec that sends and receives bytes as they are.
type raw struct{}

func (raw) Marshal(v any) ([]byte, error)   { return *(v.(*[]byte)), nil }
func (raw) Unmarshal(b []byte, v any) error { *(v.(*[]byte)) = append([]byte(nil), b...); return nil }
func (raw) Name() string                    { return "proto" }

// serve starts s on a Unix socket and returns a grpc-go client of it, as
// go-plugin's client dials a plugin.
func serve(t *testing.T, s *unaryrpc.Server, opts ...grpc.DialOption) (*grpc.ClientConn, chan error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(raw{}), grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20))}, opts...)
	cc, err := grpc.NewClient("passthrough:///plugin", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, done
}

func call(ctx context.Context, cc *grpc.ClientConn, method string, req []byte) ([]byte, error) {
	var resp []byte
	err := cc.Invoke(ctx, method, &req, &resp)
	return resp, err
}

func echo(_ context.Context, b []byte) ([]byte, error) {
	return append(bytes.Repeat([]byte{'>'}, 1), b...), nil
}

func TestUnaryCalls(t *testing.T) {
	t.Parallel()
	s := &unaryrpc.Server{Methods: map[string]unaryrpc.Handler{
		"/t.S/Echo": echo,
		"/t.S/Fail": func(context.Context, []byte) ([]byte, error) {
			return nil, unaryrpc.Errorf(unaryrpc.InvalidArgument, "bad key %q: 100%% wrong, naïve\n", "x")
		},
		"/t.S/Plain": func(context.Context, []byte) ([]byte, error) { return nil, errors.New("it broke") },
		"/t.S/Empty": func(context.Context, []byte) ([]byte, error) { return nil, nil },
	}}
	cc, _ := serve(t, s)
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: many windows each way
	tests := []struct {
		name, method string
		req          []byte
		want         []byte
		code         codes.Code
		msg          string
	}{
		{"small", "/t.S/Echo", []byte("hi"), []byte(">hi"), codes.OK, ""},
		{"empty request", "/t.S/Echo", nil, []byte(">"), codes.OK, ""},
		{"empty answer", "/t.S/Empty", []byte("x"), nil, codes.OK, ""},
		{"over the windows", "/t.S/Echo", big, append([]byte(">"), big...), codes.OK, ""},
		{"status", "/t.S/Fail", nil, nil, codes.InvalidArgument, "bad key \"x\": 100% wrong, naïve\n"},
		{"plain error", "/t.S/Plain", nil, nil, codes.Unknown, "it broke"},
		{"unknown method", "/t.S/Nope", nil, nil, codes.Unimplemented, "unknown method /t.S/Nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := call(ctx, cc, tt.method, tt.req)
			st := status.Convert(err)
			if st.Code() != tt.code || (tt.msg != "" && st.Message() != tt.msg) {
				t.Fatalf("status %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.msg)
			}
			if tt.code == codes.OK && !bytes.Equal(got, tt.want) {
				t.Fatalf("answer of %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	cc, _ := serve(t, &unaryrpc.Server{Methods: map[string]unaryrpc.Handler{"/t.S/Echo": echo}})
	echoAtOnce(t, cc, 32, 100<<10)
}

// echoAtOnce makes n echo calls of size bytes at once and checks every
// answer.
func echoAtOnce(t *testing.T, cc *grpc.ClientConn, n, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := bytes.Repeat([]byte{byte(i)}, size)
			got, err := call(context.Background(), cc, "/t.S/Echo", req)
			if err == nil && !bytes.Equal(got[1:], req) {
				err = fmt.Errorf("call %d: a wrong answer of %d bytes", i, len(got))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestStreamingCallUnimplemented(t *testing.T) {
	t.Parallel()
	cc, _ := serve(t, &unaryrpc.Server{Methods: map[string]unaryrpc.Handler{"/t.S/Echo": echo}})
	cs, err := cc.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/plugin.GRPCStdio/StreamStdio")
	if err != nil {
		t.Fatal(err)
	}
	var resp []byte
	if err := cs.RecvMsg(&resp); status.Code(err) != codes.Unimplemented {
		t.Fatalf("streaming call: %v, want Unimplemented", err)
	}
	// The connection still serves.
	if _, err := call(context.Background(), cc, "/t.S/Echo", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestDeadlineAndCancel(t *testing.T) {
	t.Parallel()
	seen := make(chan error, 2)
	s := &unaryrpc.Server{Methods: map[string]unaryrpc.Handler{"/t.S/Wait": func(ctx context.Context, _ []byte) ([]byte, error) {
		_, hasDeadline := ctx.Deadline()
		<-ctx.Done()
		seen <- fmt.Errorf("deadline %v: %w", hasDeadline, ctx.Err())
		return nil, ctx.Err()
	}}}
	cc, _ := serve(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := call(ctx, cc, "/t.S/Wait", nil); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call past its deadline: %v", err)
	}
	if err := <-seen; !strings.HasPrefix(err.Error(), "deadline true") {
		t.Fatalf("the handler saw %v, want the call's deadline", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	if _, err := call(ctx2, cc, "/t.S/Wait", nil); status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v", err)
	}
	if err := <-seen; !errors.Is(err, context.Canceled) {
		t.Fatalf("the handler saw %v, want its call cancelled", err)
	}
}

func TestRequestOverLimit(t *testing.T) {
	t.Parallel()
	cc, _ := serve(t, &unaryrpc.Server{MaxRecvMsgSize: 1000, Methods: map[string]unaryrpc.Handler{"/t.S/Echo": echo}})
	if _, err := call(context.Background(), cc, "/t.S/Echo", make([]byte, 100<<10)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a request over the limit: %v", err)
	}
	if _, err := call(context.Background(), cc, "/t.S/Echo", make([]byte, 1000)); err != nil {
		t.Fatalf("a request at the limit: %v", err)
	}
}

func TestStopFromHandler(t *testing.T) {
	t.Parallel()
	s := &unaryrpc.Server{}
	s.Methods = map[string]unaryrpc.Handler{"/t.S/Shutdown": func(context.Context, []byte) ([]byte, error) {
		go s.Stop()
		time.Sleep(20 * time.Millisecond) // Stop waits for this answer
		return []byte("bye"), nil
	}}
	cc, done := serve(t, s)
	got, err := call(context.Background(), cc, "/t.S/Shutdown", nil)
	if err != nil || string(got) != "bye" {
		t.Fatalf("Shutdown: %q, %v", got, err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Stop")
	}
}

func TestAcceptRefuses(t *testing.T) {
	t.Parallel()
	refused := make(chan error, 4)
	s := &unaryrpc.Server{Methods: map[string]unaryrpc.Handler{"/t.S/Echo": echo},
		Accept:  func(net.Conn) error { return errors.New("not the daemon") },
		Refused: func(err error) { refused <- err }}
	cc, _ := serve(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := call(ctx, cc, "/t.S/Echo", nil); err == nil {
		t.Fatal("a refused connection was served")
	}
	if err := <-refused; err.Error() != "not the daemon" {
		t.Fatalf("Refused got %v", err)
	}
}

// TestLargeAnswersUnderClientWindows: answers of several MiB each way, at
// once, under grpc-go's dynamic windows and under small static ones.
func TestLargeAnswersUnderClientWindows(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts []grpc.DialOption
	}{
		{"dynamic windows", nil},
		{"static 64 KiB windows", []grpc.DialOption{grpc.WithInitialWindowSize(64 << 10), grpc.WithInitialConnWindowSize(64 << 10)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cc, _ := serve(t, &unaryrpc.Server{MaxRecvMsgSize: 8 << 20, Methods: map[string]unaryrpc.Handler{"/t.S/Echo": echo}}, tt.opts...)
			echoAtOnce(t, cc, 4, 3<<20)
		})
	}
}

// TestCallsWithDeadlinesLeaveNothing: a call's context, deadline or not,
// is released with its answer, not kept until the connection ends. Not
// parallel: it weighs the process's heap.
func TestCallsWithDeadlinesLeaveNothing(t *testing.T) {
	cc, _ := serve(t, &unaryrpc.Server{Methods: map[string]unaryrpc.Handler{"/t.S/Echo": echo}})
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	run := func(n int) {
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			_, err := call(ctx, cc, "/t.S/Echo", []byte("x"))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	run(500)
	h0 := heap()
	run(5000)
	// A context kept per call is about 120 bytes: 600 KB here.
	if grown := heap() - h0; grown > 200<<10 {
		t.Fatalf("the heap grew by %d bytes over 5,000 calls with deadlines", grown)
	}
}
