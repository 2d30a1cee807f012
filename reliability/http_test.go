package reliability

// HTTP abuse against the real daemon (six real plugins, development
// policy, a real loopback socket): bearer tokens that are missing, wrong,
// almost right or over-long, with the server-side handling time of each
// class; huge bodies; slowloris and slow bodies; more idle connections
// than the server accepts; storms of refused and of authorized refreshes;
// malformed paths, methods and request lines sent on raw connections.
// Nothing may crash the daemon or get a refresh through without the
// token, the API must keep answering, and every refused refresh must be in
// the audit log with its peer and without the token.

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// abuseLong reports whether the long variants run (ATTESTOR_STRESS=1,
// `make stress`).
func abuseLong() bool { return os.Getenv("ATTESTOR_STRESS") == "1" }

// abuseRun is one daemon under attack and what the attacks did to it.
type abuseRun struct {
	t   *testing.T
	env *daemontest.Env
	p   *daemontest.Proc
	// refused counts the 401 answers of POST /api/v1/refresh (they carry
	// WWW-Authenticate: Bearer): each must be one audited refusal.
	refused atomic.Int64
	// sent counts the requests and connections thrown at the daemon.
	sent atomic.Int64
}

// TestHTTPAbuse runs every attack in turn against one daemon, then checks
// that it survived: same process, still attested, every refused refresh in
// an intact audit log, the token nowhere in the audit log or the daemon's
// log, and a clean exit on SIGTERM.
func TestHTTPAbuse(t *testing.T) {
	t.Parallel()
	env := daemontest.New(t, daemontest.Options{})
	// The request log (debug) times the server side of the refusals below.
	env.EditPolicy(func(doc map[string]any) { doc["log_level"] = "debug" })
	p := env.Start()
	before := env.State()
	if before != "attested" {
		// The development policy attests on any Linux machine; say so, but
		// the attacks mean the same on a degraded daemon.
		t.Logf("state %s before the attacks (the development policy should attest here); log:\n%s", before, badTail(p.Stderr(), 3000))
	}
	r := &abuseRun{t: t, env: env, p: p}
	pid := p.PID()

	t.Run("tokens", r.tokens)
	t.Run("bodies", r.bodies)
	t.Run("malformed", r.malformed)
	t.Run("slowloris", r.slowloris)
	t.Run("connections", r.connections)
	t.Run("refused_storm", r.refusedStorm)
	t.Run("refresh_storm", r.refreshStorm)

	if !p.Alive() || p.PID() != pid {
		t.Fatalf("the daemon did not survive; log:\n%s", p.Stderr())
	}
	if s := env.State(); s != before {
		t.Errorf("state %s after the attacks, want %s as before", s, before)
	}

	// Every refresh is audited, with its peer, never the token: an
	// authorized one by itself, the refused ones coalesced (counted when
	// the daemon stops, below).
	recs := env.AuditRecords()
	peerRE := regexp.MustCompile(`^127\.0\.0\.1:[0-9]+$`)
	for _, rec := range recs {
		if rec.Type != "refresh" {
			continue
		}
		if peer, _ := rec.Data["peer"].(string); !peerRE.MatchString(peer) {
			t.Errorf("refresh record %d has peer %q, want 127.0.0.1:port", rec.Seq, peer)
			break
		}
		if reason, _ := rec.Data["reason"].(string); reason == "" {
			t.Errorf("refresh record %d has no reason", rec.Seq)
			break
		}
	}
	if got := abuseMetric(t, env, `runtime_attestor_refresh_requests_total{result="unauthorized"}`); int64(got) != r.refused.Load() {
		t.Errorf("metric refresh_requests_total{unauthorized} = %v, want %d", got, r.refused.Load())
	}
	raw, err := os.ReadFile(env.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	// The almost-right tokens share all but one byte with the token: not
	// even the token minus its last byte may appear anywhere.
	secret := env.Token[:len(env.Token)-1]
	if bytes.Contains(raw, []byte(secret)) {
		t.Error("the audit log contains the API token (or all but its last byte)")
	}
	if strings.Contains(p.Stderr(), secret) {
		t.Error("the daemon's log contains the API token (or all but its last byte)")
	}

	p.Stop()
	rep, err := audit.VerifyFile(env.AuditPath)
	if err != nil {
		t.Fatalf("audit log chain after the attacks: %v", err)
	}
	// Stopping wrote the refusals still being coalesced.
	recs = env.AuditRecords()
	unauth, refusedRecs := daemontest.RefusedCount(recs)
	if int64(unauth) != r.refused.Load() {
		t.Errorf("audit log counts %d refused refreshes, the daemon answered %d refusals (401)", unauth, r.refused.Load())
	}
	report(t, "survived %d hostile requests and connections; audit log intact: %d records, %d refused refreshes audited in %d coalesced records",
		r.sent.Load(), rep.Records, unauth, refusedRecs)
}

// metric returns the value of one sample of /metrics (the full series name
// with its labels), failing the test when it is missing.
func abuseMetric(t *testing.T, env *daemontest.Env, series string) float64 {
	t.Helper()
	_, body := env.Get("/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s in /metrics", series)
	return 0
}

// refreshCounters returns refresh_count and the authorized refresh
// requests: neither may move while only refused requests are sent.
func (r *abuseRun) refreshCounters() (refreshes uint64, authorized float64) {
	_, refreshes = r.env.Counters()
	return refreshes, abuseMetric(r.t, r.env, `runtime_attestor_refresh_requests_total{result="authorized"}`)
}

// noteResponse counts a refresh refusal (401 with the Bearer challenge).
func (r *abuseRun) noteResponse(resp *http.Response) {
	if resp != nil && resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		r.refused.Add(1)
	}
}

