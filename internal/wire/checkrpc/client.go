// Package checkrpc is the check service on grpc-go: the daemon's client of
// a plugin (Client), and the service grpc-go servers register (Register,
// RegisterServer: go-plugin's own server, which the sdktest harness and
// test plugins use). Its stubs are written here rather than generated
// beside the messages, so that package attestorv1, which a check plugin
// links, links no gRPC; a plugin's executable serves with wire.Serve.
package checkrpc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secure-ai/runtime-attestor/internal/wire"
	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Client is the daemon's view of one plugin.
type Client struct {
	cc grpc.ClientConnInterface
}

// NewClient returns the client of the plugin at the other end of cc.
func NewClient(cc grpc.ClientConnInterface) *Client { return &Client{cc: cc} }

// Describe asks the plugin to describe itself and checks the answer against
// the protocol rules (wire.ValidateDescription).
func (c *Client) Describe(ctx context.Context) (sdk.Description, error) {
	resp := new(pb.DescribeResponse)
	if err := c.cc.Invoke(ctx, wire.MethodDescribe, &pb.DescribeRequest{}, resp); err != nil {
		return sdk.Description{}, err
	}
	d := wire.DescriptionFromProto(resp)
	if err := wire.ValidateDescription(d); err != nil {
		return d, err
	}
	return d, nil
}

// Configure sends the plugin its configuration. A configuration the plugin
// refuses is returned as *sdk.ConfigError.
func (c *Client) Configure(ctx context.Context, configJSON []byte) error {
	err := c.cc.Invoke(ctx, wire.MethodConfigure, &pb.ConfigureRequest{ConfigJson: configJSON}, new(pb.ConfigureResponse))
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
		return &sdk.ConfigError{Msg: st.Message()}
	}
	return err
}

// Measure asks for one measurement under ctx and checks the answer against
// d (wire.ValidateMeasurement). A *wire.ProtocolError means the plugin
// broke the protocol; a *CheckError means the check reported that it could
// not measure.
func (c *Client) Measure(ctx context.Context, d sdk.Description, nonce []byte) (*wire.Measurement, error) {
	req := &pb.MeasureRequest{Nonce: nonce}
	if dl, ok := ctx.Deadline(); ok {
		req.DeadlineUnixNano = dl.UnixNano()
	}
	resp := new(pb.MeasureResponse)
	if err := c.cc.Invoke(ctx, wire.MethodMeasure, req, resp); err != nil {
		if st, ok := status.FromError(err); ok && (st.Code() == codes.Unknown || st.Code() == codes.Internal) && ctx.Err() == nil {
			return nil, &CheckError{Msg: st.Message()}
		}
		return nil, err
	}
	m, err := wire.MeasurementFromProto(resp)
	if err != nil {
		return nil, err
	}
	if err := wire.ValidateMeasurement(d, m); err != nil {
		return nil, err
	}
	return m, nil
}

// CheckError is a measurement the check itself reported as failed (an error
// returned from Measure, or a panic the SDK recovered).
type CheckError struct{ Msg string }

func (e *CheckError) Error() string { return "check failed: " + e.Msg }
