package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitest"
	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	for _, st := range []state.State{state.Pending, state.Attested, state.Degraded, state.Failed} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			s := start(t, apitest.New(engine.Snapshot{State: st}), api.Options{})
			r := get(t, s.url+"/health")
			want := `{"status":"ok","state":"` + string(st) + `"}` + "\n"
			if r.code != http.StatusOK || string(r.body) != want {
				t.Fatalf("GET /health = %d %q, want 200 %q", r.code, r.body, want)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("missing no-store/nosniff headers: %v", r.header)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		st   state.State
		code int
	}{
		{state.Pending, http.StatusServiceUnavailable},
		{state.Attested, http.StatusOK},
		{state.Degraded, http.StatusServiceUnavailable},
		{state.Failed, http.StatusServiceUnavailable},
	} {
		t.Run(string(tc.st), func(t *testing.T) {
			t.Parallel()
			s := start(t, apitest.New(engine.Snapshot{State: tc.st}), api.Options{})
			r := get(t, s.url+"/api/v1/verify")
			want := fmt.Sprintf(`{"verified":%t,"state":"%s"}`+"\n", tc.code == http.StatusOK, tc.st)
			if r.code != tc.code || string(r.body) != want {
				t.Fatalf("GET /api/v1/verify = %d %q, want %d %q", r.code, r.body, tc.code, want)
			}
		})
	}
}

func TestAttestServesBundleVerbatim(t *testing.T) {
	t.Parallel()
	att := apitest.New(engine.Snapshot{State: state.Pending})
	s := start(t, att, api.Options{})

	r := get(t, s.url+"/api/v1/attest")
	if want := `{"state":"pending","bundle":null}` + "\n"; r.code != http.StatusOK || string(r.body) != want {
		t.Fatalf("pending: GET /api/v1/attest = %d %q, want 200 %q", r.code, r.body, want)
	}

	for i, st := range []state.State{state.Attested, state.Degraded, state.Attested} {
		raw := signedBundle(t, st, uint64(i+1))
		att.Set(engine.Snapshot{State: st, Bundle: raw})
		for range 2 { // the second answer comes from the cache
			r := get(t, s.url+"/api/v1/attest")
			if r.code != http.StatusOK {
				t.Fatalf("Test %d: GET /api/v1/attest = %d %q", i, r.code, r.body)
			}
			want := `{"state":"` + string(st) + `","bundle":` + string(raw) + "}\n"
			if string(r.body) != want {
				t.Fatalf("Test %d: body is not the bundle verbatim:\n got %q\nwant %q", i, r.body, want)
			}
			var resp struct {
				State  state.State     `json:"state"`
				Bundle json.RawMessage `json:"bundle"`
			}
			if err := json.Unmarshal(r.body, &resp); err != nil {
				t.Fatal(err)
			}
			if err := bundle.Verify(resp.Bundle, testKey); err != nil {
				t.Fatalf("Test %d: served bundle does not verify: %v", i, err)
			}
		}
	}

	// An engine bug (invalid bundle bytes) is a 500, not broken JSON.
	att.Set(engine.Snapshot{State: state.Attested, Bundle: json.RawMessage(`{"state":`)})
	r = get(t, s.url+"/api/v1/attest")
	if r.code != http.StatusInternalServerError || string(r.body) != `{"error":"internal error"}`+"\n" {
		t.Fatalf("invalid bundle: GET /api/v1/attest = %d %q, want 500", r.code, r.body)
	}
}

