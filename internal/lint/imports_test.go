package lint

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// module is the module's import path.
const module = "github.com/secure-ai/runtime-attestor"

// TestCoreImportsNoPlugin: nothing under core/ links a plugin's code. What
// the daemon needs from a plugin it reads from the plugin's executable (its
// declaration), and the TPM parts it shares with the tpm plugin live in
// tpm/ and internal/, so that a daemon never runs a compiled-in copy of a
// plugin in place of the installed executable.
func TestCoreImportsNoPlugin(t *testing.T) {
	t.Parallel()
	const plugins = module + "/plugins/"
	for _, pkg := range deps(t, "./core/...") {
		if strings.HasPrefix(pkg, plugins) {
			t.Errorf("core/ depends on %s: move what it shares with core to tpm/ or internal/", pkg)
		}
	}
}

// TestEngineBelowAPI: the engine publishes the snapshot the API reads and
// links no HTTP server or metrics library.
func TestEngineBelowAPI(t *testing.T) {
	t.Parallel()
	for _, pkg := range deps(t, "./core/engine") {
		for _, above := range []string{"github.com/secure-ai/runtime-attestor/core/api", "github.com/labstack/echo", "github.com/prometheus/"} {
			if strings.HasPrefix(pkg, above) {
				t.Errorf("core/engine depends on %s", pkg)
			}
		}
	}
}

// heavy are the libraries only a plugin process, its host and the
// daemon's confinement link.
var heavy = []string{"github.com/hashicorp/go-plugin", "google.golang.org/grpc", "github.com/landlock-lsm/go-landlock", "github.com/elastic/go-seccomp-bpf"}

// TestLightPackages: the SDK a vendor writes against, the state machine,
// the bundle and the operator's client link none of the plugin protocol or
// the sandbox implementation, and the SDK nothing of the project outside
// sdk.
func TestLightPackages(t *testing.T) {
	t.Parallel()
	for _, pattern := range []string{"./sdk", "./core/state", "./core/bundle", "./core/api/apitypes", "./cmd/attestctl"} {
		for _, pkg := range deps(t, pattern) {
			for _, h := range heavy {
				if pkg == h || strings.HasPrefix(pkg, h+"/") {
					t.Errorf("%s depends on %s", pattern, pkg)
				}
			}
			if pattern == "./sdk" && strings.HasPrefix(pkg, module+"/") && pkg != module+"/sdk" {
				t.Errorf("sdk depends on %s: the SDK is standard library only", pkg)
			}
		}
	}
}

// TestStartsLinkNoAssembler: the Go launcher and every plugin load the
// seccomp programs the daemon assembled and link no assembler: its system
// call tables cost each process about 0.4 ms at start, before main, at
// every plugin start (internal/sandbox/filter). The shipped launcher is C
// and links nothing of Go.
func TestStartsLinkNoAssembler(t *testing.T) {
	t.Parallel()
	for _, pkg := range deps(t, "./core/pluginhost/launch/launcher", "./cmd/attestor-check-...", "./sdk/plugin") {
		for _, asm := range []string{"github.com/elastic/go-seccomp-bpf", "golang.org/x/net/bpf", module + "/internal/sandbox/filter"} {
			if pkg == asm || strings.HasPrefix(pkg, asm+"/") {
				t.Errorf("a launcher or plugin links %s", pkg)
			}
		}
	}
}

// TestPluginsLinkNoGoPluginServer: a check plugin serves the daemon with
// wire.Serve and links neither go-plugin nor what go-plugin's server
// brings (gRPC reflection and the protobuf descriptors it registers,
// net/rpc, encoding/gob, yamux): their package initialisation cost each
// plugin start about 1.5 ms before main.
func TestPluginsLinkNoGoPluginServer(t *testing.T) {
	t.Parallel()
	heavy := []string{"github.com/hashicorp/go-plugin", "github.com/hashicorp/yamux", "google.golang.org/grpc/reflection",
		"google.golang.org/protobuf/reflect/protodesc", "net/rpc", "encoding/gob", module + "/internal/wire/binding"}
	for _, pkg := range deps(t, "./cmd/attestor-check-...", "./sdk/plugin") {
		for _, h := range heavy {
			if pkg == h || strings.HasPrefix(pkg, h+"/") {
				t.Errorf("a plugin links %s", pkg)
			}
		}
	}
}

// TestPluginsLinkNoGRPC: a check plugin serves its daemon with
// internal/unaryrpc; grpc-go's server, with net/http and crypto/tls
// that it links, cost each plugin start about 1 ms of package
// initialisation and as much again to serve (docs/performance.md, "The
// plugin's gRPC server").
func TestPluginsLinkNoGRPC(t *testing.T) {
	t.Parallel()
	heavy := []string{"google.golang.org/grpc", "net/http", "crypto/tls",
		module + "/internal/wire/checkrpc", module + "/internal/peercred/grpccreds"}
	for _, pkg := range deps(t, "./cmd/attestor-check-...", "./sdk/plugin") {
		for _, h := range heavy {
			if pkg == h || strings.HasPrefix(pkg, h+"/") {
				t.Errorf("a plugin links %s", pkg)
			}
		}
	}
}

// TestPolicyBelowSandbox: the policy is data; it imports neither the
// sandbox implementation nor the plugin protocol.
func TestPolicyBelowSandbox(t *testing.T) {
	t.Parallel()
	for _, pkg := range deps(t, "./policy") {
		for _, below := range append([]string{module + "/internal/sandbox", module + "/internal/wire"}, heavy...) {
			if pkg == below || strings.HasPrefix(pkg, below+"/") {
				t.Errorf("policy depends on %s", pkg)
			}
		}
	}
}

// deps is `go list -deps` of the patterns, in the module's root.
func deps(t *testing.T, patterns ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := execGo(ctx, append([]string{"list", "-deps"}, patterns...)...)
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %v: %v", patterns, err)
	}
	return strings.Fields(string(out))
}

// execGo is the go command with args.
func execGo(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "go", args...)
}
