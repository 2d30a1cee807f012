package wire_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/binding"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// serveEnv puts the test binary in plugin mode (TestMain): it serves
// served with wire.Serve.
const serveEnv = "WIRE_TEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		if err := wire.Serve(served{}, hclog.NewNullLogger(), func(net.Conn) error { return nil }, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// served is the check the test binary serves in plugin mode.
type served struct{}

func (served) Describe() sdk.Description {
	return sdk.Description{Name: "served", Version: "1.0.0", Summary: "wire.Serve under test"}
}

func (served) Measure(context.Context, sdk.Request) (*sdk.Result, error) {
	return &sdk.Result{Measurements: map[string]any{"ok": true}}, nil
}

// client starts the test binary in plugin mode under go-plugin's own
// client, as the daemon's launch package does, with env added.
func client(t *testing.T, env ...string) (*goplugin.Client, *exec.Cmd, *plugintest.LogBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append([]string{serveEnv + "=1", "PLUGIN_UNIX_SOCKET_DIR=" + t.TempDir()}, env...)
	stderr := new(plugintest.LogBuffer)
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  binding.Handshake,
		VersionedPlugins: binding.ClientPluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     30 * time.Second,
		SkipHostEnv:      true,
		GRPCDialOptions:  []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Logger:           hclog.NewNullLogger(),
		Stderr:           stderr,
	})
	t.Cleanup(c.Kill)
	return c, cmd, stderr
}

// TestServeSpeaksGoPlugin: go-plugin's client, as the daemon runs it,
// completes the handshake with wire.Serve, pings its health service,
// dispenses the check and calls it; Kill's graceful shutdown (go-plugin's
// controller) ends the plugin by itself, exit status 0, rather than after
// go-plugin's two-second wait and a SIGKILL.
func TestServeSpeaksGoPlugin(t *testing.T) {
	t.Parallel()
	c, cmd, stderr := client(t, wire.CookieKey+"="+wire.CookieValue)
	rpc, err := c.Client()
	if err != nil {
		t.Fatalf("handshake: %v\n%s", err, stderr)
	}
	if err := rpc.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	wc := raw.(*checkrpc.Client)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := wc.Describe(ctx)
	if err != nil || d.Name != "served" || d.Version != "1.0.0" {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	if err := wc.Configure(ctx, []byte(`{}`)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	m, err := wc.Measure(ctx, d, bytes.Repeat([]byte{7}, 32))
	if err != nil || string(m.Measurements["ok"]) != "true" {
		t.Fatalf("measure: %+v, %v", m, err)
	}
	sock := c.ReattachConfig().Addr.String()
	start := time.Now()
	c.Kill()
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Kill took %v: the plugin did not end on go-plugin's Shutdown", took)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("the plugin ended with %v, want exit status 0 by itself\n%s", cmd.ProcessState, stderr)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the plugin left its socket %s behind (%v)", sock, err)
	}
}

// TestServeRefusesWhatItLacks: a client that asks for go-plugin features
// wire.Serve does not implement gets a plugin that exits with the reason
// before its handshake, not one that half works.
func TestServeRefusesWhatItLacks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ env, want string }{
		{"PLUGIN_MULTIPLEX_GRPC=true", "multiplexing is not supported"},
		{"PLUGIN_UNIX_SOCKET_GROUP=adm", "group-writable plugin socket is not supported"},
	} {
		t.Run(c.env, func(t *testing.T) {
			t.Parallel()
			cl, _, stderr := client(t, wire.CookieKey+"="+wire.CookieValue, c.env)
			if _, err := cl.Client(); err == nil {
				t.Fatal("the handshake succeeded")
			}
			cl.Kill() // waits for go-plugin's copy of stderr
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q, want it to say %q", stderr, c.want)
			}
		})
	}
}
