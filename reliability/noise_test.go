package reliability

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// TestRefusedRefreshFlood: a flood of 10,000 refused refreshes (a few
// seconds: nothing is written per request), from one address and from
// many (99, more than the 64 peers told apart per window), with
// authorized refreshes between them, on a log with a small budget
// (256 KiB, some 600 records: one record per refusal would overflow it
// more than ten times over and rotate attestation records away): the state stays
// attested, no core.audit_write is raised, the log and its rotated files
// stay under the budget, every attestation record is there and the chain
// (MACs included, with the seed) verifies, and the coalesced records count
// every refusal.
func TestRefusedRefreshFlood(t *testing.T) {
	t.Parallel()
	const total = 10_000
	const budget = 256 << 10
	env := daemontest.New(t, daemontest.Options{})
	quietPolicy(t, env, func(doc map[string]any) {
		doc["audit_max_bytes"] = budget
		doc["refresh_interval"] = "1h"
		doc["resident_plugins"] = true
	})
	p := env.Start()
	key := readKey(t, env)

	sources := []string{"127.0.0.1"}
	for i := 2; i < 100; i++ {
		sources = append(sources, fmt.Sprintf("127.0.%d.%d", i/250, i%250+1))
	}
	var sent, refused, other atomic.Int64
	var wg sync.WaitGroup
	const workers = 8
	const hop = 5
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := sources[w%len(sources)]
			if w >= workers/2 { // half of them hop over many addresses
				src = ""
			}
			var c *http.Client
			for n := 0; ; n++ {
				if sent.Add(1) > int64(total) {
					return
				}
				// A hopping worker takes the next address every
				// hop requests, starting at its own offset, so that
				// the workers together go through all of them.
				if c == nil || (src == "" && n%hop == 0) {
					a := src
					if a == "" {
						a = sources[(w*len(sources)/workers+n/hop)%len(sources)]
					}
					d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(a)}}
					c = &http.Client{Timeout: stallLimit, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1}}
				}
				req, _ := http.NewRequest(http.MethodPost, env.URL("/api/v1/refresh"), nil)
				req.Header.Set("Authorization", "Bearer wrong-token")
				resp, err := c.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}
		}()
	}
	// Authorized refreshes meanwhile: each is an attestation record that
	// must survive the flood.
	stop := make(chan struct{})
	var attestations []bundleDoc
	done := make(chan struct{})
	go func() {
		defer close(done)
		// One every ninth of the flood, however fast it goes.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for len(attestations) < 8 {
			for sent.Load() < int64(len(attestations)+1)*total/9 {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
			attestations = append(attestations, refresh(t, env, key))
		}
	}()
	begin := time.Now()
	wg.Wait()
	took := time.Since(begin)
	close(stop)
	<-done
	last := refresh(t, env, key)
	if last.State != "attested" || hasCode(last, "core.audit_write") {
		t.Fatalf("after %d refused refreshes: state %s, failures %v; want attested without core.audit_write", refused.Load(), last.State, last.Failures)
	}
	attest, _ := env.Counters()
	p.Stop()

	files := []string{env.AuditPath + ".3", env.AuditPath + ".2", env.AuditPath + ".1", env.AuditPath}
	var kept []string
	var size int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			kept = append(kept, f)
			size += st.Size()
		}
	}
	if size > budget {
		t.Errorf("the audit log holds %d bytes in %d files, over its budget of %d", size, len(kept), budget)
	}
	seed, err := audit.ReadSeed(filepath.Join(env.RunDir, "audit.key.seed"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyFiles(kept, &seed)
	if err != nil {
		t.Fatalf("audit log after the flood: %v", err)
	}
	var recs []daemontest.AuditRecord
	for _, f := range kept {
		recs = append(recs, auditFile(t, f)...)
	}
	if n := daemontest.CountAudit(recs, "attestation", nil); uint64(n) != attest {
		t.Errorf("%d attestation records in the log, the daemon ran %d attestations", n, attest)
	}
	requests, records := daemontest.RefusedCount(recs)
	if int64(requests) != refused.Load() {
		t.Errorf("the refresh_refused records count %d refusals, the daemon answered %d", requests, refused.Load())
	}
	report(t, "%d refused refreshes (%d other answers) in %s from %d addresses, %d authorized refreshes meanwhile: state attested; audit log %d bytes in %d files (budget %d), %d records (%d MACs checked), %d refresh_refused records, all %d attestations present",
		refused.Load(), other.Load(), took.Round(time.Millisecond), len(sources), len(attestations)+1, size, len(kept), budget, rep.Records, rep.MACs, records, attest)
}

func hasCode(b bundleDoc, code string) bool {
	for _, f := range b.Failures {
		if f.Code == code {
			return true
		}
	}
	return false
}

// auditFile reads the records of one audit log file.
func auditFile(t *testing.T, path string) []daemontest.AuditRecord {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []daemontest.AuditRecord
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r daemontest.AuditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}
