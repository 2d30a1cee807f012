package secureboot_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/plugins/secureboot"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// broad are folders no built-in plugin may be given whole.
var broad = []string{"/", "/proc", "/sys", "/sys/firmware", "/dev", "/etc", "/run", "/usr", "/var", "/tmp"}

func TestSandboxDeclared(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name string
		cfg  string
		want []string // read-only; nothing else
	}{
		{"default", `{}`, []string{"/sys/firmware/efi"}},
		{"efivars below efi_dir", `{"efi_dir":"/srv/efi","efivars_dir":"/srv/efi/efivars","require_secure_boot":true}`, []string{"/srv/efi"}},
		{"efivars is efi_dir", `{"efi_dir":"/srv/efi","efivars_dir":"/srv/efi"}`, []string{"/srv/efi"}},
		{"efivars elsewhere", `{"efi_dir":"/srv/efi","efivars_dir":"/mnt/efivars"}`, []string{"/mnt/efivars", "/srv/efi"}},
		{"a sibling is not below", `{"efi_dir":"/srv/efi","efivars_dir":"/srv/efi2/efivars"}`, []string{"/srv/efi", "/srv/efi2/efivars"}},
		{"unclean paths are cleaned", `{"efi_dir":"/sys/firmware/efi/","efivars_dir":"/sys/firmware//efi/efivars"}`, []string{"/sys/firmware/efi"}},
	} {
		sb, ok, err := sdk.DeclaredSandbox(context.Background(), secureboot.New(), []byte(tc.cfg))
		if err != nil || !ok {
			t.Fatalf("Test %d (%s): DeclaredSandbox = %v, %v", i, tc.name, ok, err)
		}
		if want := (sdk.Sandbox{ReadOnly: tc.want}); !reflect.DeepEqual(sb, want) {
			t.Errorf("Test %d (%s): declared %+v\nwant     %+v", i, tc.name, sb, want)
		}
		if err := sandbox.Rules(sb).Validate(); err != nil {
			t.Errorf("Test %d (%s): Validate: %v", i, tc.name, err)
		}
		for _, p := range sb.ReadOnly {
			for _, b := range broad {
				if p == b {
					t.Errorf("Test %d (%s): declares all of %s", i, tc.name, b)
				}
			}
		}
	}
}

// efiTree copies testdata/<dir> (an /sys/firmware/efi with its efivars)
// into a temporary folder and returns the copy's efi_dir.
func efiTree(t *testing.T, dir string) string {
	t.Helper()
	efi := t.TempDir()
	if err := os.Mkdir(filepath.Join(efi, "efivars"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{secureboot.SecureBootFile, secureboot.SetupModeFile} {
		data, err := os.ReadFile(filepath.Join("testdata", dir, "efivars", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(efi, "efivars", name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return efi
}

// TestSandboxedSubprocess: the real plugin, started as the daemon starts
// it, reads the EFI variables of its configured tree after confining
// itself to it (and to an efivars_dir outside efi_dir), and can no longer
// read another tree once reconfigured to it, while a fresh process can.
func TestSandboxedSubprocess(t *testing.T) {
	t.Parallel()
	cfg := func(efi, efivars string) []byte {
		b, _ := json.Marshal(map[string]any{"efi_dir": efi, "efivars_dir": efivars, "require_secure_boot": true})
		return b
	}
	enabled := func(t *testing.T, m map[string]json.RawMessage, findings []sdk.Finding) {
		t.Helper()
		if string(m[secureboot.KeySecureBoot]) != "true" || string(m[secureboot.KeySetupMode]) != "false" || len(findings) != 0 {
			t.Fatalf("measurements %s findings %+v, want Secure Boot on, not in Setup Mode", m, findings)
		}
	}
	allowed, other := efiTree(t, "enabled"), efiTree(t, "enabled")

	t.Run("efivars outside efi_dir", func(t *testing.T) {
		t.Parallel()
		p := plugintest.Start(t, "secureboot")
		p.MustConfigure(t, cfg(t.TempDir(), filepath.Join(other, "efivars")))
		m := p.MustMeasure(t)
		enabled(t, m.Measurements, m.Findings)
	})
	t.Run("reconfigured outside the sandbox", func(t *testing.T) {
		t.Parallel()
		p := plugintest.Start(t, "secureboot")
		p.MustConfigure(t, cfg(allowed, filepath.Join(allowed, "efivars")))
		m := p.MustMeasure(t)
		enabled(t, m.Measurements, m.Findings)

		plugintest.NeedLandlock(t)
		p.MustConfigure(t, cfg(other, filepath.Join(other, "efivars")))
		m = p.MustMeasure(t)
		if _, ok := m.Measurements[secureboot.KeySecureBoot]; ok {
			t.Errorf("secure_boot = %s read from outside the sandbox", m.Measurements[secureboot.KeySecureBoot])
		}
		unreadable := 0
		for _, f := range m.Findings {
			switch f.Code {
			case secureboot.CodeUnreadable:
				unreadable++
				if !strings.Contains(f.Message, "permission denied") || !strings.HasPrefix(f.Subject, other) {
					t.Errorf("finding %+v, want permission denied under %s", f, other)
				}
			case secureboot.CodeDisabled:
				if !strings.Contains(f.Message, "cannot be confirmed") {
					t.Errorf("finding %+v", f)
				}
			default:
				t.Errorf("unexpected finding %+v", f)
			}
		}
		if unreadable != 2 {
			t.Fatalf("findings %+v, want SecureBoot and SetupMode unreadable", m.Findings)
		}
	})
}
