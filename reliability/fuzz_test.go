package reliability

// Fuzz targets that cross packages through their exported APIs only (each
// package fuzzes its own parsers; scripts/fuzz.sh runs them all):
//
//   - FuzzPluginConfigure: every built-in plugin's Configure on any JSON.
//   - FuzzPluginAnswerSignable: whatever the wire layer accepts as a
//     plugin's measurements must go into a bundle that signs and verifies.
//   - FuzzAuditOpen: the audit log's resume path (audit.Open) on any file
//     content: it opens, keeps what was there (or saves what it cut), and
//     what it appends chains on.
//
// TestPluginAnswerSignable is the end-to-end regression of what
// FuzzPluginAnswerSignable found: a real plugin process sends such JSON to
// the real daemon.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"github.com/secure-ai/runtime-attestor/builtin"

	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	pb "github.com/secure-ai/runtime-attestor/internal/wire/attestorv1"
	"github.com/secure-ai/runtime-attestor/plugins/binaries"
	"github.com/secure-ai/runtime-attestor/plugins/kernel"
	"github.com/secure-ai/runtime-attestor/plugins/ostree"
	"github.com/secure-ai/runtime-attestor/plugins/policies"
	"github.com/secure-ai/runtime-attestor/plugins/secureboot"
	"github.com/secure-ai/runtime-attestor/plugins/tpm"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// fuzzPlugins are the built-in checks, in builtin.Names() order.
var fuzzPlugins = []func() sdk.Check{binaries.New, kernel.New, ostree.New, policies.New, secureboot.New, tpm.New}

// FuzzPluginConfigure hands any bytes to a built-in plugin's Configure, as
// the daemon would from a policy: it must return (nil or an error that
// says something), never panic, and give the same answer every time.
func FuzzPluginConfigure(f *testing.F) {
	seeds := []string{`{}`, `null`, `[]`, `{"a":1}`, `{"timeout":"1h"}`, `{"min_lockdown":"paranoid"}`,
		`{"pcrs":[0,7,24]}`, `{"ak":{"algorithm":"dsa"}}`, `{"efivars_dir":"rel"}`, `{"max_parallel":0}`,
		`{"service_binaries":{"x":{"path":"/bin/sh","sha256":"zz"}}}`, `{"policy_files":["/a","/a"]}`,
		`{"required_params":["lockdown=integrity"],"forbidden_params":["lockdown=integrity"]}`,
		`{"expected_pcrs":{"7":"00"}}`, `{"retry_delay":"-1s"}`, `{"max_output_bytes":1e30}`}
	for _, p := range []string{"binaries", "ostree"} {
		if raw, err := os.ReadFile(filepath.Join("..", "plugins", p, "testdata", "config-example.json")); err == nil {
			seeds = append(seeds, string(raw))
		}
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		newCheck := fuzzPlugins[int(which)%len(fuzzPlugins)]
		name := builtin.Names()[int(which)%len(fuzzPlugins)]
		configure := func() (err error) {
			c, ok := newCheck().(sdk.Configurer)
			if !ok {
				t.Fatalf("%s does not implement sdk.Configurer", name)
			}
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%s: Configure(%q) panicked: %v", name, raw, r)
				}
			}()
			return c.Configure(context.Background(), sdk.NewConfig(raw))
		}
		// The same config must get the same answer every time (an error
		// chosen by map order changes from run to run): 16 tries catch a
		// two-way coin flip but once in 30,000.
		err1 := configure()
		for i := 0; i < 15; i++ {
			err2 := configure()
			if (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
				t.Fatalf("%s: Configure(%q) is not deterministic: %v / %v", name, raw, err1, err2)
			}
		}
		if err1 != nil && strings.TrimSpace(err1.Error()) == "" {
			t.Fatalf("%s: Configure(%q) refused with an empty message", name, raw)
		}
	})
}

// fuzzSignable puts measurements as the engine does (one JSON object under
// checks.<plugin>.measurements) into a bundle and signs and verifies it.
func fuzzSignable(m *wire.Measurement) error {
	raw, err := json.Marshal(m.Measurements)
	if err != nil {
		return fmt.Errorf("encode measurements: %w", err)
	}
	b := &bundle.Bundle{BundleVersion: bundle.Version, Sequence: 1, Nonce: "00", Timestamp: bundle.FormatTime(time.Unix(0, 0)),
		Checks: map[string]bundle.Check{"fuzz": {Name: "fuzz", Measurements: raw}}}
	key := bytes.Repeat([]byte("k"), 32)
	if err := b.Sign(key); err != nil {
		return err
	}
	out, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode bundle: %w", err)
	}
	return bundle.Verify(out, key)
}

