package wire

import (
	"fmt"
	"reflect"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/unaryrpc"
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
	if !ok || !Started() {
		return nil, nil
	}
	rules := Rules(s.Sandbox())
	host, _ := sandbox.HostConfinement()
	prog := host.Programs.For(sandbox.PluginProfile(rules))
	if len(prog) == 0 {
		// Every plugin start goes through the host's launcher, which
		// hands over the programs: none means a start from elsewhere,
		// which must not run without its own filter.
		return nil, fmt.Errorf("sandbox: the host's grant carries no seccomp program for the %s profile (start the plugin through runtime-attestor)", sandbox.PluginProfile(rules))
	}
	if applied, ok := imposedAsDeclared(host, rules); ok {
		return &applied, narrowSeccomp(rules, prog, logger)
	}
	st, err := sandbox.ApplyPlugin(rules, prog)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	logger.Log(confinementLevel(st.Landlock, st.Seccomp), "sandboxed", "landlock_abi", st.ABI, "landlock", st.Landlock, "reason", st.Reason,
		"seccomp", st.Seccomp, "profile", st.Profile, "skipped", st.Skipped, "summary", st.String())
	if !st.Landlock {
		return nil, nil
	}
	applied := sandbox.ForPlugin(rules)
	return &applied, nil
}

// confinementLevel is the level of a plugin's "sandboxed" line. Every
// on-demand start confines itself again, so a routine line is debug; a
// start that runs without Landlock or without a seccomp filter warns,
// every time, since the process is less confined than its check declared.
func confinementLevel(landlock, seccomp bool) hclog.Level {
	if landlock && seccomp {
		return hclog.Debug
	}
	return hclog.Warn
}

// sandboxOnce applies the check's sandbox after its first successful
// Configure (the caller holds s.sem). A failure is a FailedPrecondition
// answer, which the daemon reports as core.plugin_config.
func (s *CheckServer) sandboxOnce() (*pb.ConfigureResponse, error) {
	if !s.sandboxed {
		applied, err := applySandbox(s.check, s.logger)
		if err != nil {
			return nil, &unaryrpc.Status{Code: unaryrpc.FailedPrecondition, Message: err.Error()}
		}
		if applied != nil {
			s.denials.declare(*applied)
		}
		s.sandboxed = true
	}
	return &pb.ConfigureResponse{}, nil
}

// imposedAsDeclared reports whether the host's launcher already confined
// this process, with Landlock, to exactly the rules the check declares (a
// built-in whose policy grants nothing more), returning them. Landlock
// would then build the same domain a second time: narrowSeccomp installs
// only the filter.
func imposedAsDeclared(host sandbox.Confinement, declared sandbox.Rules) (sandbox.Rules, bool) {
	if !host.Landlock {
		return sandbox.Rules{}, false
	}
	want := sandbox.ForPlugin(declared)
	return want, reflect.DeepEqual(host.Rules.Merge(), want.Merge())
}

// narrowSeccomp installs the plugin's own seccomp filter, prog, the
// program the host assembled for its profile, which takes away the calls
// the host's filter leaves for narrowing (prctl, seccomp, landlock_*, and
// execveat, with which a plugin could run an image it wrote to a memory
// file, where Landlock does not check execution).
func narrowSeccomp(rules sandbox.Rules, prog sandbox.Program, logger hclog.Logger) error {
	on, err := sandbox.InstallProgram(prog)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	logger.Log(confinementLevel(true, on), "sandboxed", "landlock", "imposed by the host's launcher, exactly as declared", "seccomp", on,
		"profile", sandbox.PluginProfile(rules).String(), "filter", "host's program")
	return nil
}