func TestSecurityStatus(t *testing.T) {
	t.Parallel()
	t.Run("attested", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, api.Options{})
		r := get(t, s.url+"/api/security/status")
		want := `{"attestation_state":"attested","tpm_available":true,"tpm_quote_verified":true,"secure_boot":true,` +
			`"policy_digest":"` + strings.Repeat("ab", 32) + `","deployment_digest":"` + strings.Repeat("cd", 32) + `",` +
			`"service_count":6,"failure_count":0,"last_attested":"2026-03-13T11:00:00Z",` +
			`"attest_count":5,"degrade_count":2,"fail_count":0,"refresh_count":3,"score":1,"plugins":[` +
			`{"name":"binaries","version":"1.0.0","duration_seconds":0.012,"fault":"","fault_count":0,"findings":1,"confinement":""},` +
			`{"name":"tpm","version":"1.2.0","duration_seconds":1.5,"fault":"plugin timed out after 1s","fault_count":2,"findings":0,"confinement":""}],` +
			`"audit_last_seq":42,"audit_last_hash":"` + strings.Repeat("ef", 32) + `",` +
			`"verdict_measurement":{"measuring":false,"pcr":null,"log":"","records":0,"last_state":"","reason":"verdicts are not measured: no evidence TPM is configured"},` +
			`"latched":null}` + "\n"
		if r.code != http.StatusOK || string(r.body) != want {
			t.Fatalf("GET /api/security/status = %d\n got %s\nwant %s", r.code, r.body, want)
		}
	})
	t.Run("latched failed", func(t *testing.T) {
		t.Parallel()
		since := time.Date(2026, 3, 13, 10, 0, 0, 0, time.FixedZone("x", 3600))
		s := start(t, apitest.New(engine.Snapshot{State: state.Failed, Latched: &engine.Latch{Since: since, Sequence: 4, Score: 100,
			Findings: []state.LatchFinding{{Code: "tpm.pcr_mismatch", Severity: sdk.SeverityCritical, Plugin: "tpm", Subject: "pcr 7", Message: "differs"}}}}), api.Options{})
		r := get(t, s.url+"/api/security/status")
		var st apitypes.StatusResponse
		if err := json.Unmarshal(r.body, &st); err != nil {
			t.Fatal(err)
		}
		l := st.Latched
		if l == nil || l.Since != "2026-03-13T09:00:00Z" || l.Sequence != 4 || l.Score != 100 || len(l.Findings) != 1 ||
			l.Findings[0] != (state.LatchFinding{Code: "tpm.pcr_mismatch", Severity: sdk.SeverityCritical, Plugin: "tpm", Subject: "pcr 7", Message: "differs"}) ||
			l.Clears != apitypes.LatchClears {
			t.Errorf("latched = %s", r.body)
		}
	})
	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		s := start(t, apitest.New(engine.Snapshot{State: state.Pending}), api.Options{})
		r := get(t, s.url+"/api/security/status")
		m := r.json(t)
		// Every status key is present, last_attested is null, plugins a list.
		for _, k := range []string{"attestation_state", "tpm_available", "tpm_quote_verified", "secure_boot",
			"policy_digest", "deployment_digest", "service_count", "failure_count", "last_attested",
			"attest_count", "degrade_count", "fail_count"} {
			if _, ok := m[k]; !ok {
				t.Errorf("key %q missing from %s", k, r.body)
			}
		}
		if m["last_attested"] != nil || m["attestation_state"] != "pending" {
			t.Errorf("pending status = %s", r.body)
		}
		if p, ok := m["plugins"].([]any); !ok || len(p) != 0 {
			t.Errorf("plugins = %v, want []", m["plugins"])
		}
	})
}