// FuzzPluginAnswerSignable: a plugin's measurements are JSON the daemon
// did not write. Whatever wire.MeasurementFromProto and
// wire.ValidateMeasurement accept must make a bundle that signs and
// verifies; else one plugin's answer can stop every attestation.
func FuzzPluginAnswerSignable(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"kernel_cmdline":"quiet splash"}`, `{"a":{"b":[1,2.5,true,null,"x"]}}`,
		`{"a":-0}`, `{"a":1E+2}`, `{"a":"\u00e9\u2028"}`} {
		f.Add([]byte(s))
	}
	desc := sdk.Description{Name: "fuzz", Version: "1"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := wire.MeasurementFromProto(&pb.MeasureResponse{MeasurementsJson: raw})
		if err != nil {
			return
		}
		if err := wire.ValidateMeasurement(desc, m); err != nil {
			return
		}
		if err := fuzzSignable(m); err != nil {
			t.Fatalf("the wire accepts measurements %q but the bundle cannot be signed: %v", raw, err)
		}
	})
}

// FuzzAuditOpen writes any bytes as an existing audit log, opens it (the
// daemon's resume at start), appends one record and closes it. Open must
// succeed on any regular file; the bytes before the cut must be kept as
// they were and the cut bytes saved aside; the records appended must
// chain on: if what was kept verified, the whole log verifies.
func FuzzAuditOpen(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Add([]byte("garbage"))
	f.Add([]byte(`{"seq":1}` + "\n" + `{"seq":2`))
	if seed, err := fuzzAuditSeed(); err == nil {
		f.Add(seed)
		f.Add(seed[:len(seed)-7])
		f.Add(append(append([]byte{}, seed...), "not json\n"...))
		f.Add(bytes.Replace(seed, []byte(`"seq":2`), []byte(`"seq":3`), 1))
	}
	// The log fsyncs every record: on tmpfs (/dev/shm) that costs nothing
	// and the fuzzer runs a hundred times faster.
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir, err := os.MkdirTemp(base, "fuzz-audit-open-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "audit.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := audit.Open(path, nil)
		if err != nil {
			t.Fatalf("Open refused a regular file of %d bytes: %v", len(data), err)
		}
		if err := l.Append("fuzz", map[string]any{"n": len(data)}); err != nil {
			t.Fatalf("Append after Open: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// What Open cut is saved beside the log: kept + cut = original.
		var cut []byte
		torn, _ := filepath.Glob(path + ".torn-*")
		for _, f := range torn {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cut = append(cut, b...)
		}
		kept := data[:len(data)-len(cut)]
		if !bytes.Equal(data[len(kept):], cut) {
			t.Fatalf("the bytes saved aside (%q) are not the end of the original log", cut)
		}
		if !bytes.HasPrefix(got, kept) {
			t.Fatalf("Open changed the kept part of the log:\nbefore %q\nafter  %q", kept, got[:min(len(got), len(kept))])
		}
		if !bytes.HasSuffix(got, []byte("\n")) || !bytes.Contains(got[len(kept):], []byte(`"type":"fuzz"`)) {
			t.Fatalf("the appended record is missing: %q", got[len(kept):])
		}
		if _, err := audit.Verify(bytes.NewReader(kept)); err == nil {
			if _, err := audit.Verify(bytes.NewReader(got)); err != nil {
				t.Fatalf("a log that verified no longer verifies after Open and Append: %v\n%q", err, got)
			}
		}
	})
}

// fuzzAuditSeed writes a small real log (three records) and returns it.
func fuzzAuditSeed() ([]byte, error) {
	dir, err := os.MkdirTemp("", "fuzz-audit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "a.jsonl")
	l, err := audit.Open(path, nil)
	if err != nil {
		return nil, err
	}
	for _, typ := range []string{"start", "attestation", "stop"} {
		if err := l.Append(typ, map[string]any{"k": typ}); err != nil {
			return nil, err
		}
	}
	if err := l.Close(); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// TestPluginAnswerSignable runs the real daemon with a plugin that answers
// measurements the wire accepts but JCS refuses (found by
// FuzzPluginAnswerSignable). One plugin's answer must not stop the
// attestation: the daemon must reach a verdict with a signed bundle that
// verifies, the bad answer turned into a finding about that plugin.
func TestPluginAnswerSignable(t *testing.T) {
	t.Parallel()
	src := testbin.Build(t, "./reliability/testdata/plugins/rawjson", "attestor-check-rawjson")
	for _, tc := range []struct{ name, value string }{
		{"number_out_of_range", `1e400`},
		{"duplicate_member", `{"x":1,"x":2}`},
		{"lone_surrogate", `"\ud800"`},
		{"invalid_utf8", "[\"\xf8\"]"},
	} {
		value := tc.value
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := daemontest.New(t, daemontest.Options{})
			testbin.Install(t, src, env.PluginDir, "attestor-check-rawjson")
			env.EditPolicy(func(doc map[string]any) {
				daemontest.SetPolicyKey(doc, base64.StdEncoding.EncodeToString([]byte(value)), "plugins", "rawjson", "config", "value_base64")
			})
			p := env.StartNoWait()
			deadline := time.Now().Add(60 * time.Second)
			for env.State() == "pending" || env.State() == "" {
				failed := strings.Contains(p.Stderr(), "attestation failed to run")
				if failed || time.Now().After(deadline) || !p.Alive() {
					_, body, _ := env.Do("POST", "/api/v1/refresh", env.Token)
					t.Fatalf("plugin answer %q: no verdict: the attestation does not run (refresh says %s); log:\n%s",
						value, bytes.TrimSpace(body), badTail(grepLines(p.Stderr(), "attestation", "sign"), 2000))
				}
				time.Sleep(100 * time.Millisecond)
			}
			code, body, err := env.Do("POST", "/api/v1/refresh", env.Token)
			if err != nil || code != 200 {
				t.Fatalf("plugin answer %s: refresh %d %v %s", value, code, err, body)
			}
			var resp struct {
				Bundle json.RawMessage `json:"bundle"`
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			key, _ := os.ReadFile(env.KeyPath)
			if err := bundle.Verify(resp.Bundle, key); err != nil {
				t.Errorf("plugin answer %s: the bundle does not verify: %v", value, err)
			}
			if !bytes.Contains(resp.Bundle, []byte(`"plugin":"rawjson"`)) {
				t.Errorf("plugin answer %s: no finding about the rawjson plugin in %s", value, resp.Bundle)
			}
			p.Stop()
		})
	}
}

// grepLines keeps the lines of s that contain any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
