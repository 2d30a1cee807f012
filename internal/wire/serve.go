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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// The plugin's side of go-plugin's protocol, as go-plugin's Serve speaks
// it to the client the daemon runs (github.com/hashicorp/go-plugin, the
// version go.mod pins: server.go, grpc_server.go, grpc_controller.go).
// Linking go-plugin's server would cost every plugin start about 1.5 ms
// of package initialisation for what a check plugin never uses: gRPC
// reflection (protobuf descriptors), net/rpc and encoding/gob, yamux, the
// broker.
const (
	// coreProtocolVersion is go-plugin's own protocol version, the first
	// field of the handshake line.
	coreProtocolVersion = 1
	// healthService is the service go-plugin's client pings.
	healthService = "plugin"
	// The variables go-plugin's client sets for its server.
	envSocketDir   = "PLUGIN_UNIX_SOCKET_DIR"
	envSocketGroup = "PLUGIN_UNIX_SOCKET_GROUP"
	envMultiplex   = "PLUGIN_MULTIPLEX_GRPC"
)

// Serve serves c as go-plugin's Serve serves a gRPC plugin, with creds as
// the connection's transport credentials: it listens on a Unix socket in
// the folder the client named, prints the handshake line on stdout and
// serves c's check service, the health service go-plugin's client pings,
// and go-plugin's controller, whose Shutdown ends Serve (nil). go-plugin's
// broker and stdio services are not served: the client's calls to them
// end with Unimplemented, which it takes as a plugin without them; a
// plugin's stderr is its process's own, which the daemon reads.
func Serve(c sdk.Check, logger hclog.Logger, creds credentials.TransportCredentials, stdout io.Writer) error {
	if err := unsupported(); err != nil {
		return err
	}
	l, path, err := listen(os.Getenv(envSocketDir))
	if err != nil {
		return fmt.Errorf("plugin: listen: %w", err)
	}
	defer os.Remove(path)
	s := grpc.NewServer(grpc.Creds(creds))
	RegisterCheck(s, c, logger)
	hs := health.NewServer()
	hs.SetServingStatus(healthService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	s.RegisterService(&controllerDesc, controller(func() { go s.Stop() }))
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

// controller is go-plugin's controller service: Shutdown, which the
// client calls when it is done with the plugin, stops the server.
type controller func()

type shutdowner interface{ shutdown() }

func (c controller) shutdown() { c() }

// controllerDesc is the service plugin.GRPCController of go-plugin's
// grpc_controller.proto. Its one message, plugin.Empty, has no fields:
// it has the encoding of google.protobuf.Empty.
var controllerDesc = grpc.ServiceDesc{
	ServiceName: "plugin.GRPCController",
	HandlerType: (*shutdowner)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Shutdown",
		Handler: func(srv any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(new(emptypb.Empty)); err != nil {
				return nil, err
			}
			srv.(shutdowner).shutdown()
			return new(emptypb.Empty), nil
		},
	}},
	Metadata: "internal/plugin/grpc_controller.proto",
}