const goodToken = "s3cr3t-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestRefreshTokens(t *testing.T) {
	t.Parallel()
	almost := goodToken[:len(goodToken)-1] + "9"
	for i, tc := range []struct {
		name       string
		configured string
		header     []string // Authorization header values
		code       int
		reason     string // audited reason (prefix)
	}{
		{"none configured, no header", "", nil, 403, "refresh disabled"},
		{"none configured, a token", "", []string{"Bearer " + goodToken}, 403, "refresh disabled"},
		{"blank configured", " \n\t", []string{"Bearer " + goodToken}, 403, "refresh disabled"},
		{"missing", goodToken, nil, 401, "missing bearer token"},
		{"basic scheme", goodToken, []string{"Basic dXNlcjpwYXNz"}, 401, "malformed authorization header"},
		{"scheme only", goodToken, []string{"Bearer"}, 401, "malformed authorization header"},
		{"scheme and space", goodToken, []string{"Bearer    "}, 401, "malformed authorization header"},
		{"token with space", goodToken, []string{"Bearer " + goodToken + " x"}, 401, "malformed authorization header"},
		{"two headers", goodToken, []string{"Bearer " + goodToken, "Bearer " + goodToken}, 401, "malformed authorization header"},
		{"wrong", goodToken, []string{"Bearer wrong"}, 401, "wrong token"},
		{"almost right", goodToken, []string{"Bearer " + almost}, 401, "wrong token"},
		{"prefix", goodToken, []string{"Bearer " + goodToken[:len(goodToken)-1]}, 401, "wrong token"},
		{"extended", goodToken, []string{"Bearer " + goodToken + "0"}, 401, "wrong token"},
		{"over-long", goodToken, []string{"Bearer " + goodToken + strings.Repeat("A", 6000)}, 401, "wrong token"},
		{"right", goodToken, []string{"Bearer " + goodToken}, 200, "refreshed"},
		{"right, lowercase scheme", goodToken, []string{"bearer " + goodToken}, 200, "refreshed"},
		{"right, two spaces", goodToken, []string{"Bearer  " + goodToken}, 200, "refreshed"},
		{"right, configured with newline", goodToken + "\n", []string{"Bearer " + goodToken}, 200, "refreshed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &logBuffer{}
			s := start(t, nil, api.Options{Token: []byte(tc.configured), Logger: debugLogger(logs), NoiseInterval: 10 * time.Millisecond})
			r := do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, http.Header{"Authorization": tc.header})
			if r.code != tc.code {
				t.Fatalf("Test %d: POST /api/v1/refresh = %d %q, want %d", i, r.code, r.body, tc.code)
			}
			m := r.json(t)
			switch tc.code {
			case 200:
				if m["state"] != "attested" || m["bundle"] == nil {
					t.Errorf("Test %d: body = %s", i, r.body)
				}
				if runs, _, _ := s.att.Stats(); runs != 1 {
					t.Errorf("Test %d: %d attestations ran, want 1", i, runs)
				}
			case 401:
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("Test %d: WWW-Authenticate = %q", i, got)
				}
				fallthrough
			default:
				if e, _ := m["error"].(string); e == "" || len(m) != 1 {
					t.Errorf("Test %d: error body = %s", i, r.body)
				}
				if runs, _, _ := s.att.Stats(); runs != 0 {
					t.Errorf("Test %d: a refused refresh ran %d attestations", i, runs)
				}
			}

			recs, raw := s.audit.waitRecords(t, 1)
			if len(recs) != 1 {
				t.Fatalf("Test %d: %d audit records, want 1", i, len(recs))
			}
			d := recs[0].Data
			if tc.code == 200 {
				if recs[0].Type != "refresh" || d["authorized"] != true || d["state"] != "attested" ||
					!strings.HasPrefix(fmt.Sprint(d["reason"]), tc.reason) || len(d) != 4 {
					t.Errorf("Test %d: audit record %s %v", i, recs[0].Type, d)
				}
				if peer := fmt.Sprint(d["peer"]); !strings.HasPrefix(peer, "127.0.0.1:") || strings.HasSuffix(s.url, peer) {
					t.Errorf("Test %d: audited peer = %q", i, peer)
				}
			} else {
				reasons, _ := d["reasons"].(map[string]any)
				var reason string
				for k := range reasons {
					reason = k
				}
				if recs[0].Type != api.TypeRefreshRefused || d["count"] != 1.0 || len(reasons) != 1 ||
					!strings.HasPrefix(reason, tc.reason) || d["peer"] != "127.0.0.1" || d["first"] == nil || d["last"] == nil {
					t.Errorf("Test %d: audit record %s %v", i, recs[0].Type, d)
				}
			}
			for _, hay := range []string{string(raw), logs.String()} {
				if leak := tokenPart(hay, goodToken); leak != "" {
					t.Errorf("Test %d: token part %q leaked into %q", i, leak, hay)
				}
			}
			if !strings.Contains(logs.String(), "path=/api/v1/refresh status="+fmt.Sprint(tc.code)) {
				t.Errorf("Test %d: request not logged at debug: %q", i, logs.String())
			}
		})
	}
}

