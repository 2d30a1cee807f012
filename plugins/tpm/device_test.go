package tpm

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// These tests run the real check (no simulator) against paths where there
// is no TPM, or something that is not one.

func TestAbsentDevice(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the socket file stays, nobody listens: swtpm is not running

	for i, tc := range []struct {
		name    string
		cfg     map[string]any
		require bool
		subject string
	}{
		{"no device node", map[string]any{"device": filepath.Join(dir, "tpmrm0")}, false, filepath.Join(dir, "tpmrm0")},
		{"no device node, TPM required", map[string]any{"device": filepath.Join(dir, "tpmrm0")}, true, filepath.Join(dir, "tpmrm0")},
		{"no swtpm socket, TPM required", map[string]any{"swtpm_socket": filepath.Join(dir, "swtpm.sock")}, true, filepath.Join(dir, "swtpm.sock")},
		{"swtpm not listening", map[string]any{"swtpm_socket": stale}, false, stale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := sdktest.New(t, New())
			cfg := tc.cfg
			cfg["require_tpm"] = tc.require
			cfg["expected_pcrs"] = map[string]string{"7": pin}
			if err := h.Configure(cfg); err != nil {
				t.Fatal(err)
			}
			r, m := mustMeasure(t, h, newNonce(t))
			sev := sdk.SeverityInfo
			if tc.require {
				sev = sdk.SeverityCritical
			}
			only(t, r, map[string]sdk.Severity{CodeUnavailable: sev})
			f := r.Findings[0]
			if f.Subject != tc.subject || tc.require != strings.Contains(f.Message, "requires a TPM") {
				t.Errorf("Test %d: finding %+v", i, f)
			}
			if m.available || m.verified || m.pcrs != nil || m.quote != nil {
				t.Errorf("Test %d: %+v; want no TPM, no PCRs, no quote", i, m)
			}
		})
	}
}

func TestNotATPM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	regular := filepath.Join(dir, "tpmrm0")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.sock")
	serve(t, garbage, func(c net.Conn) {
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err == nil {
			// A header that declares fewer bytes than a header.
			_, _ = c.Write([]byte{0x80, 0x01, 0, 0, 0, 5, 0, 0, 0, 0})
		}
	})
	for i, tc := range []struct {
		name    string
		cfg     map[string]any
		require bool
		message string
	}{
		{"regular file", map[string]any{"device": regular}, true, "not a character device"},
		{"/dev/null answers nothing", map[string]any{"device": "/dev/null"}, false, "read response"},
		{"/dev/zero answers zeros", map[string]any{"device": "/dev/zero"}, true, "response header declares 0 bytes"},
		{"socket path is a file", map[string]any{"swtpm_socket": regular}, false, "not a Unix socket"},
		{"socket answers garbage", map[string]any{"swtpm_socket": garbage}, false, "declares 5 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := sdktest.New(t, New())
			tc.cfg["require_tpm"] = tc.require
			if err := h.Configure(tc.cfg); err != nil {
				t.Fatal(err)
			}
			r, m := mustMeasure(t, h, newNonce(t))
			sev := sdk.SeverityHigh
			if tc.require {
				sev = sdk.SeverityCritical
			}
			only(t, r, map[string]sdk.Severity{CodeOpenFailed: sev})
			if !strings.Contains(r.Findings[0].Message, tc.message) {
				t.Errorf("Test %d: message %q should contain %q", i, r.Findings[0].Message, tc.message)
			}
			if m.available || m.verified {
				t.Errorf("Test %d: %+v", i, m)
			}
		})
	}
}

// TestHungTPM points the check at a socket that takes commands and never
// answers: the measurement ends within its deadline with tpm.busy instead
// of hanging until the daemon gives up on the plugin.
func TestHungTPM(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "hung.sock")
	serve(t, sock, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	h := sdktest.New(t, New())
	h.Timeout = 2 * time.Second
	if err := h.Configure(map[string]any{"swtpm_socket": sock}); err != nil {
		t.Fatal(err)
	}
	r, m := mustMeasure(t, h, newNonce(t))
	only(t, r, map[string]sdk.Severity{CodeBusy: sdk.SeverityHigh})
	if !strings.Contains(r.Findings[0].Message, "TPM2_PCR_Read") || !strings.Contains(r.Findings[0].Message, "deadline") {
		t.Errorf("message %q should name the command and the deadline", r.Findings[0].Message)
	}
	if m.available {
		t.Error("a TPM that never answered is not available")
	}
}

// serve listens on a Unix socket at path and runs handle for every
// connection until the test ends.
func serve(t *testing.T, path string, handle func(net.Conn)) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
