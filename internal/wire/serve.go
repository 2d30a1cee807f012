package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/secure-ai/runtime-attestor/internal/unaryrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// The plugin's side of go-plugin's protocol, as go-plugin's Serve speaks
// it to the client the daemon runs (github.com/hashicorp/go-plugin, the
// version go.mod pins: server.go, grpc_server.go, grpc_controller.go).
// Linking go-plugin's server would cost every plugin start about 1.5 ms
// of package initialisation for what a check plugin never uses: gRPC
// reflection (protobuf descriptors), net/rpc and encoding/gob, yamux, the
// broker. Its gRPC is internal/unaryrpc, not grpc-go, for the same reason
// (docs/performance.md, "The plugin's gRPC server").
const (
	// coreProtocolVersion is go-plugin's own protocol version, the first
	// field of the handshake line.
	coreProtocolVersion = 1
	// The variables go-plugin's client sets for its server.
	envSocketDir   = "PLUGIN_UNIX_SOCKET_DIR"
	envSocketGroup = "PLUGIN_UNIX_SOCKET_GROUP"
	envMultiplex   = "PLUGIN_MULTIPLEX_GRPC"
)

// The methods of go-plugin's own services that a plugin serves.
const (
	methodHealthCheck = "/grpc.health.v1.Health/Check"
	methodShutdown    = "/plugin.GRPCController/Shutdown"
)

// healthServing is grpc.health.v1.HealthCheckResponse{status: SERVING}:
// field 1, varint 1.
var healthServing = []byte{0x08, 0x01}

// Serve serves c as go-plugin's Serve serves a gRPC plugin: it listens on
// a Unix socket in the folder the client named, prints the handshake line
// on stdout and serves c's check service, the health service go-plugin's
// client pings, and go-plugin's controller, whose Shutdown ends Serve
// (nil) once its answer is written. accept checks each connection before
// it is served (peercred.PluginCheck); a refused one is logged and closed.
// go-plugin's broker and stdio services are not served: the client's
// calls to them end with Unimplemented, which it takes as a plugin without
// them; a plugin's stderr is its process's own, which the daemon reads.
func Serve(c sdk.Check, logger hclog.Logger, accept func(net.Conn) error, stdout io.Writer) error {
	if err := unsupported(); err != nil {
		return err
	}
	if accept == nil {
		return errors.New("plugin: no check of the connecting process: pass the daemon's (peercred.PluginCheck)")
	}
	l, path, err := listen(os.Getenv(envSocketDir))
	if err != nil {
		return fmt.Errorf("plugin: listen: %w", err)
	}
	defer os.Remove(path)
	cs := NewCheckServer(c, logger)
	s := &unaryrpc.Server{Accept: accept,
		Refused: func(err error) { logger.Warn("refused a connection", "error", err) }}
	s.Methods = map[string]unaryrpc.Handler{
		MethodDescribe:  handle(cs.Describe),
		MethodConfigure: handle(cs.Configure),
		MethodMeasure:   handle(cs.Measure),
		methodHealthCheck: func(context.Context, []byte) ([]byte, error) {
			return healthServing, nil
		},
		methodShutdown: func(context.Context, []byte) ([]byte, error) {
			go s.Stop() // it waits for this answer
			return nil, nil
		},
	}
	// go-plugin's server eats interrupts: a Ctrl-C meant for the daemon's
	// terminal does not end a plugin mid-answer. Ignore, not Notify: the
	// runtime's signal loop that Notify starts costs a plugin threads,
	// which count against the unit's TasksMax.
	signal.Ignore(os.Interrupt)
	if _, err := fmt.Fprintf(stdout, "%d|%d|unix|%s|grpc|\n", coreProtocolVersion, ProtocolVersion, path); err != nil {
		_ = l.Close()
		return fmt.Errorf("plugin: write the handshake: %w", err)
	}
	if err := s.Serve(l); err != nil {
		return fmt.Errorf("plugin: serve: %w", err)
	}
	return nil
}

// handle makes a unaryrpc handler of one of the check service's methods:
// the request decoded, the answer encoded.
func handle[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](call func(context.Context, PReq) (Resp, error)) unaryrpc.Handler {
	return func(ctx context.Context, b []byte) ([]byte, error) {
		req := PReq(new(Req))
		if err := proto.Unmarshal(b, req); err != nil {
			return nil, unaryrpc.Errorf(unaryrpc.Internal, "decode the request: %v", err)
		}
		resp, err := call(ctx, req)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(resp)
	}
}

// unsupported refuses the go-plugin client options this server does not
// implement, rather than serving a client that expects them.
func unsupported() error {
	if v := os.Getenv(envMultiplex); v != "" {
		if on, _ := strconv.ParseBool(v); on {
			return fmt.Errorf("plugin: %s=%s: go-plugin's gRPC broker multiplexing is not supported", envMultiplex, v)
		}
	}
	if g := os.Getenv(envSocketGroup); g != "" {
		return fmt.Errorf("plugin: %s=%s: a group-writable plugin socket is not supported", envSocketGroup, g)
	}
	return nil
}

// listen listens on a fresh Unix socket in dir (the system's temporary
// folder when empty), as go-plugin's server does: the path of a temporary
// file made there, removed.
func listen(dir string) (net.Listener, string, error) {
	f, err := os.CreateTemp(dir, "plugin")
	if err != nil {
		return nil, "", err
	}
	path := f.Name()
	if err := errors.Join(f.Close(), os.Remove(path)); err != nil {
		return nil, "", err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", err
	}
	return l, path, nil
}
