package wire

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Client is the daemon's view of one plugin.
type Client struct {
	c pb.CheckClient
}

// NewClient wraps a gRPC client.
func NewClient(c pb.CheckClient) *Client { return &Client{c: c} }

// Describe asks the plugin to describe itself and checks the answer against
// the protocol rules (ValidateDescription).
func (c *Client) Describe(ctx context.Context) (sdk.Description, error) {
	resp, err := c.c.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return sdk.Description{}, err
	}
	d := DescriptionFromProto(resp)
	if err := ValidateDescription(d); err != nil {
		return d, err
	}
	return d, nil
}

// Configure sends the plugin its configuration. A configuration the plugin
// refuses is returned as *sdk.ConfigError.
func (c *Client) Configure(ctx context.Context, configJSON []byte) error {
	_, err := c.c.Configure(ctx, &pb.ConfigureRequest{ConfigJson: configJSON})
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
		return &sdk.ConfigError{Msg: st.Message()}
	}
	return err
}

// Measure asks for one measurement under ctx and checks the answer against
// d (ValidateMeasurement). A *ProtocolError means the plugin broke the
// protocol; a *CheckError means the check reported that it could not measure.
func (c *Client) Measure(ctx context.Context, d sdk.Description, nonce []byte) (*Measurement, error) {
	req := &pb.MeasureRequest{Nonce: nonce}
	if dl, ok := ctx.Deadline(); ok {
		req.DeadlineUnixNano = dl.UnixNano()
	}
	resp, err := c.c.Measure(ctx, req)
	if err != nil {
		if st, ok := status.FromError(err); ok && (st.Code() == codes.Unknown || st.Code() == codes.Internal) && ctx.Err() == nil {
			return nil, &CheckError{Msg: st.Message()}
		}
		return nil, err
	}
	m, err := MeasurementFromProto(resp)
	if err != nil {
		return nil, err
	}
	if err := ValidateMeasurement(d, m); err != nil {
		return nil, err
	}
	return m, nil
}

// CheckError is a measurement the check itself reported as failed (an error
// returned from Measure, or a panic the SDK recovered).
type CheckError struct{ Msg string }

func (e *CheckError) Error() string { return "check failed: " + e.Msg }

// ProtocolError is an answer that breaks the protocol.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "protocol violation: " + e.Msg }

// IsProtocolError reports whether err is a *ProtocolError.
func IsProtocolError(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}

// DefaultTimeout is the deadline the sdktest harness uses when none is set.
const DefaultTimeout = 30 * time.Second
