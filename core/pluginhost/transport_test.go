package pluginhost

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/secure-ai/runtime-attestor/core/pluginhost/launch"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
)

// intruderEnv puts the test binary in intruder mode: it dials the plugin
// socket named by the variable and calls Measure, as a local process of the
// daemon's user that is not the daemon would.
const intruderEnv = "RUNTIME_ATTESTOR_TEST_INTRUDER"

// runIntruder calls Measure on the socket sock and prints "served" or the
// error; its exit status is 0 either way.
func runIntruder(sock string) int {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		os.Stdout.WriteString("dial: " + err.Error())
		return 0
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Invoke(ctx, wire.MethodMeasure, &pb.MeasureRequest{Nonce: make([]byte, 32)}, new(pb.MeasureResponse)); err != nil {
		os.Stdout.WriteString("refused: " + err.Error())
		return 0
	}
	os.Stdout.WriteString("served")
	return 0
}

// TestIntruderRefusedByPlugin: another local process of the daemon's user
// connects to a running plugin's socket and calls Measure; the plugin's
// peer check closes the connection before any call reaches it.
func TestIntruderRefusedByPlugin(t *testing.T) {
	t.Parallel()
	f, err := os.Open(binary(t, "light"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logs := &logBuffer{}
	sockDir := t.TempDir()
	if err := os.Chmod(sockDir, 0o700); err != nil { // as the host makes it
		t.Fatal(err)
	}
	lp := launch.Plugin{Launcher: launcher(t), Binary: f, Argv0: f.Name(), SocketDir: sockDir,
		LogLevel: "debug", StartTimeout: 30 * time.Second, Stderr: logs}
	client, _, rules, err := lp.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer rules.Close()
	release, err := launch.StartLocked(client)
	defer release()
	defer client.Kill()
	var wc *checkrpc.Client
	if err == nil {
		wc, err = launch.Dispense(client)
	}
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs)
	}
	sock := client.ReattachConfig().Addr.String()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), intruderEnv+"="+sock)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("intruder: %v", err)
	}
	if !strings.HasPrefix(string(out), "refused: ") {
		t.Fatalf("a process other than the daemon called Measure on the plugin: %s", out)
	}
	// Refused by the plugin's peer check, not by a plugin that was gone:
	// it still serves the daemon.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := wc.Describe(ctx); err != nil {
		t.Fatalf("the plugin no longer serves the daemon after the intruder (%s): %v\n%s", out, err, logs)
	}
	t.Logf("intruder: %s", out)
}

// TestForeignSocketRefusedByHost: a hostile plugin announces a socket
// served by another process (here the test process, which serves the
// check protocol with no peer check), outside its folder or inside it;
// the host refuses to talk before any call.
func TestForeignSocketRefusedByHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		inside bool
		want   string
	}{
		{name: "outside its folder", want: "not in its own folder"},
		{name: "inside its folder, another process", inside: true, want: "not by the plugin process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "sock")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			foreign := filepath.Join(tmp, "foreign.sock")
			if tt.inside {
				foreign = filepath.Join(dir, "foreign.sock")
			}
			serveForeign(t, foreign)
			err := startForeign(t, dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("the host talked to %s: %v; want a refusal naming %q", foreign, err, tt.want)
			}
		})
	}
}

// serveForeign serves the check protocol at path, unchecked: an impostor
// that registers the service with the generated default methods (every
// call answers Unimplemented). What it answers does not matter: the host
// must refuse the connection before its first call.
func serveForeign(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	checkrpc.RegisterServer(s, checkrpc.UnimplementedServer{})
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
}

// startForeign starts testplugins/foreignsock with socket folder dir and
// returns the error of its first call.
func startForeign(t *testing.T, dir string) error {
	t.Helper()
	f, err := os.Open(binary(t, "foreignsock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lp := launch.Plugin{Launcher: launcher(t), Binary: f, Argv0: f.Name(), SocketDir: dir,
		StartTimeout: 30 * time.Second}
	client, _, rules, err := lp.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer rules.Close()
	release, err := launch.StartLocked(client)
	defer release()
	defer client.Kill()
	if err != nil {
		return err
	}
	wc, err := launch.Dispense(client)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = wc.Describe(ctx)
	return err
}

// TestHostileGrantedSocketRefusedByPeer: a hostile plugin granted connect(2)
// to another plugin's socket reaches it, and the other plugin's peer check
// closes the connection before its gRPC server answers (granted no socket,
// seccomp refuses the connect itself: TestHostileConfined).
func TestHostileGrantedSocketRefusedByPeer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, "hostile", "hostile")
	hs := newStrictHarness(t, Options{Dir: dir, Resident: true, Plugins: []Spec{{Name: "good", Enabled: true}}})
	hs.start()
	goodSock := socketOf(t, hs, "good")
	spec := Spec{Name: "hostile", Enabled: true, ConfigJSON: cfg("connect", []string{goodSock}),
		Sandbox: sandbox.Rules{UnixSockets: []string{goodSock}}}
	hs.host.mu.Lock()
	hs.host.plugins[spec.Name] = &plugin{name: spec.Name, spec: spec, listed: true, path: filepath.Join(dir, FilePrefix+spec.Name)}
	hs.host.mu.Unlock()
	rs := hs.measure()
	wantGood(t, rs, "good")
	r := rs["hostile"]
	if r.Fault != "" {
		t.Fatalf("hostile: fault %s %v", r.Fault, r.Findings)
	}
	if o := attempts(t, r)["connect "+goodSock]; !strings.HasPrefix(o, "connected, refused") {
		t.Fatalf("connect %s: %q, want connected and then refused by the peer check", goodSock, o)
	}
}
