package pluginhost

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// lagging is a context whose deadline is set but whose timer has not fired
// (Err nil, Done never closed): how a context looks to grpc on a loaded
// machine once the clock is past its deadline and before its timer has run.
// It makes the race between grpc's RST_STREAM handling and the contexts'
// timers deterministic: the call can only end by the plugin's reset.
type lagging struct {
	context.Context
	deadline time.Time
}

func (c lagging) Deadline() (time.Time, bool) { return c.deadline, true }

// hangServer answers every call of the check protocol after release is
// closed, deaf to its deadline like testplugins/hang; claim instead answers
// at once with the status DeadlineExceeded, as a lying plugin would.
type hangServer struct {
	checkrpc.UnimplementedServer
	release <-chan struct{}
	claim   bool
}

func (s *hangServer) wait() error {
	if s.claim {
		return status.Error(codes.DeadlineExceeded, "the plugin says so")
	}
	<-s.release
	return status.Error(codes.Unavailable, "released")
}

func (s *hangServer) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	return nil, s.wait()
}

func (s *hangServer) Configure(context.Context, *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	return nil, s.wait()
}

func (s *hangServer) Measure(context.Context, *pb.MeasureRequest) (*pb.MeasureResponse, error) {
	return nil, s.wait()
}

// serveCheck serves srv with a real grpc server on a unix socket and returns
// a client of it. At its deadline the server resets the stream with
// RST_STREAM(CANCEL), as it does for a plugin that ignores its deadline.
func serveCheck(t *testing.T, srv *hangServer) *checkrpc.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "check.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	checkrpc.RegisterServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// Connected before the first call, so that the calls' short deadlines
	// are spent waiting for the plugin, not for the connection.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("connecting to the test plugin: %v", ctx.Err())
		}
	}
	return checkrpc.NewClient(conn)
}

// deadlines makes the turn's and the call's contexts of one case, each
// deadline d from now.
type deadlines func(d time.Duration) (turn, call context.Context, cancel func())

// The contexts of TestClassifyRPCDeadline, each a deadlines; the "Lag" ones
// never fire their timer.

// turnFirstLag: the turn's deadline binds the call (its own is an hour).
func turnFirstLag(d time.Duration) (context.Context, context.Context, func()) {
	turn := lagging{context.Background(), time.Now().Add(d)}
	call, cancel := context.WithTimeout(turn, time.Hour)
	return turn, call, cancel
}

// turnFirst: as turnFirstLag, with real timers.
func turnFirst(d time.Duration) (context.Context, context.Context, func()) {
	turn, c1 := context.WithTimeout(context.Background(), d)
	call, c2 := context.WithTimeout(turn, time.Hour)
	return turn, call, func() { c2(); c1() }
}

// sameDeadlineLag: the turn and the call end at the same instant.
func sameDeadlineLag(d time.Duration) (context.Context, context.Context, func()) {
	at := time.Now().Add(d)
	turn := lagging{context.Background(), at}
	return turn, lagging{turn, at}, func() {}
}

// callFirstLag: the call's own deadline binds (the turn has an hour).
func callFirstLag(d time.Duration) (context.Context, context.Context, func()) {
	turn, cancel := context.WithTimeout(context.Background(), time.Hour)
	return turn, lagging{turn, time.Now().Add(d)}, cancel
}

// callFirst: as callFirstLag, with real timers.
func callFirst(d time.Duration) (context.Context, context.Context, func()) {
	turn, c1 := context.WithTimeout(context.Background(), time.Hour)
	call, c2 := context.WithTimeout(turn, d)
	return turn, call, func() { c2(); c1() }
}

// cancelledAfter: the attestation is cancelled after d.
func cancelledAfter(d time.Duration) (context.Context, context.Context, func()) {
	turn, c1 := context.WithCancel(context.Background())
	call, c2 := context.WithTimeout(turn, time.Hour)
	time.AfterFunc(d, c1)
	return turn, call, func() { c2(); c1() }
}

// noDeadlineNear: both deadlines an hour away.
func noDeadlineNear(time.Duration) (context.Context, context.Context, func()) {
	return callFirst(time.Hour)
}

