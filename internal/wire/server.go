package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// PluginName is the name of the one go-plugin plugin each executable serves.
const PluginName = "check"

// The go-plugin handshake's magic cookie, which every check plugin and the
// daemon share (internal/wire/binding builds go-plugin's HandshakeConfig
// from them). The cookie only stops a plugin being run by hand by mistake;
// it is not a security feature (binary integrity is pinned by SHA-256).
const (
	CookieKey   = "RUNTIME_ATTESTOR_PLUGIN"
	CookieValue = "8f1c2e0a-attestor-check-v1"
)

// Started reports whether this process was started by the daemon (or a
// host speaking its protocol): the handshake cookie is set.
func Started() bool { return os.Getenv(CookieKey) == CookieValue }

// RegisterCheck registers c's check service on s: the gRPC server that
// adapts c, applies its sandbox after its first Configure and explains the
// sandbox's denials in its answers.
func RegisterCheck(s grpc.ServiceRegistrar, c sdk.Check, logger hclog.Logger) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	pb.RegisterCheckServer(s, &server{check: c, logger: logger, sem: make(chan struct{}, 1), denials: &denials{check: c}})
}

// server adapts a Check to the gRPC service. It turns a panic in the check
// into an error answer and never lets two calls into the check overlap.
type server struct {
	pb.UnimplementedCheckServer
	check  sdk.Check
	logger hclog.Logger
	sem    chan struct{}
	// sandboxed is set once the check's declared sandbox is applied
	// (sandbox.go); guarded by sem.
	sandboxed bool
	// denials explains the permission errors the sandbox caused in the
	// check's answers (denied.go).
	denials *denials
}

func (s *server) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (s *server) unlock() { <-s.sem }

// recoverTo turns a panic into a gRPC Internal error.
func (s *server) recoverTo(op string, err *error) {
	if r := recover(); r != nil {
		s.logger.Error("check panicked", "op", op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "%s panicked: %v", op, r)
	}
}

func (s *server) Describe(_ context.Context, _ *pb.DescribeRequest) (resp *pb.DescribeResponse, err error) {
	defer s.recoverTo("describe", &err)
	d := s.check.Describe()
	out := &pb.DescribeResponse{Name: d.Name, Version: d.Version, Description: d.Summary, Fills: d.Fills}
	for _, f := range d.Findings {
		out.Findings = append(out.Findings, &pb.FindingSpec{Code: f.Code, DefaultSeverity: pb.Severity(f.DefaultSeverity), Description: f.Description})
	}
	return out, nil
}

func (s *server) Configure(ctx context.Context, req *pb.ConfigureRequest) (resp *pb.ConfigureResponse, err error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	defer s.recoverTo("configure", &err)
	cfgr, ok := s.check.(sdk.Configurer)
	if !ok {
		var probe map[string]json.RawMessage
		if jerr := json.Unmarshal(req.GetConfigJson(), &probe); jerr == nil {
			for k := range probe {
				return nil, status.Errorf(codes.InvalidArgument, "%s: unknown key (this plugin takes no configuration)", k)
			}
		}
		return s.sandboxOnce()
	}
	if cerr := cfgr.Configure(ctx, sdk.NewConfig(req.GetConfigJson())); cerr != nil {
		var ce *sdk.ConfigError
		if errors.As(cerr, &ce) {
			return nil, status.Error(codes.InvalidArgument, ce.Error())
		}
		return nil, status.Error(codes.FailedPrecondition, cerr.Error())
	}
	return s.sandboxOnce()
}

func (s *server) Measure(ctx context.Context, req *pb.MeasureRequest) (resp *pb.MeasureResponse, err error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	defer s.recoverTo("measure", &err)
	r := sdk.Request{Nonce: req.GetNonce(), Logger: s.logger}
	if d := req.GetDeadlineUnixNano(); d > 0 {
		r.Deadline = time.Unix(0, d)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, r.Deadline)
		defer cancel()
	} else if d, ok := ctx.Deadline(); ok {
		r.Deadline = d
	}
	res, merr := s.check.Measure(ctx, r)
	if merr != nil {
		return nil, status.Error(codes.Unknown, s.denials.explain(merr.Error()))
	}
	if res == nil {
		res = sdk.NewResult()
	}
	m := res.Measurements
	if m == nil {
		m = map[string]any{}
	}
	raw, jerr := json.Marshal(m)
	if jerr != nil {
		return nil, status.Errorf(codes.Internal, "encode measurements: %v", jerr)
	}
	out := &pb.MeasureResponse{MeasurementsJson: raw}
	for _, f := range res.Findings {
		out.Findings = append(out.Findings, &pb.Finding{Code: f.Code, Severity: pb.Severity(f.Severity), Message: s.denials.explain(f.Message), Subject: f.Subject})
	}
	return out, nil
}