// tokenPart returns a piece (8 bytes or more) of tok found in hay, or "".
func tokenPart(hay, tok string) string {
	for i := 0; i+8 <= len(tok); i++ {
		if strings.Contains(hay, tok[i:i+8]) {
			return tok[i : i+8]
		}
	}
	return ""
}

func TestSetTokenSwaps(t *testing.T) {
	t.Parallel()
	s := start(t, nil, api.Options{Token: []byte("old-token-old-token")})
	refresh := func(tok string) int {
		return do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, bearer(tok)).code
	}
	if c := refresh("old-token-old-token"); c != 200 {
		t.Fatalf("old token before swap: %d", c)
	}
	s.SetToken([]byte("new-token-new-token"))
	if c := refresh("old-token-old-token"); c != 401 {
		t.Fatalf("old token after swap: %d, want 401", c)
	}
	if c := refresh("new-token-new-token"); c != 200 {
		t.Fatalf("new token after swap: %d, want 200", c)
	}
	s.SetToken(nil)
	if c := refresh("new-token-new-token"); c != 403 {
		t.Fatalf("after SetToken(nil): %d, want 403", c)
	}
}

func TestRefreshBody(t *testing.T) {
	t.Parallel()
	hideLength := func(s string) io.Reader { return struct{ io.Reader }{strings.NewReader(s)} } // sent chunked
	for i, tc := range []struct {
		name   string
		token  string
		body   io.Reader
		code   int
		reason string
	}{
		{"empty object", goodToken, strings.NewReader(`{}`), 200, "refreshed"},
		{"1 KiB of blanks", goodToken, strings.NewReader(strings.Repeat(" ", 1024)), 200, "refreshed"},
		{"parameters", goodToken, strings.NewReader(`{"force":true}`), 400, "bad request: refresh takes no parameters"},
		{"not JSON", goodToken, strings.NewReader(`force`), 400, "bad request: request body must be empty or an empty JSON object"},
		{"JSON list", goodToken, strings.NewReader(`[]`), 400, "bad request: request body must be empty or an empty JSON object"},
		{"JSON null", goodToken, strings.NewReader(`null`), 400, "bad request: request body must be empty or an empty JSON object"},
		{"1 KiB + 1", goodToken, strings.NewReader(strings.Repeat(" ", 1025)), 413, "bad request: request body too large (limit 1 KiB)"},
		{"2 KiB chunked", goodToken, hideLength(strings.Repeat("x", 2048)), 413, "bad request: request body too large (limit 1 KiB)"},
		{"2 KiB, wrong token", "wrong", strings.NewReader(strings.Repeat("x", 2048)), 401, "wrong token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, nil, api.Options{Token: []byte(goodToken), NoiseInterval: 10 * time.Millisecond})
			r := do(t, http.MethodPost, s.url+"/api/v1/refresh", tc.body, bearer(tc.token))
			if r.code != tc.code {
				t.Fatalf("Test %d: POST = %d %q, want %d", i, r.code, r.body, tc.code)
			}
			if m := r.json(t); tc.code != 200 && m["error"] == nil {
				t.Errorf("Test %d: body %s", i, r.body)
			}
			recs, _ := s.audit.waitRecords(t, 1)
			if tc.code == 401 && len(recs) == 1 {
				reasons, _ := recs[0].Data["reasons"].(map[string]any)
				if reasons[tc.reason] == 1.0 {
					recs[0].Data["reason"] = tc.reason
				}
			}
			if len(recs) != 1 || recs[0].Data["reason"] != tc.reason {
				t.Fatalf("Test %d: audit records %v, want one with reason %q", i, recs, tc.reason)
			}
			if runs, _, _ := s.att.Stats(); (runs == 1) != (tc.code == 200) {
				t.Errorf("Test %d: %d attestations ran", i, runs)
			}
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	s := start(t, nil, api.Options{Token: []byte(goodToken)})
	for i, tc := range []struct {
		method, path string
		body         io.Reader
		code         int
		allow        string // wanted in Allow
		errMsg       string
	}{
		{"GET", "/nope", nil, 404, "", "not found"},
		{"GET", "/health/", nil, 404, "", "not found"},
		{"GET", "/api/v1", nil, 404, "", "not found"},
		{"POST", "/health", nil, 405, "GET", "method not allowed"},
		{"DELETE", "/api/v1/attest", nil, 405, "GET", "method not allowed"},
		{"PUT", "/api/v1/verify", nil, 405, "HEAD", "method not allowed"},
		{"GET", "/api/v1/refresh", nil, 405, "POST", "method not allowed"},
		{"PATCH", "/metrics", nil, 405, "GET", "method not allowed"},
		{"GET", "/health", strings.NewReader(strings.Repeat("x", 2048)), 413, "", "request body too large (limit 1 KiB)"},
		{"GET", "/api/v1/attest", struct{ io.Reader }{strings.NewReader(strings.Repeat("x", 4096))}, 413, "", "request body too large (limit 1 KiB)"},
	} {
		r := do(t, tc.method, s.url+tc.path, tc.body, nil)
		if r.code != tc.code {
			t.Errorf("Test %d: %s %s = %d %q, want %d", i, tc.method, tc.path, r.code, r.body, tc.code)
			continue
		}
		if want := `{"error":"` + tc.errMsg + `"}` + "\n"; string(r.body) != want {
			t.Errorf("Test %d: %s %s body %q, want %q", i, tc.method, tc.path, r.body, want)
		}
		if tc.allow != "" && !strings.Contains(r.header.Get("Allow"), tc.allow) {
			t.Errorf("Test %d: %s %s Allow = %q, want it to list %s", i, tc.method, tc.path, r.header.Get("Allow"), tc.allow)
		}
	}

	// HEAD works on every read endpoint; OPTIONS lists the methods.
	for _, p := range []string{"/health", "/api/v1/attest", "/api/v1/verify", "/api/security/status", "/metrics"} {
		if r := do(t, http.MethodHead, s.url+p, nil, nil); r.code != 200 || len(r.body) != 0 {
			t.Errorf("HEAD %s = %d %q", p, r.code, r.body)
		}
	}
	if r := do(t, http.MethodOptions, s.url+"/api/v1/refresh", nil, nil); r.code != 204 || !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Errorf("OPTIONS /api/v1/refresh = %d Allow %q", r.code, r.header.Get("Allow"))
	}
	recs, _ := s.audit.records()
	if len(recs) != 0 {
		t.Errorf("routing errors were audited as refreshes: %v", recs)
	}
}

// rawRequest writes req on a new connection and returns the status line.
func rawRequest(t *testing.T, url, req string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read status line: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	s := start(t, nil, api.Options{})
	for i, tc := range []struct{ req, status string }{
		{"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"GET /health HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"}, // no Host
		{"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"POST /api/v1/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
	} {
		if got := rawRequest(t, s.url, tc.req); !strings.HasPrefix(got, tc.status) {
			t.Errorf("Test %d: status %q, want %q", i, got, tc.status)
		}
	}
	if r := get(t, s.url+"/health"); r.code != 200 {
		t.Fatalf("server not answering after malformed requests: %d", r.code)
	}
}

func TestConcurrentRefreshesShareOneAttestationAndReadsDoNotWait(t *testing.T) {
	t.Parallel()
	att := apitest.New(engine.Snapshot{State: state.Degraded, Bundle: signedBundle(t, state.Degraded, 1)})
	newBundle := signedBundle(t, state.Attested, 2)
	att.SetNext(apitest.To(state.Attested, newBundle))
	release := att.Hold()
	defer release()
	s := start(t, att, api.Options{Token: []byte(goodToken)})

	const n = 8
	var wg sync.WaitGroup
	results := make([]response, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = send(http.MethodPost, s.url+"/api/v1/refresh", nil, bearer(goodToken))
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !att.WaitFor(ctx, func(_, _, waiting int) bool { return waiting == n }) {
		t.Fatal("refresh requests never reached the attestor")
	}

	// While the attestation is held, every read answers from the old snapshot.
	reads := map[string]int{"/health": 200, "/api/v1/attest": 200, "/api/v1/verify": 503, "/api/security/status": 200, "/metrics": 200}
	for p, code := range reads {
		r := get(t, s.url+p)
		if r.code != code {
			t.Errorf("GET %s during a refresh = %d, want %d", p, r.code, code)
		}
		if p != "/metrics" && !bytes.Contains(r.body, []byte(`"degraded"`)) {
			t.Errorf("GET %s during a refresh: %s", p, r.body)
		}
	}
	if !att.Running() {
		t.Fatal("the attestation ended before it was released")
	}

	release()
	wg.Wait()
	want := `{"state":"attested","bundle":` + string(newBundle) + "}\n"
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		if results[i].code != 200 || string(results[i].body) != want {
			t.Fatalf("refresh %d = %d %q", i, results[i].code, results[i].body)
		}
	}
	runs, joins, _ := att.Stats()
	if runs != 1 || joins != n-1 {
		t.Errorf("runs %d joins %d, want 1 and %d", runs, joins, n-1)
	}
	if r := get(t, s.url+"/api/v1/verify"); r.code != 200 {
		t.Errorf("verify after refresh = %d %s", r.code, r.body)
	}
	recs, _ := s.audit.records()
	if len(recs) != n {
		t.Errorf("%d audit records, want %d", len(recs), n)
	}
	for _, rec := range recs {
		if rec.Data["authorized"] != true || rec.Data["state"] != "attested" || rec.Data["reason"] != "refreshed" {
			t.Errorf("audit record %v", rec.Data)
		}
	}
}

// send is do for goroutines other than the test's.
func send(method, url string, body io.Reader, header http.Header) (response, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return response{}, err
	}
	req.Header = header
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: raw}, err
}

func TestRefreshTimeoutAndError(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		att := apitest.New(attestedSnapshot(t))
		release := att.Hold()
		defer release()
		s := start(t, att, api.Options{Token: []byte(goodToken), RefreshTimeout: 50 * time.Millisecond})
		r := do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, bearer(goodToken))
		want := `{"error":"refresh did not finish within 50ms","state":"attested"}` + "\n"
		if r.code != http.StatusGatewayTimeout || string(r.body) != want {
			t.Fatalf("POST = %d %q, want 504 %q", r.code, r.body, want)
		}
		recs, _ := s.audit.records()
		if len(recs) != 1 || recs[0].Data["authorized"] != true || recs[0].Data["reason"] != "refresh did not finish within 50ms" {
			t.Errorf("audit %v", recs)
		}
	})
	t.Run("error", func(t *testing.T) {
		t.Parallel()
		att := apitest.New(attestedSnapshot(t))
		att.SetNext(func(engine.Snapshot) (engine.Snapshot, error) { return engine.Snapshot{}, errors.New("engine stopped") })
		s := start(t, att, api.Options{Token: []byte(goodToken)})
		r := do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, bearer(goodToken))
		want := `{"error":"refresh failed: engine stopped","state":"attested"}` + "\n"
		if r.code != http.StatusServiceUnavailable || string(r.body) != want {
			t.Fatalf("POST = %d %q, want 503 %q", r.code, r.body, want)
		}
	})
}

