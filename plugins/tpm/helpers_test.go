package tpm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/internal/tpmio"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

func TestMain(m *testing.M) {
	os.Exit(testbin.Main(m))
}

// The go-tpm-tools simulator is one per process: simulator.Get blocks until
// the previous holder closes it. Tests that use it never run in parallel.

// openSim starts a freshly manufactured simulator for one test.
func openSim(t *testing.T) *simulator.Simulator {
	t.Helper()
	s, err := simulator.Get()
	if err != nil {
		t.Fatalf("start TPM simulator: %v", err)
	}
	t.Cleanup(func() {
		if !s.IsClosed() {
			_ = s.Close()
		}
	})
	return s
}

// direct is a go-tpm transport straight to the simulator, for the test's
// own TPM commands (extending PCRs, reading them independently).
func direct(sim *simulator.Simulator) transport.TPM {
	return tpmio.Bind(context.Background(), tpmio.FromReadWriter(sim), tpmio.Policy{})
}

// interposer sits between the check and the TPM like a device on the bus:
// it sees every command and response and may change them.
type interposer struct {
	inner tpmio.Conn
	mu    sync.Mutex
	// command, if set, may return a changed command.
	command func(cmd []byte) []byte
	// response, if set, may return a changed response.
	response func(cmd, rsp []byte) []byte
}

func (i *interposer) RoundTrip(ctx context.Context, cmd []byte) ([]byte, error) {
	i.mu.Lock()
	cf, rf := i.command, i.response
	i.mu.Unlock()
	if cf != nil {
		cmd = cf(cmd)
	}
	rsp, err := i.inner.RoundTrip(ctx, cmd)
	if err != nil || rf == nil {
		return rsp, err
	}
	return rf(cmd, rsp), nil
}

func (i *interposer) Close() error { return nil }

func (i *interposer) set(command func([]byte) []byte, response func(cmd, rsp []byte) []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.command, i.response = command, response
}

// commandCode returns a command's TPM_CC.
func commandCode(cmd []byte) tpm2.TPMCC { return tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10])) }

// simHarness serves a check wired to the simulator through an interposer,
// configured with cfg, over the SDK's real gRPC server code. Unless cfg
// sets state_file, the check keeps its clock state in a file of its own in
// a temporary folder, never in the system's /var/lib.
func simHarness(t *testing.T, sim *simulator.Simulator, cfg map[string]any) (*sdktest.Harness, *interposer, *check) {
	t.Helper()
	ip := &interposer{inner: tpmio.FromReadWriter(sim)}
	c := newCheck(func(context.Context) (tpmio.Conn, error) { return ip, nil })
	h := sdktest.New(t, c)
	cfg = maps.Clone(cfg)
	if cfg == nil {
		cfg = map[string]any{}
	}
	if _, ok := cfg["state_file"]; !ok {
		cfg["state_file"] = filepath.Join(t.TempDir(), "tpm-clock.json")
	}
	// The simulator's PCRs are not this machine's: its event logs, if
	// it has any, are not read unless the test gives one.
	for _, k := range []string{"event_log", "userspace_log"} {
		if _, ok := cfg[k]; !ok {
			cfg[k] = ""
		}
	}
	if err := h.Configure(cfg); err != nil {
		t.Fatalf("configure %v: %v", cfg, err)
	}
	return h, ip, c
}

// extend extends SHA-256 PCR pcr of the simulator with digest.
func extend(t *testing.T, tpm transport.TPM, pcr int, digest []byte) {
	t.Helper()
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest}}},
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("extend PCR %d: %v", pcr, err)
	}
}

// extended computes the value of a PCR holding old after extending digest.
func extended(old, digest []byte) []byte {
	h := sha256.New()
	h.Write(old)
	h.Write(digest)
	return h.Sum(nil)
}

func digestOf(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func newNonce(t *testing.T) []byte {
	t.Helper()
	n := make([]byte, 32)
	if _, err := rand.Read(n); err != nil {
		t.Fatal(err)
	}
	return n
}

// measured decodes the common measurements of a result.
type measured struct {
	available bool
	verified  bool
	pcrs      map[string]string
	quote     *quoteJSON
}

type quoteJSON struct {
	Attest    []byte `json:"attest"`
	Signature []byte `json:"signature"`
	AKPublic  []byte `json:"ak_public"`
	Nonce     string `json:"nonce"`
	Clock     *struct {
		Clock        uint64 `json:"clock"`
		ResetCount   uint32 `json:"reset_count"`
		RestartCount uint32 `json:"restart_count"`
		Safe         bool   `json:"safe"`
	} `json:"clock"`
}

func decodeResult(t *testing.T, r *sdktest.Result) measured {
	t.Helper()
	var m measured
	if err := r.Decode(KeyAvailable, &m.available); err != nil {
		t.Fatalf("%s: %v", KeyAvailable, err)
	}
	if err := r.Decode(KeyQuoteVerified, &m.verified); err != nil {
		t.Fatalf("%s: %v", KeyQuoteVerified, err)
	}
	if _, ok := r.Measurements[KeyPCRs]; ok {
		if err := r.Decode(KeyPCRs, &m.pcrs); err != nil {
			t.Fatalf("%s: %v", KeyPCRs, err)
		}
	}
	if _, ok := r.Measurements[KeyQuote]; ok {
		m.quote = &quoteJSON{}
		if err := r.Decode(KeyQuote, m.quote); err != nil {
			t.Fatalf("%s: %v", KeyQuote, err)
		}
	}
	return m
}

// mustMeasure measures with nonce and fails the test on a protocol or
// check error.
func mustMeasure(t *testing.T, h *sdktest.Harness, nonce []byte) (*sdktest.Result, measured) {
	t.Helper()
	r, err := h.MeasureWithNonce(nonce)
	if err != nil {
		t.Fatalf("measure: %v", err)
	}
	return r, decodeResult(t, r)
}

// codes lists the finding codes of a result.
func codes(r *sdktest.Result) []string {
	out := make([]string, 0, len(r.Findings))
	for _, f := range r.Findings {
		out = append(out, f.Code)
	}
	return out
}

// only fails unless the result's findings are exactly one per code in
// want, each with the given severity.
func only(t *testing.T, r *sdktest.Result, want map[string]sdk.Severity) {
	t.Helper()
	if len(r.Findings) != len(want) {
		t.Fatalf("findings %v, want exactly %v\n%+v", codes(r), want, r.Findings)
	}
	for code, sev := range want {
		fs := r.Find(code)
		if len(fs) != 1 {
			t.Fatalf("findings %v, want one %s\n%+v", codes(r), code, r.Findings)
		}
		if fs[0].Severity != sev {
			t.Errorf("%s has severity %s, want %s", code, fs[0].Severity, sev)
		}
	}
}

func hexs(b []byte) string { return hex.EncodeToString(b) }