// tokenClass is one kind of Authorization header.
type abuseToken struct {
	name   string
	header func() (string, bool) // value, present
}

func abuseRandomHex(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := crand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// flip returns c changed into another printable character.
func abuseFlip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func (r *abuseRun) tokenClasses() []abuseToken {
	tok := r.env.Token
	n := len(tok)
	bearer := func(s string) func() (string, bool) { return func() (string, bool) { return "Bearer " + s, true } }
	return []abuseToken{
		{"wrong, same length", func() (string, bool) { return "Bearer " + abuseRandomHex(n), true }},
		{"missing", func() (string, bool) { return "", false }},
		{"last byte wrong", bearer(tok[:n-1] + abuseFlip(tok[n-1]))},
		{"first byte wrong", bearer(abuseFlip(tok[0]) + tok[1:])},
		{"one byte short", bearer(tok[:n-1])},
		{"one byte long", bearer(tok + "0")},
		{"over-long, 4 KiB", bearer(strings.Repeat("A", 4096))},
		{"empty bearer", func() (string, bool) { return "Bearer ", true }},
		{"basic scheme", func() (string, bool) {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+tok)), true
		}},
		{"token without scheme", func() (string, bool) { return tok, true }},
	}
}

// tokens sends every token class, interleaved, each class on its own
// keep-alive connection so that the daemon's request log (peer, duration)
// tells the classes apart, and reports the server-side and round-trip
// times per class. Timing never fails the test; an accepted token does.
func (r *abuseRun) tokens(t *testing.T) {
	samples := 300
	if abuseLong() {
		samples = 2000
	}
	classes := r.tokenClasses()
	refreshes0, auth0 := r.refreshCounters()

	type classRun struct {
		client *http.Client
		ports  sync.Map // local port -> true
		rtt    []float64
		server []float64
		codes  map[int]int
	}
	runs := make([]*classRun, len(classes))
	for i := range classes {
		cr := &classRun{codes: map[int]int{}}
		dialer := &net.Dialer{Timeout: 10 * time.Second}
		cr.client = &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				MaxConnsPerHost:     1,
				MaxIdleConnsPerHost: 1,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := dialer.DialContext(ctx, network, addr)
					if err == nil {
						cr.ports.Store(c.LocalAddr().(*net.TCPAddr).Port, true)
					}
					return c, err
				},
			},
		}
		runs[i] = cr
	}
	url := r.env.URL("/api/v1/refresh")
	order := make([]int, len(classes))
	for i := range order {
		order[i] = i
	}
	for s := 0; s < samples; s++ {
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, ci := range order {
			req, err := http.NewRequest(http.MethodPost, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := classes[ci].header(); ok {
				req.Header.Set("Authorization", v)
			}
			start := time.Now()
			resp, err := runs[ci].client.Do(req)
			if err != nil {
				t.Fatalf("class %q: %v", classes[ci].name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			runs[ci].rtt = append(runs[ci].rtt, float64(time.Since(start).Microseconds()))
			runs[ci].codes[resp.StatusCode]++
			r.sent.Add(1)
			r.noteResponse(resp)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("class %q: status %d, want 401", classes[ci].name, resp.StatusCode)
			}
		}
	}
	for _, cr := range runs {
		cr.client.CloseIdleConnections()
	}
	if rf, au := r.refreshCounters(); rf != refreshes0 || au != auth0 {
		t.Errorf("refused tokens moved the counters: refresh_count %d -> %d, authorized requests %v -> %v", refreshes0, rf, auth0, au)
	}

	// Server-side handling time, from the daemon's request log (debug):
	// the time from routing to the response, audit append (fsync) included.
	lineRE := regexp.MustCompile(`request: method=POST path=/api/v1/refresh status=401 .*peer=127\.0\.0\.1:([0-9]+) duration="?([^" ]+)"?`)
	parsed := 0
	for _, line := range strings.Split(r.p.Stderr(), "\n") {
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		port, _ := strconv.Atoi(m[1])
		d, err := time.ParseDuration(m[2])
		if err != nil {
			continue
		}
		for _, cr := range runs {
			if _, ok := cr.ports.Load(port); ok {
				cr.server = append(cr.server, float64(d.Nanoseconds())/1e3)
				parsed++
				break
			}
		}
	}
	if parsed < samples*len(classes)/2 {
		t.Errorf("only %d of %d refused requests found in the daemon's request log: cannot report server-side times", parsed, samples*len(classes))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "token classes, %d samples each, interleaved; times in µs; AUC = P(class slower than \"wrong, same length\"), 0.5 = indistinguishable\n", samples)
	fmt.Fprintf(&b, "%-22s %6s | %8s %8s %8s %6s %6s | %8s %8s %6s\n", "class", "401s", "srv p50", "srv p90", "Δp50/IQR", "AUC", "z", "rtt p50", "rtt p90", "AUC")
	base := runs[0]
	for i, cr := range runs {
		ss, rs := abuseQuantiles(cr.server), abuseQuantiles(cr.rtt)
		auc, z := abuseMannWhitney(cr.server, base.server)
		rauc, _ := abuseMannWhitney(cr.rtt, base.rtt)
		iqr := (abuseQuantiles(base.server).p75 - abuseQuantiles(base.server).p25 + ss.p75 - ss.p25) / 2
		rel := 0.0
		if iqr > 0 {
			rel = (ss.p50 - abuseQuantiles(base.server).p50) / iqr
		}
		fmt.Fprintf(&b, "%-22s %6d | %8.1f %8.1f %8.2f %6.3f %6.1f | %8.1f %8.1f %6.3f\n",
			classes[i].name, cr.codes[401], ss.p50, ss.p90, rel, auc, z, rs.p50, rs.p90, rauc)
		if stress() || os.Getenv(reportEnv) != "" {
			report(t, "token class %q: %d refused; server p50 %.1f µs p90 %.1f µs, AUC vs wrong token %.3f (z %.1f); round trip p50 %.1f µs",
				classes[i].name, cr.codes[401], ss.p50, ss.p90, auc, z, rs.p50)
		}
	}
	t.Log("\n" + b.String())
}

type abuseSummary struct{ p25, p50, p75, p90 float64 }

func abuseQuantiles(xs []float64) abuseSummary {
	if len(xs) == 0 {
		return abuseSummary{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	q := func(p float64) float64 { return s[int(math.Min(float64(len(s)-1), math.Floor(p*float64(len(s)))))] }
	return abuseSummary{q(0.25), q(0.5), q(0.75), q(0.9)}
}

// mannWhitney returns the AUC (probability that a value of a exceeds one
// of b, ties counting half) and the normal-approximation z of the
// Mann-Whitney U test.
func abuseMannWhitney(a, b []float64) (auc, z float64) {
	n1, n2 := float64(len(a)), float64(len(b))
	if n1 == 0 || n2 == 0 {
		return math.NaN(), math.NaN()
	}
	type v struct {
		x    float64
		from int
	}
	all := make([]v, 0, len(a)+len(b))
	for _, x := range a {
		all = append(all, v{x, 0})
	}
	for _, x := range b {
		all = append(all, v{x, 1})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].x < all[j].x })
	rankSum := 0.0
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].x == all[i].x {
			j++
		}
		rank := float64(i+j+1) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			if all[k].from == 0 {
				rankSum += rank
			}
		}
		i = j
	}
	u := rankSum - n1*(n1+1)/2
	auc = u / (n1 * n2)
	sd := math.Sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
	return auc, (u - n1*n2/2) / sd
}