func TestShutdownAbandonsWaitingRefresh(t *testing.T) {
	t.Parallel()
	att := apitest.New(attestedSnapshot(t))
	release := att.Hold()
	defer release()
	srv := api.New(api.Options{Attestor: att, Token: []byte(goodToken)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	got := make(chan response, 1)
	go func() {
		r, err := send(http.MethodPost, "http://"+ln.Addr().String()+"/api/v1/refresh", nil, bearer(goodToken))
		if err != nil {
			r.body = []byte(err.Error())
		}
		got <- r
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !att.WaitFor(ctx, func(_, _, waiting int) bool { return waiting == 1 }) {
		t.Fatal("refresh never reached the attestor")
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v after Shutdown, want nil", err)
	}
	r := <-got
	want := `{"error":"refresh abandoned: the attestor is shutting down","state":"attested"}` + "\n"
	if r.code != http.StatusServiceUnavailable || string(r.body) != want {
		t.Fatalf("refresh during shutdown = %d %q, want 503 %q", r.code, r.body, want)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	p := &panicky{Attestor: apitest.New(attestedSnapshot(t)), armed: true}
	s := start(t, p.Attestor, api.Options{Attestor: p, Logger: debugLogger(logs)})
	r := get(t, s.url+"/health")
	if r.code != 500 || string(r.body) != `{"error":"internal error"}`+"\n" {
		t.Fatalf("GET /health with a panicking attestor = %d %q", r.code, r.body)
	}
	if !strings.Contains(logs.String(), "handler panicked") || !strings.Contains(logs.String(), "snapshot exploded") {
		t.Errorf("panic not logged: %q", logs.String())
	}
	p.mu.Lock()
	p.armed = false
	p.mu.Unlock()
	if r := get(t, s.url+"/health"); r.code != 200 {
		t.Fatalf("after a panic: GET /health = %d", r.code)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s := start(t, nil, api.Options{Token: []byte(goodToken)})
	for _, tok := range []string{goodToken, "wrong", "wrong2"} {
		do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, bearer(tok))
	}
	s.SetToken(nil)
	do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, bearer(goodToken))

	snap := s.att.Snapshot() // after one refresh: AttestCount 6, RefreshCount 4
	want := fmt.Sprintf(`# HELP runtime_attestor_state Current attestation state: 1 for the current state, 0 for the others.
# TYPE runtime_attestor_state gauge
runtime_attestor_state{state="attested"} 1
runtime_attestor_state{state="degraded"} 0
runtime_attestor_state{state="failed"} 0
runtime_attestor_state{state="pending"} 0
# HELP runtime_attestor_attestations_total Attestations run, whatever their outcome (attest_count in /api/security/status).
# TYPE runtime_attestor_attestations_total counter
runtime_attestor_attestations_total 6
# HELP runtime_attestor_attestations_degraded_total Attestations that ended degraded (degrade_count in /api/security/status).
# TYPE runtime_attestor_attestations_degraded_total counter
runtime_attestor_attestations_degraded_total 2
# HELP runtime_attestor_attestations_failed_total Attestations that ended failed (fail_count in /api/security/status).
# TYPE runtime_attestor_attestations_failed_total counter
runtime_attestor_attestations_failed_total 0
# HELP runtime_attestor_refresh_requests_total POST /api/v1/refresh requests by outcome of the token check.
# TYPE runtime_attestor_refresh_requests_total counter
runtime_attestor_refresh_requests_total{result="authorized"} 1
runtime_attestor_refresh_requests_total{result="forbidden"} 1
runtime_attestor_refresh_requests_total{result="unauthorized"} 2
# HELP runtime_attestor_score Severity-weighted score of the last attestation's findings.
# TYPE runtime_attestor_score gauge
runtime_attestor_score 1
# HELP runtime_attestor_plugin_duration_seconds Duration of the check plugin's last measurement.
# TYPE runtime_attestor_plugin_duration_seconds gauge
runtime_attestor_plugin_duration_seconds{plugin="binaries"} 0.012
runtime_attestor_plugin_duration_seconds{plugin="tpm"} 1.5
# HELP runtime_attestor_plugin_faults_total Faults of the check plugin (crash, timeout, protocol error, ...).
# TYPE runtime_attestor_plugin_faults_total counter
runtime_attestor_plugin_faults_total{plugin="binaries"} 0
runtime_attestor_plugin_faults_total{plugin="tpm"} 2
# HELP runtime_attestor_plugin_findings Findings of the check plugin's last measurement.
# TYPE runtime_attestor_plugin_findings gauge
runtime_attestor_plugin_findings{plugin="binaries"} 1
runtime_attestor_plugin_findings{plugin="tpm"} 0
# HELP runtime_attestor_refreshes_total Attestations run because of a refresh request.
# TYPE runtime_attestor_refreshes_total counter
runtime_attestor_refreshes_total %d
`, snap.RefreshCount)
	if err := testutil.ScrapeAndCompare(s.url+"/metrics", strings.NewReader(want),
		"runtime_attestor_state", "runtime_attestor_attestations_total", "runtime_attestor_attestations_degraded_total",
		"runtime_attestor_attestations_failed_total", "runtime_attestor_refresh_requests_total", "runtime_attestor_score",
		"runtime_attestor_plugin_duration_seconds", "runtime_attestor_plugin_faults_total",
		"runtime_attestor_plugin_findings", "runtime_attestor_refreshes_total"); err != nil {
		t.Fatal(err)
	}

	// The whole scrape parses, and the timestamp is the snapshot's.
	r := get(t, s.url+"/metrics")
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", r.code, r.header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	last := gaugeValue(t, fams, "runtime_attestor_last_attested_timestamp_seconds")
	if wantTS := float64(snap.LastAttested.UnixNano()) / 1e9; last != wantTS {
		t.Errorf("last_attested_timestamp_seconds = %v, want %v", last, wantTS)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("%s missing from the scrape", name)
		}
	}

	// Pending: the timestamp is 0 and the state is pending.
	s.att.Set(engine.Snapshot{State: state.Pending})
	fams, err = p.TextToMetricFamilies(bytes.NewReader(get(t, s.url+"/metrics").body))
	if err != nil {
		t.Fatal(err)
	}
	if v := gaugeValue(t, fams, "runtime_attestor_last_attested_timestamp_seconds"); v != 0 {
		t.Errorf("pending: last_attested_timestamp_seconds = %v, want 0", v)
	}
	for _, m := range fams["runtime_attestor_state"].GetMetric() {
		if want := m.GetLabel()[0].GetValue() == "pending"; (m.GetGauge().GetValue() == 1) != want {
			t.Errorf("pending: state{%s} = %v", m.GetLabel()[0].GetValue(), m.GetGauge().GetValue())
		}
	}
	if fams["runtime_attestor_plugin_duration_seconds"] != nil {
		t.Error("pending: plugin metrics without plugins")
	}
}

func gaugeValue(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.GetMetric()) != 1 {
		t.Fatalf("metric %s missing or not single", name)
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

func TestRefreshesAuditedInRealLog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, nil, api.Options{Token: []byte(goodToken), Audit: l})
	headers := []http.Header{
		nil,
		bearer(goodToken),
		bearer(goodToken[:len(goodToken)-1] + "0"),
		bearer(goodToken + goodToken),
		{"Authorization": {"Basic " + goodToken}},
		{"Authorization": {goodToken}},
	}
	for _, h := range headers {
		do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, h)
	}
	s.SetToken(nil)
	do(t, http.MethodPost, s.url+"/api/v1/refresh", nil, bearer(goodToken))
	// Shutdown writes the refusals still being coalesced.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	rep, err := audit.VerifyFile(path)
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var authorized, refusedRecs int
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var rec struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		switch rec.Type {
		case "refresh":
			authorized++
			if rec.Data["authorized"] != true || !strings.HasPrefix(fmt.Sprint(rec.Data["peer"]), "127.0.0.1:") {
				t.Errorf("audit record %s", line)
			}
		case api.TypeRefreshRefused:
			refusedRecs++
			// Five refused for their token, one with refresh disabled.
			if rec.Data["count"] != float64(len(headers)) || rec.Data["peer"] != "127.0.0.1" {
				t.Errorf("audit record %s, want count %d", line, len(headers))
			}
		}
	}
	if authorized != 1 || refusedRecs != 1 {
		t.Errorf("%d authorized and %d refresh_refused records (of %d records), want 1 and 1", authorized, refusedRecs, rep.Records)
	}
	if leak := tokenPart(string(raw), goodToken); leak != "" {
		t.Errorf("token part %q in the audit log", leak)
	}
}

func TestValidateToken(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		tok string
		ok  bool
	}{
		{goodToken, true},
		{" " + goodToken + "\n", true},
		{"", false},
		{" \n", false},
		{"two words", false},
		{"tab\there", false},
		{"caf\xc3\xa9", false},
		{"nul\x00", false},
	} {
		if err := apitypes.ValidateToken([]byte(tc.tok)); (err == nil) != tc.ok {
			t.Errorf("Test %d: apitypes.ValidateToken(%q) = %v, want ok=%t", i, tc.tok, err, tc.ok)
		}
	}
}
