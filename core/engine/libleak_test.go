package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/elffixture"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/policy"
)

// TestLibraryBytesNotAudited: a third-party plugin's grant runs a helper
// ELF whose absolute DT_NEEDED names a file of the daemon's (a key). The
// attestation goes through the real host, launcher and audit log: the
// plugin starts (the key is no library, so it is not granted and nothing
// fails), and no byte of the key reaches the bundle or the audit log.
func TestLibraryBytesNotAudited(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.Mkdir(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	testbin.Install(t, testbin.Build(t, "./testplugins/echo", "attestor-check-echo"), pluginDir, "attestor-check-vendor")
	secret := "K3Y!daemon-key-bytes"
	key := filepath.Join(dir, "daemon.key")
	helper := filepath.Join(dir, "helper")
	if err := os.WriteFile(key, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(helper, elffixture.Dynamic{Needed: []string{key}}.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.PluginDir = pluginDir
	pol.HMACKeyPath = filepath.Join(dir, "missing.key")
	pol.AuditLogPath = filepath.Join(dir, "logs", "audit.jsonl")
	logs := &lockedBuffer{}
	h := pluginhost.New(pluginhost.Options{Dir: pluginDir, Logger: hclog.New(&hclog.LoggerOptions{Output: logs}),
		Plugins: []pluginhost.Spec{{Name: "vendor", Enabled: true, ConfigJSON: json.RawMessage(`{}`), Sandbox: sandbox.Rules{Exec: []string{helper}}}}})
	log, err := audit.Open(pol.AuditLogPath, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Policy: pol, Host: h, Audit: log, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); _ = log.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := e.Attest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	auditLog, err := os.ReadFile(pol.AuditLogPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(s.Bundle), "core.plugin_crashed") {
		t.Errorf("the plugin did not start: %s", s.Bundle)
	}
	for _, leak := range []string{secret[:4], fmt.Sprint([]byte(secret[:4])), "magic"} {
		for what, text := range map[string]string{"bundle": string(s.Bundle), "audit log": string(auditLog), "host log": logs.String()} {
			if strings.Contains(text, leak) {
				t.Errorf("the %s holds %q", what, leak)
			}
		}
	}
}

// lockedBuffer collects log lines written from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
