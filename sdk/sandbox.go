package sdk

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
)

// Sandbox is what a check needs from the system once configured: the files
// and folders it reads or writes, the commands it runs, the devices it
// opens. It is a sandbox.Rules; see that type for each field.
type Sandbox = sandbox.Rules

// Sandboxer is implemented by checks that confine themselves. Right after
// the first successful Configure, the SDK asks for the check's Sandbox and
// restricts the plugin process to it with Landlock (best effort: a kernel
// without Landlock is logged once and left unrestricted) and with a seccomp
// system call allowlist (sandbox.ProfilePluginExec when Exec is not empty,
// else sandbox.ProfilePlugin). The plugin's go-plugin socket folder is
// added by the SDK. Where the kernel has Landlock, a failure to restrict
// makes Configure fail, and the daemon reports core.plugin_config.
//
// Return exactly what Measure will touch, computed from the configuration
// Configure received (every path a check reads is a config field):
//
//	func (c *check) Sandbox() sdk.Sandbox {
//		return sdk.Sandbox{
//			ReadOnly: []string{c.cfg.EFIVarsDir, c.cfg.SysfsDir},
//			Devices:  []string{c.cfg.TPMDevice},
//			Exec:     []string{c.cfg.RPMOSTree},
//		}
//	}
//
// The sandbox is applied once per process and cannot be widened: a later
// Configure with other paths needs a new plugin process.
type Sandboxer interface {
	Sandbox() Sandbox
}

// DeclaredSandbox configures c with cfg (a JSON object, as the daemon sends
// plugins.<name>.config) and returns the sandbox it declares, or ok false
// when c is not a Sandboxer. Serve uses it in a declare run, through which
// the daemon learns from the plugin executable what the plugin needs
// (docs/plugins.md); a vendor's test may call it to see what its check
// declares. c must be a fresh instance, not a served one.
func DeclaredSandbox(ctx context.Context, c Check, cfg []byte) (sb Sandbox, ok bool, err error) {
	if cfgr, isCfgr := c.(Configurer); isCfgr {
		if err := cfgr.Configure(ctx, NewConfig(cfg)); err != nil {
			return Sandbox{}, false, fmt.Errorf("configure %s: %w", c.Describe().Name, err)
		}
	}
	s, isSb := c.(Sandboxer)
	if !isSb {
		return Sandbox{}, false, nil
	}
	return s.Sandbox(), true, nil
}

// applySandbox restricts the plugin process to c's declared sandbox, when c
// declares one and the process is a plugin the daemon started (the
// handshake cookie is set): a check served in-process by sdktest leaves the
// test process alone. It logs what was enforced, once.
// It returns the rules when Landlock enforces them.
func applySandbox(c Check, logger hclog.Logger) (*sandbox.Rules, error) {
	s, ok := c.(Sandboxer)
	if !ok || os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		return nil, nil
	}
	rules := s.Sandbox()
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
