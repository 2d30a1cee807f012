package daemontest

import (
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// TestStartMovesOffATakenPort: another server binds the Env's port
// between FreeAddr and the daemon's start, and answers /health as a daemon
// would; Start neither takes that answer for the daemon's nor fails the
// test: it moves the daemon (policy file included) to a new port.
func TestStartMovesOffATakenPort(t *testing.T) {
	t.Parallel()
	env := New(t, Options{Plugins: []string{}})
	taken := env.Addr
	squat, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	go func() {
		_ = http.Serve(squat, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"state":"attested"}`))
		}))
	}()
	p := env.Start()
	if env.Addr == taken {
		t.Fatalf("the daemon serves on %s, the squatted address", env.Addr)
	}
	if !strings.Contains(p.Stderr(), env.Addr) {
		t.Errorf("the daemon's log does not name its new address %s:\n%s", env.Addr, p.Stderr())
	}
	raw, err := os.ReadFile(env.PolicyPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), taken) || !strings.Contains(string(raw), env.Addr) {
		t.Errorf("the policy file does not name the new address %s instead of %s", env.Addr, taken)
	}
	p.Stop()
}

// TestFreeAddrOutsideEphemeralRange: the ports FreeAddr hands out are
// never ones the kernel gives a socket bound to port 0.
func TestFreeAddrOutsideEphemeralRange(t *testing.T) {
	t.Parallel()
	low := ephemeralLow()
	for range 50 {
		_, port, err := net.SplitHostPort(FreeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(port)
		if n < reservedBelow || n >= low {
			t.Fatalf("FreeAddr gave port %d, want one in [%d, %d)", n, reservedBelow, low)
		}
	}
}
