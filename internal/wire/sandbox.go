package wire

import (
	"fmt"
	"os"
	"reflect"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Rules is the sandbox.Rules a check's declared sdk.Sandbox stands for.
func Rules(sb sdk.Sandbox) sandbox.Rules { return sandbox.Rules(sb) }

// applySandbox restricts the plugin process to c's declared sandbox, when c
// declares one and the process is a plugin the daemon started (the
// handshake cookie is set): a check served in-process by sdktest leaves the
// test process alone. It logs what was enforced, once.
// It returns the rules when Landlock enforces them.
func applySandbox(c sdk.Check, logger hclog.Logger) (*sandbox.Rules, error) {
	s, ok := c.(sdk.Sandboxer)
	if !ok || os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		return nil, nil
	}
	rules := Rules(s.Sandbox())
	if applied, prog, ok := imposedAsDeclared(rules); ok {
		return &applied, narrowSeccomp(rules, prog, logger)
	}
	st, err := sandbox.ApplyPlugin(rules)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	logger.Info("sandboxed", "landlock_abi", st.ABI, "landlock", st.Landlock, "reason", st.Reason,
		"seccomp", st.Seccomp, "profile", st.Profile, "skipped", st.Skipped, "summary", st.String())
	if !st.Landlock {
		return nil, nil
	}
	applied := sandbox.ForPlugin(rules)
	return &applied, nil
}

// sandboxOnce applies the check's sandbox after its first successful
// Configure (the caller holds s.sem). A failure is a FailedPrecondition
// answer, which the daemon reports as core.plugin_config.
func (s *server) sandboxOnce() (*pb.ConfigureResponse, error) {
	if !s.sandboxed {
		applied, err := applySandbox(s.check, s.logger)
		if err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		if applied != nil {
			s.denials.declare(*applied)
		}
		s.sandboxed = true
	}
	return &pb.ConfigureResponse{}, nil
}

// imposedAsDeclared reports whether the host's launcher already confined
// this process with exactly the rules the check declares (a built-in whose
// policy grants nothing more), returning them and the seccomp program the
// host assembled for the plugin (nil: none). Landlock would then build the
// same domain a second time: narrowSeccomp installs only the filter.
func imposedAsDeclared(declared sandbox.Rules) (sandbox.Rules, sandbox.Program, bool) {
	host, prog, ok := sandbox.HostConfinement()
	if !ok {
		return sandbox.Rules{}, nil, false
	}
	want := sandbox.ForPlugin(declared)
	return want, prog, reflect.DeepEqual(host.Merge(), want.Merge())
}

// narrowSeccomp installs the plugin's own seccomp filter, which takes away
// the calls the host's filter leaves for narrowing (prctl, seccomp,
// landlock_*, and execveat, with which a plugin could run an image it
// wrote to a memory file, where Landlock does not check execution): prog,
// the program the host assembled for it, else the profile's filter
// assembled here.
func narrowSeccomp(rules sandbox.Rules, prog sandbox.Program, logger hclog.Logger) error {
	var on bool
	var err error
	how := "host's program"
	if len(prog) > 0 {
		on, err = sandbox.InstallProgram(prog)
	} else {
		how = "assembled here"
		on, err = sandbox.InstallSeccomp(sandbox.PluginProfile(rules))
	}
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	logger.Info("sandboxed", "landlock", "imposed by the host's launcher, exactly as declared", "seccomp", on,
		"profile", sandbox.PluginProfile(rules).String(), "filter", how)
	return nil
}