// callOp makes op's call through c under call.
func callOp(c *checkrpc.Client, op string, call context.Context) error {
	var err error
	switch op {
	case "describe":
		_, err = c.Describe(call)
	case "configure":
		err = c.Configure(call, []byte("{}"))
	case "measure":
		_, err = c.Measure(call, sdk.Description{}, make([]byte, 32))
	}
	return err
}

// TestClassifyRPCDeadline: a call cut short is named by the deadline that
// bound it, for describe, configure and measure alike, with the error grpc
// really returns, including when the plugin's RST_STREAM(CANCEL) arrives
// before either context's timer has fired.
func TestClassifyRPCDeadline(t *testing.T) {
	t.Parallel()
	const short = 250 * time.Millisecond
	release := make(chan struct{})
	hang := serveCheck(t, &hangServer{release: release})
	liar := serveCheck(t, &hangServer{claim: true})
	t.Cleanup(func() { close(release) })
	h := New(Options{MaxAnswerBytes: 1 << 20})
	t.Cleanup(h.Close)

	const attestation = "the attestation's deadline passed before the plugin answered %s; plugin killed"
	cases := []struct {
		name   string
		client *checkrpc.Client
		ctxs   deadlines
		limit  time.Duration // the call's own timeout
		rst    bool          // the call must end by the plugin's RST_STREAM, timers unfired
		kind   string
		code   string
		msg    string // %s is the operation
	}{
		{"turn binds, timers lag", hang, turnFirstLag, time.Hour, true, FaultTimeout, CodeAttestationTimeout, attestation},
		{"turn binds", hang, turnFirst, time.Hour, false, FaultTimeout, CodeAttestationTimeout, attestation},
		{"same deadline, timers lag", hang, sameDeadlineLag, short, true, FaultTimeout, CodeAttestationTimeout, attestation},
		{"call binds, timers lag", hang, callFirstLag, short, true, FaultTimeout, CodeTimeout, "%s: no answer within 250ms; plugin killed"},
		{"call binds", hang, callFirst, short, false, FaultTimeout, CodeTimeout, "%s: no answer within 250ms; plugin killed"},
		{"attestation cancelled", hang, cancelledAfter, time.Hour, false, FaultTimeout, CodeAttestationTimeout, "the attestation was cancelled before the plugin answered %s"},
		{"plugin claims a deadline", liar, noDeadlineNear, time.Hour, false, FaultProtocol, CodeProtocol, "%s: unexpected answer (DeadlineExceeded: the plugin says so)"},
	}
	ops := []string{"describe", "configure", "measure"}
	// All calls at once (each waits for its deadline), checked afterwards.
	type outcome struct {
		err, callErr, turnErr error
		f                     *fault
	}
	got := make([][]outcome, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		got[i] = make([]outcome, len(ops))
		for j, op := range ops {
			wg.Go(func() {
				turn, call, cancel := tc.ctxs(short)
				defer cancel()
				o := outcome{err: callOp(tc.client, op, call)}
				o.callErr, o.turnErr = call.Err(), turn.Err()
				o.f = h.classifyRPC(o.err, op, call, turn, tc.limit)
				got[i][j] = o
			})
		}
	}
	wg.Wait()
	for i, tc := range cases {
		for j, op := range ops {
			o := got[i][j]
			st, _ := status.FromError(o.err)
			if tc.rst && (st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "RST_STREAM with error code: CANCEL") || o.callErr != nil || o.turnErr != nil) {
				t.Errorf("Test %d (%s): %s = %v with call %v, turn %v; want grpc's DeadlineExceeded from RST_STREAM(CANCEL) before any timer fired", i, tc.name, op, o.err, o.callErr, o.turnErr)
			}
			want := strings.ReplaceAll(tc.msg, "%s", op)
			if o.f.kind != tc.kind || o.f.findingCode() != tc.code || !strings.Contains(o.f.msg, want) {
				t.Errorf("Test %d (%s): classifyRPC(%v) = %s %s %q, want %s %s containing %q", i, tc.name, o.err, o.f.kind, o.f.findingCode(), o.f.msg, tc.kind, tc.code, want)
			}
		}
	}
}