// abuseRawResult is what the daemon answered on a raw connection.
type abuseRawResult struct {
	status  int
	resp    *http.Response
	elapsed time.Duration
	err     error
}

// rawRequest writes head on a fresh connection, then body (if any) in a
// goroutine, and reads one response. The daemon may answer before it has
// read the body and close the connection: a failed body write is expected.
func (r *abuseRun) rawRequest(head []byte, body io.Reader, timeout time.Duration) abuseRawResult {
	r.sent.Add(1)
	c, err := net.DialTimeout("tcp", r.env.Addr, 10*time.Second)
	if err != nil {
		return abuseRawResult{err: err}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	start := time.Now()
	if _, err := c.Write(head); err != nil {
		return abuseRawResult{err: err}
	}
	if body != nil {
		go func() { _, _ = io.Copy(c, body) }()
	}
	// The request tells ReadResponse whether a body follows (not after
	// HEAD).
	method, _, _ := strings.Cut(string(head), " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	res := abuseRawResult{resp: resp, elapsed: time.Since(start), err: err}
	if err == nil {
		res.status = resp.StatusCode
		r.noteResponse(resp)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	return res
}

// zeros is an endless reader of zero bytes.
type abuseZeros struct{}

func (abuseZeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// chunked encodes n bytes of zeros as a chunked body.
func abuseChunked(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		w := bufio.NewWriter(pw)
		for n > 0 {
			k := min(n, len(chunk))
			fmt.Fprintf(w, "%x\r\n", k)
			if _, err := w.Write(chunk[:k]); err != nil {
				pw.CloseWithError(err)
				return
			}
			w.WriteString("\r\n")
			n -= k
		}
		w.WriteString("0\r\n\r\n")
		pw.CloseWithError(w.Flush())
	}()
	return pr
}

func abuseVmRSS(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// bodies sends 10 MiB bodies, declared and chunked, with and without the
// token: refused (401 before the body is read, 413 after 1 KiB) without
// ever running an attestation.
func (r *abuseRun) bodies(t *testing.T) {
	const size = 10 << 20
	refreshes0, _ := r.env.Counters()
	rss0 := abuseVmRSS(r.p.PID())
	auth := "Authorization: Bearer " + r.env.Token + "\r\n"
	for i, tc := range []struct {
		name    string
		head    string
		chunked bool
		want    int
	}{
		{"refresh, no token, 10 MiB declared", "POST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n", false, 401},
		{"refresh, no token, 10 MiB chunked", "POST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", true, 401},
		{"refresh, wrong token, 10 MiB declared", "POST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer nope-nope-nope-nope\r\nContent-Length: %d\r\n\r\n", false, 401},
		{"refresh, token, 10 MiB declared", "POST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "Content-Length: %d\r\n\r\n", false, 413},
		{"refresh, token, 10 MiB chunked", "POST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n", true, 413},
		{"refresh, token, 2 KiB JSON", "POST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "Content-Length: %d\r\n\r\n", false, 413},
		{"health, 10 MiB declared", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n", false, 413},
		{"health, 10 MiB chunked", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", true, 413},
		{"attest, 10 MiB declared", "GET /api/v1/attest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n", false, 413},
		{"refresh, token, 20 KiB header", "POST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + strings.Repeat("A", 20<<10) + "\r\n\r\n", false, 431},
	} {
		n := size
		if strings.Contains(tc.name, "2 KiB") {
			n = 2 << 10
		}
		head := tc.head
		if strings.Contains(head, "%d") {
			head = fmt.Sprintf(head, n)
		}
		var body io.Reader
		switch {
		case strings.Contains(tc.name, "header"):
		case tc.chunked:
			body = abuseChunked(n)
		default:
			body = io.LimitReader(abuseZeros{}, int64(n))
		}
		res := r.rawRequest([]byte(head), body, 60*time.Second)
		if res.err != nil || res.status != tc.want {
			t.Errorf("Test %d (%s): status %d (%v), want %d", i, tc.name, res.status, res.err, tc.want)
			continue
		}
		t.Logf("%-40s -> %d in %s", tc.name, res.status, res.elapsed.Round(time.Microsecond))
	}
	if rf, _ := r.env.Counters(); rf != refreshes0 {
		t.Errorf("refused bodies ran attestations: refresh_count %d -> %d", refreshes0, rf)
	}
	if code, _ := r.env.Get("/health"); code != 200 {
		t.Errorf("/health = %d after the bodies", code)
	}
	report(t, "daemon VmRSS %s before, %s after 90 MiB of refused bodies", rss0, abuseVmRSS(r.p.PID()))
}

// malformed sends broken or hostile request lines, paths, methods and
// headers on raw connections; each must get the status net/http or the
// router gives it (4xx, or 505/501 for an unsupported version or coding,
// 2xx only where the request is in fact valid), and none may crash the
// daemon.
func (r *abuseRun) malformed(t *testing.T) {
	long := func(n int) string { return "/" + strings.Repeat("a", n) }
	many := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "X-H%d: 1\r\n", i)
		}
		return b.String()
	}
	const h = "Host: 127.0.0.1\r\n"
	cases := []struct {
		name string
		raw  string
		want []int
	}{
		{"dot-dot path", "GET /../../etc/passwd HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"encoded dot-dot", "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n" + h + "\r\n", []int{404, 400}},
		{"dot-dot after route", "GET /api/v1/attest/.. HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"double slash", "GET //health HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"NUL in path", "GET /%00 HTTP/1.1\r\n" + h + "\r\n", []int{404, 400}},
		{"NUL after route", "GET /health%00 HTTP/1.1\r\n" + h + "\r\n", []int{404, 400}},
		{"raw control byte", "GET /health\x01 HTTP/1.1\r\n" + h + "\r\n", []int{400}},
		{"invalid UTF-8 path", "GET /\xff\xfe HTTP/1.1\r\n" + h + "\r\n", []int{404, 400}},
		{"space in path", "GET /he alth HTTP/1.1\r\n" + h + "\r\n", []int{400}},
		{"7 KiB path", "GET " + long(7000) + " HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"20 KiB path", "GET " + long(20000) + " HTTP/1.1\r\n" + h + "\r\n", []int{431}},
		{"6 KiB query", "GET /health?" + strings.Repeat("a=1&", 1500) + " HTTP/1.1\r\n" + h + "\r\n", []int{200}},
		{"relative path", "GET health HTTP/1.1\r\n" + h + "\r\n", []int{400}},
		{"absolute URI", "GET http://evil.example/api/v1/refresh HTTP/1.1\r\n" + h + "\r\n", []int{421}}, // the absolute URI names another host: misdirected
		{"trailing slash", "POST /api/v1/refresh/ HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"upper case path", "POST /API/V1/REFRESH HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"empty segment", "POST /api/v1//refresh HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"dot segment", "POST /api/v1/./refresh HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"encoded slashes", "POST /api%2fv1%2frefresh HTTP/1.1\r\n" + h + "\r\n", []int{404}},
		{"encoded letter", "POST /api/v1/%72efresh HTTP/1.1\r\n" + h + "\r\n", []int{404, 401}},
		{"TRACE root", "TRACE / HTTP/1.1\r\n" + h + "\r\n", []int{404, 405}},
		{"TRACE route", "TRACE /health HTTP/1.1\r\n" + h + "\r\n", []int{405}},
		{"CONNECT authority", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", []int{421}},
		{"foreign Host (DNS rebinding)", "GET /api/v1/attest HTTP/1.1\r\nHost: rebound.example\r\n\r\n", []int{421}},
		{"CONNECT route", "CONNECT /api/v1/refresh HTTP/1.1\r\n" + h + "\r\n", []int{405, 400}},
		{"unknown method", "FOO /health HTTP/1.1\r\n" + h + "\r\n", []int{405}},
		{"lower-case method", "post /api/v1/refresh HTTP/1.1\r\n" + h + "\r\n", []int{405}},
		{"DELETE", "DELETE /health HTTP/1.1\r\n" + h + "\r\n", []int{405}},
		{"PUT refresh", "PUT /api/v1/refresh HTTP/1.1\r\n" + h + "Content-Length: 2\r\n\r\n{}", []int{405}},
		{"GET refresh", "GET /api/v1/refresh HTTP/1.1\r\n" + h + "\r\n", []int{405}},
		{"HEAD refresh", "HEAD /api/v1/refresh HTTP/1.1\r\n" + h + "\r\n", []int{405}},
		{"OPTIONS refresh", "OPTIONS /api/v1/refresh HTTP/1.1\r\n" + h + "\r\n", []int{204}},
		{"OPTIONS star", "OPTIONS * HTTP/1.1\r\n" + h + "\r\n", []int{200, 400, 404}},
		{"HTTP/1.0 without Host", "GET /health HTTP/1.0\r\n\r\n", []int{200}},
		{"HTTP/1.0 refresh", "POST /api/v1/refresh HTTP/1.0\r\n\r\n", []int{401}},
		{"HTTP/2.0 line", "GET /health HTTP/2.0\r\n" + h + "\r\n", []int{505}},
		{"HTTP/9.9", "GET /health HTTP/9.9\r\n" + h + "\r\n", []int{505}},
		{"h2c preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", []int{400, 404, 505}},
		{"garbage bytes", "\x00\x01\x02\x03\r\n\r\n", []int{400}},
		{"extra word", "GET /health HTTP/1.1 extra\r\n" + h + "\r\n", []int{400}},
		{"double space", "GET  /health HTTP/1.1\r\n" + h + "\r\n", []int{400}},
		{"leading blank lines", "\r\n\r\n\r\nGET /health HTTP/1.1\r\n" + h + "\r\n", []int{400, 200}},
		{"no Host", "GET /health HTTP/1.1\r\n\r\n", []int{400}},
		{"two Hosts", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: y\r\n\r\n", []int{400}},
		{"header without colon", "GET /health HTTP/1.1\r\n" + h + "Broken header\r\n\r\n", []int{400}},
		{"folded header", "GET /health HTTP/1.1\r\n" + h + " folded: y\r\n\r\n", []int{400}},
		{"negative length", "GET /health HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", []int{400}},
		{"two lengths", "POST /api/v1/refresh HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", []int{400}},
		{"chunked and length", "POST /api/v1/refresh HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", []int{400, 401}},
		{"bad chunk", "GET /health HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", []int{400}},
		{"unknown coding", "GET /health HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, identity\r\n\r\n", []int{501, 400}},
		{"DEL in header", "GET /health HTTP/1.1\r\n" + h + "Authorization: Bearer \x7f\r\n\r\n", []int{400}},
		{"2,000 headers", "GET /health HTTP/1.1\r\n" + h + many(2000) + "\r\n", []int{431}},
		{"bare LF", "GET /health HTTP/1.1\nHost: 127.0.0.1\n\n", []int{200, 400}},
		{"refresh, two Authorization", "POST /api/v1/refresh HTTP/1.1\r\n" + h + "Authorization: Bearer " + r.env.Token + "\r\nAuthorization: Bearer x\r\n\r\n", []int{401}},
		{"refresh, token with tab", "POST /api/v1/refresh HTTP/1.1\r\n" + h + "Authorization: Bearer \t" + r.env.Token + "x\r\n\r\n", []int{401}},
		{"refresh, token in query", "POST /api/v1/refresh?token=" + r.env.Token + " HTTP/1.1\r\n" + h + "\r\n", []int{401}},
		{"refresh, token in body", "POST /api/v1/refresh HTTP/1.1\r\n" + h + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(6+len(r.env.Token)) + "\r\n\r\ntoken=" + r.env.Token, []int{401}},
		{"refresh, token in cookie", "POST /api/v1/refresh HTTP/1.1\r\n" + h + "Cookie: token=" + r.env.Token + "\r\n\r\n", []int{401}},
	}
	refreshes0, auth0 := r.refreshCounters()
	statuses := map[int]int{}
	for i, tc := range cases {
		res := r.rawRequest([]byte(tc.raw), nil, 20*time.Second)
		statuses[res.status]++
		if res.err != nil {
			t.Errorf("Test %d (%s): no answer: %v", i, tc.name, res.err)
			continue
		}
		ok := false
		for _, w := range tc.want {
			ok = ok || res.status == w
		}
		if !ok {
			t.Errorf("Test %d (%s): status %d, want one of %v", i, tc.name, res.status, tc.want)
		}
		if !r.p.Alive() {
			t.Fatalf("Test %d (%s) killed the daemon; log:\n%s", i, tc.name, r.p.Stderr())
		}
	}
	// Pipelined requests are answered in order on one connection.
	c, err := net.DialTimeout("tcp", r.env.Addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = io.WriteString(c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nPOST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /api/v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, want := range []int{200, 401, 200} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("pipelined response %d: %v", i, err)
		}
		r.noteResponse(resp)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("pipelined response %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	c.Close()
	r.sent.Add(1)

	if rf, au := r.refreshCounters(); rf != refreshes0 || au != auth0 {
		t.Errorf("malformed requests moved the refresh counters: %d -> %d, authorized %v -> %v", refreshes0, rf, auth0, au)
	}
	codes := make([]int, 0, len(statuses))
	for c := range statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b strings.Builder
	for _, c := range codes {
		fmt.Fprintf(&b, " %d×%d", statuses[c], c)
	}
	report(t, "%d malformed requests + 1 pipelined triple: statuses%s", len(cases), b.String())
}

// probe fetches /health on a fresh connection, as a downstream service
// would, and returns the latency.
func (r *abuseRun) probe(timeout time.Duration) (time.Duration, error) {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get(r.env.URL("/health"))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return time.Since(start), nil
}

// prober probes /health every interval until stop is closed and returns
// the latencies and the failures.
func (r *abuseRun) prober(interval time.Duration, stop <-chan struct{}) (done <-chan struct{}, lat *[]float64, failures *[]string) {
	var mu sync.Mutex
	var ls []float64
	var fs []string
	ch := make(chan struct{})
	var wg sync.WaitGroup
	go func() {
		defer close(ch)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				wg.Wait()
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := r.probe(60 * time.Second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					fs = append(fs, err.Error())
					return
				}
				ls = append(ls, float64(d.Microseconds())/1e3)
			}()
		}
	}()
	return ch, &ls, &fs
}

// slowloris opens many connections that send their headers one byte at a
// time, and a few that send a declared body one byte at a time; the
// server must cut them (ReadHeaderTimeout, ReadTimeout) while /health
// keeps answering on fresh connections.
func (r *abuseRun) slowloris(t *testing.T) {
	// The slow bodies last ReadTimeout (10 s), twice the slowloris: in the
	// long run only.
	loris, slowBodies := 200, 0
	if abuseLong() {
		loris, slowBodies = 240, 10
	}
	stop := make(chan struct{})
	probeDone, lat, fails := r.prober(100*time.Millisecond, stop)

	type closed struct {
		after time.Duration
		bytes int
	}
	results := make([]closed, loris+slowBodies)
	var wg sync.WaitGroup
	for i := 0; i < loris+slowBodies; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.sent.Add(1)
			c, err := net.DialTimeout("tcp", r.env.Addr, 10*time.Second)
			if err != nil {
				results[i] = closed{after: -1}
				return
			}
			defer c.Close()
			start := time.Now()
			var payload string
			if i < loris {
				payload = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + strings.Repeat("z", 1000)
			} else {
				_, _ = io.WriteString(c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n")
				payload = strings.Repeat("z", 1000)
			}
			// Send one byte every 150 ms until the server hangs up (a
			// write fails or the connection reads EOF or an answer), at
			// most 40 s.
			readDone := make(chan struct{})
			go func() {
				defer close(readDone)
				_ = c.SetReadDeadline(time.Now().Add(40 * time.Second))
				_, _ = c.Read(make([]byte, 512))
			}()
			sent := 0
			for sent < len(payload) {
				select {
				case <-readDone:
					results[i] = closed{time.Since(start), sent}
					return
				case <-time.After(150 * time.Millisecond):
				}
				if _, err := c.Write([]byte{payload[sent]}); err != nil {
					results[i] = closed{time.Since(start), sent}
					return
				}
				sent++
				if time.Since(start) > 40*time.Second {
					break
				}
			}
			results[i] = closed{after: -2, bytes: sent}
		}()
	}
	wg.Wait()
	close(stop)
	<-probeDone

	var headerCut, bodyCut []float64
	for i, c := range results {
		switch {
		case c.after == -1:
			t.Errorf("slow connection %d could not connect", i)
		case c.after == -2:
			t.Errorf("slow connection %d was never cut (sent %d bytes over 40 s)", i, c.bytes)
		case i < loris:
			headerCut = append(headerCut, c.after.Seconds())
		default:
			bodyCut = append(bodyCut, c.after.Seconds())
		}
	}
	if len(*fails) > 0 {
		t.Errorf("/health failed %d of %d times during the slowloris: %v", len(*fails), len(*fails)+len(*lat), (*fails)[:min(3, len(*fails))])
	}
	hs, bs, ps := abuseQuantiles(headerCut), abuseQuantiles(bodyCut), abuseQuantiles(*lat)
	report(t, "slowloris: %d header-trickling connections cut after p50 %.1f s / p90 %.1f s", len(headerCut), hs.p50, hs.p90)
	if len(bodyCut) > 0 {
		report(t, "slow bodies: %d body-trickling connections cut after p50 %.1f s / p90 %.1f s", len(bodyCut), bs.p50, bs.p90)
	}
	report(t, "/health on fresh connections during the attack: %d probes, %d failed, latency p50 %.1f ms, p90 %.1f ms, max %.1f ms",
		len(*lat)+len(*fails), len(*fails), ps.p50, ps.p90, abuseMax(*lat))
}

func abuseMax(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = math.Max(m, x)
	}
	return m
}

// connections opens more idle connections than the server serves at once
// (MaxConns 256; the rest wait in the kernel's backlog) and measures how
// long /health takes on a fresh connection meanwhile. The server cuts an
// idle connection after ReadHeaderTimeout (5 s), so a fresh one waits at
// most about ceil(N/256) × 5 s: the API degrades, it does not stop.
func (r *abuseRun) connections(t *testing.T) {
	n := 400
	if abuseLong() {
		n = 1000
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", r.env.Addr, 10*time.Second)
		if err != nil {
			t.Logf("connection %d refused after %s: %v", i, time.Since(start), err)
			break
		}
		conns = append(conns, c)
		r.sent.Add(1)
	}
	opened := time.Since(start)
	// Three probes while the flood holds, one after another.
	var lats []float64
	for i := 0; i < 3; i++ {
		d, err := r.probe(120 * time.Second)
		if err != nil {
			t.Errorf("/health under %d idle connections: %v", len(conns), err)
			continue
		}
		lats = append(lats, d.Seconds())
	}
	// How many of the idle connections has the server closed by now?
	cut := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			cut++
		}
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	after, err := r.probe(30 * time.Second)
	if err != nil {
		t.Errorf("/health after the flood: %v", err)
	}
	report(t, "%d idle connections opened in %s (the server serves 256 at once); /health on a fresh connection meanwhile took %v s; the server had cut %d idle connections; after the flood /health took %s",
		n, opened.Round(time.Millisecond), abuseRound(lats), cut, after.Round(time.Microsecond))
}

func abuseRound(xs []float64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return out
}

// storm sends n concurrent POST /api/v1/refresh, each on its own
// connection, with header auth ("" for none), and returns the statuses.
func (r *abuseRun) storm(n int, auth string) map[int]int {
	client := &http.Client{Timeout: 180 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, MaxConnsPerHost: 0}}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			r.sent.Add(1)
			req, _ := http.NewRequest(http.MethodPost, r.env.URL("/api/v1/refresh"), nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[-1]++
				return
			}
			r.noteResponse(resp)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[resp.StatusCode]++
		}()
	}
	close(gate)
	wg.Wait()
	return codes
}

// refusedStorm: 1,000 concurrent refreshes without a token are all
// refused, all audited, and start nothing.
func (r *abuseRun) refusedStorm(t *testing.T) {
	const n = 1000
	refreshes0, auth0 := r.refreshCounters()
	recs0 := len(r.env.AuditRecords())
	start := time.Now()
	codes := r.storm(n, "")
	took := time.Since(start)
	if codes[401] != n {
		t.Errorf("refused storm: statuses %v, want %d×401", codes, n)
	}
	if rf, au := r.refreshCounters(); rf != refreshes0 || au != auth0 {
		t.Errorf("refused storm moved the refresh counters: %d -> %d, authorized %v -> %v", refreshes0, rf, auth0, au)
	}
	// Coalesced: one record per peer when the window closes, not one per
	// request (the test counts them all once the daemon stops).
	if added := len(r.env.AuditRecords()) - recs0; added > 2 {
		t.Errorf("refused storm: %d new audit records for %d refusals from one peer, want at most 2 (coalesced)", added, n)
	}
	report(t, "%d concurrent refreshes without a token: %v in %s, no attestation started, coalesced in the audit log", n, codes, took.Round(time.Millisecond))
}

// refreshStorm: 1,000 concurrent authorized refreshes are all answered 200
// and share a handful of attestations.
func (r *abuseRun) refreshStorm(t *testing.T) {
	const n = 1000
	attest0, refreshes0 := r.env.Counters()
	before := daemontest.CountAudit(r.env.AuditRecords(), "refresh", func(d map[string]any) bool { return d["reason"] == "refreshed" })
	start := time.Now()
	codes := r.storm(n, "Bearer "+r.env.Token)
	took := time.Since(start)
	attest1, refreshes1 := r.env.Counters()
	if codes[200] != n {
		t.Errorf("refresh storm: statuses %v, want %d×200", codes, n)
	}
	ran := attest1 - attest0
	if ran == 0 || ran > n/10 {
		t.Errorf("refresh storm: %d concurrent refreshes ran %d attestations, want a handful (1..%d)", n, ran, n/10)
	}
	after := daemontest.CountAudit(r.env.AuditRecords(), "refresh", func(d map[string]any) bool { return d["reason"] == "refreshed" })
	if after-before != n {
		t.Errorf("refresh storm: %d new \"refreshed\" records, want %d", after-before, n)
	}
	report(t, "%d concurrent authorized refreshes: %v in %s; %d attestations ran (attest_count +%d, refresh_count +%d)",
		n, codes, took.Round(time.Millisecond), ran, ran, refreshes1-refreshes0)
}
