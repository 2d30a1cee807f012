package policy

import (
	"github.com/secure-ai/runtime-attestor/builtin"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, data string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := write(t, filepath.Join(dir, "good.yaml"), "refresh_interval: 1m\n", 0o644)
	p, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != good || len(p.SourceSHA256) != 64 {
		t.Errorf("source %q %q", p.Source, p.SourceSHA256)
	}
	for i, tc := range []struct {
		path string
		msg  string
	}{
		{filepath.Join(dir, "missing.yaml"), "no such file"},
		{dir, "not a regular file"},
		{write(t, filepath.Join(dir, "gw.yaml"), "", 0o664), "group- or world-writable (mode 0664)"},
		{write(t, filepath.Join(dir, "ww.yaml"), "", 0o646), "group- or world-writable"},
		{write(t, filepath.Join(dir, "big.yaml"), "# "+strings.Repeat("x", MaxSize)+"\n", 0o600), "larger than"},
		{write(t, filepath.Join(dir, "bad.yaml"), "\n\nlisten: nowhere\n", 0o600), "policy: listen:"},
	} {
		_, err := Load(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("Test %d: %v, want it to name %s and say %q", i, err, tc.path, tc.msg)
		}
	}
	_, err = Load(filepath.Join(dir, "bad.yaml"))
	if ps := Problems(err); len(ps) != 1 || ps[0].Line != 3 {
		t.Errorf("problems through Load: %v", ps)
	}
}

func TestCheckFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key32 := strings.Repeat("k", 32)
	token := "0123456789abcdef0123456789abcdef\n"
	for i, tc := range []struct {
		name           string
		token, key     string // file contents; "-" = no file
		tokMode, kMode os.FileMode
		noToken        bool        // api_token_path: ""
		signing        string      // signing_key_path: "" a good file, "-" no file, "off" = ""
		sMode          os.FileMode // of the signing key (0 = 0600)
		wantKeys       []string
		msg            string
	}{
		{name: "good", token: token, key: key32, tokMode: 0o600, kMode: 0o600},
		{name: "read-only files", token: token, key: key32, tokMode: 0o400, kMode: 0o400},
		{name: "no key file is fine", token: token, key: "-", tokMode: 0o600},
		{name: "no token configured", noToken: true, key: key32, kMode: 0o600},
		{name: "token missing", token: "-", key: key32, kMode: 0o600, wantKeys: []string{"api_token_path"}, msg: "does not exist"},
		{name: "token empty", token: " \n", key: key32, tokMode: 0o600, kMode: 0o600, wantKeys: []string{"api_token_path"}, msg: "is empty"},
		{name: "token short", token: "short-token\n", key: key32, tokMode: 0o600, kMode: 0o600, wantKeys: []string{"api_token_path"}, msg: "shorter than 16"},
		{name: "token group-readable", token: token, key: key32, tokMode: 0o640, kMode: 0o600, wantKeys: []string{"api_token_path"}, msg: "accessible to group or others (mode 0640)"},
		{name: "token world-readable", token: token, key: key32, tokMode: 0o604, kMode: 0o600, wantKeys: []string{"api_token_path"}, msg: "group or others"},
		{name: "short key", token: token, key: "k", tokMode: 0o600, kMode: 0o600, wantKeys: []string{"hmac_key_path"}, msg: "1 bytes, shorter than 32"},
		{name: "31-byte key", token: token, key: key32[:31], tokMode: 0o600, kMode: 0o600, wantKeys: []string{"hmac_key_path"}, msg: "shorter than 32"},
		{name: "key world-readable", token: token, key: key32, tokMode: 0o600, kMode: 0o644, wantKeys: []string{"hmac_key_path"}, msg: "group or others"},
		{name: "both bad", token: "x", key: "k", tokMode: 0o600, kMode: 0o600, wantKeys: []string{"api_token_path", "hmac_key_path"}},
		{name: "signing key missing", token: token, key: key32, tokMode: 0o600, kMode: 0o600, signing: "-", wantKeys: []string{"signing_key_path"}, msg: "does not exist: create it with `attestctl keygen --out "},
		{name: "signing key group-readable", token: token, key: key32, tokMode: 0o600, kMode: 0o600, sMode: 0o640, wantKeys: []string{"signing_key_path"}, msg: "group or others"},
		{name: "no signing key configured", token: token, key: key32, tokMode: 0o600, kMode: 0o600, signing: "off"},
	} {
		sub := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		p := Default()
		p.APITokenPath = filepath.Join(sub, "token")
		p.HMACKeyPath = filepath.Join(sub, "key")
		if tc.noToken {
			p.APITokenPath = ""
		} else if tc.token != "-" {
			write(t, p.APITokenPath, tc.token, tc.tokMode)
		}
		if tc.key != "-" {
			write(t, p.HMACKeyPath, tc.key, tc.kMode)
		}
		p.SigningKeyPath = filepath.Join(sub, "signing.key")
		switch tc.signing {
		case "off":
			p.SigningKeyPath = ""
		case "":
			mode := tc.sMode
			if mode == 0 {
				mode = 0o600
			}
			write(t, p.SigningKeyPath, "-----BEGIN PRIVATE KEY-----\n", mode)
		}
		err := p.CheckFiles()
		probs := Problems(err)
		if len(probs) != len(tc.wantKeys) {
			t.Errorf("Test %d (%s): %v, want problems with %v", i, tc.name, err, tc.wantKeys)
			continue
		}
		for j, k := range tc.wantKeys {
			if probs[j].Key != k || !strings.Contains(probs[j].Msg, tc.msg) {
				t.Errorf("Test %d (%s): %v, want %s saying %q", i, tc.name, probs[j], k, tc.msg)
			}
		}
		if err != nil && (strings.Contains(err.Error(), strings.TrimSpace(token)) || strings.Contains(err.Error(), key32)) {
			t.Errorf("Test %d: a secret leaked into the error: %v", i, err)
		}
	}
	// A folder where a file should be.
	p := Default()
	p.APITokenPath = dir
	p.HMACKeyPath = dir
	p.SigningKeyPath = dir
	if probs := Problems(p.CheckFiles()); len(probs) != 3 {
		t.Errorf("folders accepted: %v", probs)
	}
}

func TestPluginEnabledWithoutEntries(t *testing.T) {
	t.Parallel()
	p := Default()
	p.Plugins = map[string]PluginPolicy{}
	p.RunUnlistedPlugins = false
	for _, b := range builtin.Names() {
		if !p.PluginEnabled(b) {
			t.Errorf("%s disabled", b)
		}
	}
	if p.PluginEnabled("vendor") {
		t.Error("unlisted plugin enabled with run_unlisted_plugins false")
	}
	p.RunUnlistedPlugins = true
	if !p.PluginEnabled("vendor") {
		t.Error("unlisted plugin disabled with run_unlisted_plugins true")
	}
	if got := strings.Join(p.ExpectedPlugins(), ","); got != "binaries,kernel,ostree,policies,secureboot,tpm" {
		t.Errorf("ExpectedPlugins %s", got)
	}
}
