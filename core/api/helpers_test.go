package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitest"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// testKey signs the test bundles (32 bytes, as the daemon requires).
var testKey = []byte("0123456789abcdef0123456789abcdef")

// recorder is an engine.Auditor that keeps every record as the JSON an audit
// log would write.
type recorder struct {
	mu   sync.Mutex
	recs []auditRec
	raw  [][]byte
}

type auditRec struct {
	Type string
	Data map[string]any
}

func (r *recorder) Append(typ string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, auditRec{Type: typ, Data: m})
	r.raw = append(r.raw, raw)
	return nil
}

// waitRecords waits up to 30 s for at least n records (coalesced ones
// arrive when their window closes) and returns them.
func (r *recorder) waitRecords(t *testing.T, n int) ([]auditRec, []byte) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, raw := r.records()
		if len(recs) >= n || time.Now().After(deadline) {
			return recs, raw
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *recorder) records() ([]auditRec, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]auditRec(nil), r.recs...), bytes.Join(r.raw, []byte("\n"))
}

// server is an api.Server on a real loopback socket.
type server struct {
	*api.Server
	url   string
	att   *apitest.Attestor
	audit *recorder
}

// start serves opts (Attestor = att and Audit = a recorder when nil) on 127.0.0.1:0
// and stops the server when the test ends, checking that Serve returned nil.
func start(t *testing.T, att *apitest.Attestor, opts api.Options) *server {
	t.Helper()
	if att == nil {
		att = apitest.New(attestedSnapshot(t))
	}
	rec := &recorder{}
	if opts.Attestor == nil {
		opts.Attestor = att
	}
	if opts.Audit == nil {
		opts.Audit = rec
	}
	srv := api.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after Shutdown, want nil", err)
		}
	})
	return &server{Server: srv, url: "http://" + ln.Addr().String(), att: att, audit: rec}
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, r.body)
	}
	return m
}

// do sends one request with a fresh connection and a generous timeout (only
// to avoid hanging the test).
func do(t *testing.T, method, url string, body io.Reader, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: raw}
}

func get(t *testing.T, url string) response { t.Helper(); return do(t, http.MethodGet, url, nil, nil) }

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// signedBundle returns a signed bundle in state st, indented (so that any
// re-encoding by the server would show).
func signedBundle(t testing.TB, st state.State, seq uint64) []byte {
	t.Helper()
	b := bundle.Bundle{
		BundleVersion:    bundle.Version,
		AttestorVersion:  "test",
		Sequence:         seq,
		Nonce:            "00112233445566778899aabbccddeeff",
		Timestamp:        bundle.FormatTime(time.Date(2026, 3, 13, 12, 0, 0, 250e6, time.UTC)),
		State:            st,
		PolicyDigest:     bundle.Ptr(strings.Repeat("ab", 32)),
		DeploymentDigest: bundle.Ptr(strings.Repeat("cd", 32)),
		ServiceDigests:   map[string]string{"agent": strings.Repeat("ef", 32)},
		KernelCmdline:    bundle.Ptr("root=/dev/vda1 ro <quiet> & \"x\""),
		TPMAvailable:     bundle.Ptr(false),
		TPMQuoteVerified: bundle.Ptr(false),
		Failures:         []bundle.Failure{},
		Checks: map[string]bundle.Check{
			"binaries": {Name: "binaries", Version: bundle.Ptr("1.0.0"), DurationMS: 12,
				Measurements: json.RawMessage(`{"service_digests":{"agent":"` + strings.Repeat("ef", 32) + `"}}`),
				Findings:     []bundle.Finding{{Code: "binaries.ok", Severity: sdk.SeverityInfo, Message: "all present"}}},
		},
	}
	if err := b.Sign(testKey); err != nil {
		t.Fatal(err)
	}
	raw, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func attestedSnapshot(t testing.TB) engine.Snapshot {
	return engine.Snapshot{
		State:            state.Attested,
		Bundle:           signedBundle(t, state.Attested, 5),
		TPMAvailable:     true,
		TPMQuoteVerified: true,
		SecureBoot:       true,
		PolicyDigest:     strings.Repeat("ab", 32),
		DeploymentDigest: strings.Repeat("cd", 32),
		ServiceCount:     6,
		FailureCount:     0,
		Score:            1,
		LastAttested:     time.Date(2026, 3, 13, 12, 0, 0, 250e6, time.FixedZone("CET", 3600)),
		AttestCount:      5,
		DegradeCount:     2,
		FailCount:        0,
		RefreshCount:     3,
		AuditLastSeq:     42,
		AuditLastHash:    strings.Repeat("ef", 32),
		Plugins: []engine.PluginStatus{
			{Name: "binaries", Version: "1.0.0", Duration: 12 * time.Millisecond, Findings: 1},
			{Name: "tpm", Version: "1.2.0", Duration: 1500 * time.Millisecond, Fault: "plugin timed out after 1s", FaultCount: 2},
		},
	}
}

// logBuffer is a goroutine-safe buffer for hclog output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "api", Level: hclog.Debug, Output: w})
}

// panicky is an Attestor whose Snapshot panics while armed.
type panicky struct {
	*apitest.Attestor
	mu    sync.Mutex
	armed bool
}

func (p *panicky) Snapshot() engine.Snapshot {
	p.mu.Lock()
	armed := p.armed
	p.mu.Unlock()
	if armed {
		panic(errors.New("snapshot exploded"))
	}
	return p.Attestor.Snapshot()
}
