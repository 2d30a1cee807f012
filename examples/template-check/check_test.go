package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// The sdktest harness serves the check over a real gRPC connection through
// the same code sdk.Serve uses, and holds every answer to the daemon's
// protocol rules: no daemon needed.

func TestMeasure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	writable := filepath.Join(dir, "writable")
	missing := filepath.Join(dir, "missing")
	for path, mode := range map[string]os.FileMode{ok: 0o644, writable: 0o666} {
		if err := os.WriteFile(path, []byte("hello\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	const helloSHA256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	for i, tc := range []struct {
		paths    []string
		codes    []string // finding codes, in order
		digested []string
	}{
		{[]string{ok}, nil, []string{ok}},
		{[]string{writable}, []string{codeWritable}, []string{writable}},
		{[]string{missing}, []string{codeMissing}, nil},
		{[]string{ok, missing, writable}, []string{codeMissing, codeWritable}, []string{ok, writable}},
	} {
		h := sdktest.New(t, New())
		if err := h.Configure(map[string]any{"paths": tc.paths}); err != nil {
			t.Fatalf("Test %d: configure: %v", i, err)
		}
		res := h.MustMeasure()
		var codes []string
		for _, f := range res.Findings {
			codes = append(codes, f.Code)
		}
		if strings.Join(codes, ",") != strings.Join(tc.codes, ",") {
			t.Errorf("Test %d: findings %+v, want codes %v", i, res.Findings, tc.codes)
		}
		var digests map[string]string
		if err := res.Decode("digests", &digests); err != nil {
			t.Fatalf("Test %d: %v", i, err)
		}
		if len(digests) != len(tc.digested) {
			t.Errorf("Test %d: digests %v, want %v", i, digests, tc.digested)
		}
		for _, p := range tc.digested {
			if digests[p] != helloSHA256 {
				t.Errorf("Test %d: digest of %s = %q", i, p, digests[p])
			}
		}
	}
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		cfg  any
		want string // "" = accepted
	}{
		{map[string]any{"paths": []string{"/etc/hostname"}}, ""},
		{map[string]any{}, ""},
		{map[string]any{"paths": []string{"relative"}}, `paths[0]: "relative" is not an absolute path`},
		{map[string]any{"paths": "/etc/hostname"}, "paths: wrong type"},
		{map[string]any{"path": []string{"/etc/hostname"}}, "path: unknown key"},
	} {
		err := sdktest.New(t, New()).Configure(tc.cfg)
		var ce *sdk.ConfigError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Test %d: Configure(%v) = %v", i, tc.cfg, err)
		case tc.want != "" && (!errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Test %d: Configure(%v) = %v, want a ConfigError containing %q", i, tc.cfg, err, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	// sdktest.New already checks the description against the protocol.
	if d := sdktest.New(t, New()).Description(); d.Name != name || len(d.Findings) != 2 {
		t.Errorf("description %+v", d)
	}
}
