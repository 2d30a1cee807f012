package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/tpmio"
)

// startSwtpm starts swtpm as scripts/tpm-demo.sh does, in a temporary
// folder; skipped when swtpm is not installed.
func startSwtpm(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm is not installed")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "swtpm.sock")
	cmd := exec.Command(bin, "socket", "--tpm2",
		"--server", "type=unixio,path="+sock,
		"--ctrl", "type=unixio,path="+filepath.Join(dir, "swtpm.ctrl"),
		"--tpmstate", "dir="+dir,
		"--flags", "not-need-init,startup-clear")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		if c, err := tpmio.DialSocket(ctx, sock); err == nil {
			c.Close()
			return sock
		}
		select {
		case err := <-exited:
			t.Fatalf("swtpm exited: %v", err)
		case <-ctx.Done():
			t.Fatal("swtpm did not start")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func extended(old []byte, event string) []byte {
	d := sha256.Sum256([]byte(event))
	h := sha256.New()
	h.Write(old)
	h.Write(d[:])
	return h.Sum(nil)
}

func TestDemoHelper(t *testing.T) {
	sock := startSwtpm(t)
	var out bytes.Buffer
	if err := run([]string{"-socket", sock, "boot"}, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run([]string{"-socket", sock, "pcrs"}, &out); err != nil {
		t.Fatal(err)
	}
	// The flow mapping the script pastes into the policy is also JSON.
	var pins map[string]string
	if err := json.Unmarshal(out.Bytes(), &pins); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	zero := make([]byte, 32)
	for p, ev := range bootEvents {
		if want := hex.EncodeToString(extended(zero, ev)); pins[strconv.Itoa(p)] != want {
			t.Errorf("PCR %d = %s, want %s", p, pins[strconv.Itoa(p)], want)
		}
	}
	out.Reset()
	if err := run([]string{"-socket", sock, "extend", "4", "tamper"}, &out); err != nil {
		t.Fatal(err)
	}
	pcr4, _ := hex.DecodeString(pins["4"])
	if want := "PCR 4 is now " + hex.EncodeToString(extended(pcr4, "tamper")); strings.TrimSpace(out.String()) != want {
		t.Errorf("%q, want %q", out.String(), want)
	}

	for i, args := range [][]string{
		{"boot"},
		{"-socket", sock},
		{"-socket", sock, "extend", "24", "x"},
		{"-socket", sock, "extend", "4"},
		{"-socket", sock, "reboot"},
		{"-socket", filepath.Join(t.TempDir(), "none"), "pcrs"},
	} {
		if err := run(args, &out); err == nil {
			t.Errorf("Test %d: %v accepted", i, args)
		}
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}
}
