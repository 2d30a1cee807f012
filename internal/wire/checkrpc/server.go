package checkrpc

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secure-ai/runtime-attestor/internal/unaryrpc"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// CheckServer is the check service as a grpc-go server serves it.
type CheckServer interface {
	Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error)
	Configure(context.Context, *pb.ConfigureRequest) (*pb.ConfigureResponse, error)
	Measure(context.Context, *pb.MeasureRequest) (*pb.MeasureResponse, error)
}

// UnimplementedServer answers every method Unimplemented; embed it in a
// test server that implements some.
type UnimplementedServer struct{}

func (UnimplementedServer) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method Describe not implemented")
}

func (UnimplementedServer) Configure(context.Context, *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method Configure not implemented")
}

func (UnimplementedServer) Measure(context.Context, *pb.MeasureRequest) (*pb.MeasureResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method Measure not implemented")
}

// Register registers c's check service (wire.NewCheckServer) on s.
func Register(s grpc.ServiceRegistrar, c sdk.Check, logger hclog.Logger) {
	RegisterServer(s, adapter{wire.NewCheckServer(c, logger)})
}

// adapter gives wire.CheckServer's *unaryrpc.Status errors as grpc-go
// statuses.
type adapter struct{ s *wire.CheckServer }

func (a adapter) Describe(ctx context.Context, r *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	resp, err := a.s.Describe(ctx, r)
	return resp, grpcStatus(err)
}

func (a adapter) Configure(ctx context.Context, r *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	resp, err := a.s.Configure(ctx, r)
	return resp, grpcStatus(err)
}

func (a adapter) Measure(ctx context.Context, r *pb.MeasureRequest) (*pb.MeasureResponse, error) {
	resp, err := a.s.Measure(ctx, r)
	return resp, grpcStatus(err)
}

func grpcStatus(err error) error {
	var st *unaryrpc.Status
	if errors.As(err, &st) {
		return status.Error(codes.Code(st.Code), st.Message)
	}
	return err
}

// RegisterServer registers srv as the check service on s.
func RegisterServer(s grpc.ServiceRegistrar, srv CheckServer) {
	s.RegisterService(&serviceDesc, srv)
}

// unary is a grpc-go method handler of one of CheckServer's methods.
func unary[Req any, Resp any](full string, call func(CheckServer, context.Context, *Req) (*Resp, error)) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: strings.TrimPrefix(full, "/"+serviceName+"/"), Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := new(Req)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, req any) (any, error) { return call(srv.(CheckServer), ctx, req.(*Req)) }
		if icpt == nil {
			return h(ctx, in)
		}
		return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, h)
	}}
}

const serviceName = "attestor.v1.Check"

// serviceDesc is the service Check of check.proto.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*CheckServer)(nil),
	Methods: []grpc.MethodDesc{
		unary(wire.MethodDescribe, CheckServer.Describe),
		unary(wire.MethodConfigure, CheckServer.Configure),
		unary(wire.MethodMeasure, CheckServer.Measure),
	},
	Metadata: "internal/wire/attestorv1/check.proto",
}
