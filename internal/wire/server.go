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

	"github.com/secure-ai/runtime-attestor/internal/unaryrpc"
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

// The check service's methods, by their full gRPC names (check.proto).
const (
	MethodDescribe  = "/attestor.v1.Check/Describe"
	MethodConfigure = "/attestor.v1.Check/Configure"
	MethodMeasure   = "/attestor.v1.Check/Measure"
)

// NewCheckServer returns the check service of c: it adapts c, applies its
// sandbox after its first Configure and explains the sandbox's denials in
// its answers. Its errors are *unaryrpc.Status, the call's gRPC status;
// a server of any gRPC implementation may serve it (Serve serves it with
// internal/unaryrpc, internal/wire/checkrpc with grpc-go).
func NewCheckServer(c sdk.Check, logger hclog.Logger) *CheckServer {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &CheckServer{check: c, logger: logger, sem: make(chan struct{}, 1), denials: &denials{check: c}}
}

// CheckServer adapts a Check to the check service. It turns a panic in the
// check into an error answer and never lets two calls into the check
// overlap.
type CheckServer struct {
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

func (s *CheckServer) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return unaryrpc.FromContextError(ctx.Err())
	}
}

func (s *CheckServer) unlock() { <-s.sem }

// recoverTo turns a panic into a gRPC Internal error.
func (s *CheckServer) recoverTo(op string, err *error) {
	if r := recover(); r != nil {
		s.logger.Error("check panicked", "op", op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = unaryrpc.Errorf(unaryrpc.Internal, "%s panicked: %v", op, r)
	}
}

func (s *CheckServer) Describe(_ context.Context, _ *pb.DescribeRequest) (resp *pb.DescribeResponse, err error) {
	defer s.recoverTo("describe", &err)
	d := s.check.Describe()
	out := &pb.DescribeResponse{Name: d.Name, Version: d.Version, Description: d.Summary, Fills: d.Fills}
	for _, f := range d.Findings {
		out.Findings = append(out.Findings, &pb.FindingSpec{Code: f.Code, DefaultSeverity: pb.Severity(f.DefaultSeverity), Description: f.Description})
	}
	return out, nil
}

func (s *CheckServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (resp *pb.ConfigureResponse, err error) {
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
				return nil, unaryrpc.Errorf(unaryrpc.InvalidArgument, "%s: unknown key (this plugin takes no configuration)", k)
			}
		}
		return s.sandboxOnce()
	}
	if cerr := cfgr.Configure(ctx, sdk.NewConfig(req.GetConfigJson())); cerr != nil {
		var ce *sdk.ConfigError
		if errors.As(cerr, &ce) {
			return nil, &unaryrpc.Status{Code: unaryrpc.InvalidArgument, Message: ce.Error()}
		}
		return nil, &unaryrpc.Status{Code: unaryrpc.FailedPrecondition, Message: cerr.Error()}
	}
	return s.sandboxOnce()
}

func (s *CheckServer) Measure(ctx context.Context, req *pb.MeasureRequest) (resp *pb.MeasureResponse, err error) {
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
		return nil, &unaryrpc.Status{Code: unaryrpc.Unknown, Message: s.denials.explain(merr.Error())}
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
		return nil, unaryrpc.Errorf(unaryrpc.Internal, "encode measurements: %v", jerr)
	}
	out := &pb.MeasureResponse{MeasurementsJson: raw}
	for _, f := range res.Findings {
		out.Findings = append(out.Findings, &pb.Finding{Code: f.Code, Severity: pb.Severity(f.Severity), Message: s.denials.explain(f.Message), Subject: f.Subject})
	}
	return out, nil
}
