package reliability

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// tear is a deliberately torn audit tail: what a crash in the middle of a
// write would leave, had the write not been a single write(2).
type tear struct {
	name  string
	bytes func(lastLine []byte) []byte
}

var tears = []tear{
	// The first half of a record, no newline.
	{"half a record", func(last []byte) []byte { return last[:len(last)/2] }},
	// A whole record without its newline.
	{"a record without its newline", func(last []byte) []byte { return bytes.Clone(last) }},
	// A last line that is not JSON at all.
	{"a line that is not JSON", func([]byte) []byte { return []byte("{\"data\":{\"sequ\x00\x00\x00\n") }},
}

// TestCrashDurability kills the daemon with SIGKILL at random points, most
// while attestations and refreshes are in flight (refresh_interval 1s and a
// client refreshing in a loop), some during its start (plugins starting, the
// audit log opening and recovering); plugins on demand and resident in
// turns, among them one that leaves a grandchild in a new session. After every kill: no plugin process and
// no orphaned grandchild survives, the audit chain verifies (audit.VerifyFile
// and the real `attestctl audit verify`), and the next start serves. A torn
// last line (natural, or injected every few kills in three shapes) is
// detected by both verifiers, and at the next start it is moved aside with
// its exact bytes and a "recovered" record is appended; the chain then
// verifies again.
//
// Short by default (4 kills); ATTESTOR_STRESS=1 runs 100, on two daemons
// side by side.
func TestCrashDurability(t *testing.T) {
	t.Parallel()
	if !stress() {
		crashLoop(t, 4)
		return
	}
	for i := range 2 {
		t.Run(fmt.Sprintf("daemon-%d", i+1), func(t *testing.T) {
			t.Parallel()
			crashLoop(t, 50)
		})
	}
}

func crashLoop(t *testing.T, kills int) {
	env := daemontest.New(t, daemontest.Options{})
	env.InstallTestPlugin("slow", "slow")
	env.InstallTestPlugin("orphan", "orphan")
	pidFile := filepath.Join(mkOrphanDir(t, env), "orphan.pid")
	policy := func(resident bool) {
		quietPolicy(t, env, func(doc map[string]any) {
			doc["refresh_interval"] = "1s"
			doc["resident_plugins"] = resident
			daemontest.SetPolicyKey(doc, map[string]any{"delay_ms": 400}, "plugins", "slow", "config")
			daemontest.SetPolicyKey(doc, map[string]any{"pid_file": pidFile}, "plugins", "orphan", "config")
			grantOrphan(doc, env, "orphan")
		})
	}
	key := readKey(t, env)
	rng := newRand(t)

	var (
		early, inFlight, pending int // kills before serving, with a refresh in flight, before the first verdict
		natural, injected        int // torn tails found after a kill, torn tails injected
		starts                   int
		lastTear                 []byte // to be found moved aside after the next start; empty: any bytes
		tornFiles                int    // torn files before a natural tear
	)
	for i := range kills {
		// Plugins on demand (the default) and resident, in turns.
		policy(i%2 == 1)
		p := env.StartNoWait()
		starts++
		// One kill in five (and the last of the fast suite) lands during
		// the start, unless the last kill left a tear to recover: that
		// start must be seen serving.
		if lastTear == nil && (rng.IntN(5) == 0 || (!stress() && i == kills-1)) {
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			early++
			p.Signal(syscall.SIGKILL)
		} else {
			waitServing(t, env, p)
			stop := startRefresher(env)
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
			if env.State() == "pending" {
				pending++
			}
			p.Signal(syscall.SIGKILL)
			if cut := stop(); cut > 0 {
				inFlight++
			}
		}
		if code := p.Wait(10 * time.Second); code != -int(syscall.SIGKILL) {
			t.Fatalf("kill %d: daemon exit %d, want killed by SIGKILL; log:\n%s", i+1, code, p.Stderr())
		}

		// No plugin survives its parent, nor a grandchild of one.
		if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 5*time.Second); len(left) > 0 {
			t.Fatalf("kill %d: plugin processes survive the daemon:\n%s", i+1, daemontest.Describe(left))
		}
		if gpid := readPID(t, pidFile); gpid != 0 {
			if left := waitGone([]int{gpid}, 5*time.Second); len(left) > 0 {
				t.Fatalf("kill %d: orphan's grandchild %d survives the daemon", i+1, gpid)
			}
			if err := os.Remove(pidFile); err != nil {
				t.Fatal(err)
			}
		}

		// The chain verifies; a torn tail is the only acceptable break.
		if _, err := os.Stat(env.AuditPath); errors.Is(err, os.ErrNotExist) {
			continue // killed before the log was opened
		}
		if lastTear != nil {
			if !tornSaved(t, env, lastTear, tornFiles) {
				t.Fatalf("kill %d: the injected torn tail %q was not moved aside at the start", i+1, lastTear)
			}
			lastTear = nil
		}
		_, err := audit.VerifyFile(env.AuditPath)
		var be *audit.BreakError
		switch {
		case err == nil:
		case errors.As(err, &be) && strings.Contains(be.Reason, "torn final line"):
			natural++
			lastTear = []byte{} // the next start must recover it (bytes unknown)
			tornFiles = len(tornFilesOf(t, env))
		default:
			t.Fatalf("kill %d: audit chain broken: %v", i+1, err)
		}
		if code, out, errOut := env.RunAttestctl(nil, "audit", "verify", env.AuditPath); (code == 0) != (err == nil) {
			t.Fatalf("kill %d: attestctl audit verify exit %d (chain error %v):\n%s%s", i+1, code, err, out, errOut)
		}

		// Every few kills (every kill of the fast suite), tear the tail
		// ourselves: a kill in the middle of a write(2) is too rare to
		// wait for.
		if err == nil && i < kills-1 && (!stress() || i%4 == 1 || i == kills-2) {
			tr := tears[injected%len(tears)]
			raw, rerr := os.ReadFile(env.AuditPath)
			if rerr != nil {
				t.Fatal(rerr)
			}
			lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
			tail := tr.bytes(lines[len(lines)-1])
			appendFile(t, env.AuditPath, tail)
			if _, verr := audit.VerifyFile(env.AuditPath); verr == nil {
				t.Fatalf("kill %d: audit.VerifyFile accepts a log ending in %s", i+1, tr.name)
			}
			if code, _, errOut := env.RunAttestctl(nil, "audit", "verify", env.AuditPath); code != 1 || !strings.Contains(errOut, "BROKEN") {
				t.Fatalf("kill %d: attestctl audit verify exit %d on a log ending in %s:\n%s", i+1, code, tr.name, errOut)
			}
			injected++
			lastTear = tail
		}
	}

	// The last start serves, attests, refreshes and stops cleanly; every
	// plugin answers, and the state is what the findings give.
	policy(false)
	p := env.Start()
	if lastTear != nil && !tornSaved(t, env, lastTear, tornFiles) {
		t.Fatalf("the last torn tail %q was not moved aside", lastTear)
	}
	b := refresh(t, env, key)
	for _, name := range slices.Concat(builtin.Names(), []string{"slow", "orphan"}) {
		if c, ok := b.Checks[name]; !ok || c.hasCore() {
			t.Fatalf("after %d kills, %s does not answer: %s", kills, name, b.raw)
		}
	}
	if _, st := expectScore(b); b.State != st || len(b.coreFindings()) > 0 {
		t.Fatalf("after %d kills: state %s, want %s: %s", kills, b.State, st, b.raw)
	}
	p.Stop()
	starts++
	if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 5*time.Second); len(left) > 0 {
		t.Fatalf("plugin processes survive the daemon:\n%s", daemontest.Describe(left))
	}
	rep, err := audit.VerifyFile(env.AuditPath)
	if err != nil {
		t.Fatalf("audit chain after the last stop: %v", err)
	}
	if code, out, errOut := env.RunAttestctl(nil, "audit", "verify", env.AuditPath); code != 0 {
		t.Fatalf("attestctl audit verify exit %d:\n%s%s", code, out, errOut)
	}
	recs := env.AuditRecords()
	recovered := daemontest.CountAudit(recs, audit.TypeRecovered, nil)
	if recovered < natural+injected {
		t.Fatalf("%d recovered records for %d torn tails (%d natural, %d injected)", recovered, natural+injected, natural, injected)
	}
	if n := daemontest.CountAudit(recs, audit.TypeChainBroken, nil); n > 0 {
		t.Fatalf("%d chain_broken records: a kill broke the chain", n)
	}
	startRecs := daemontest.CountAudit(recs, "start", nil)
	attestations := daemontest.CountAudit(recs, audit.TypeAttestation, nil)
	report(t, "%d SIGKILLs (%d during start-up, %d with a refresh in flight, %d before the first verdict), %d starts (%d reached the audit log); "+
		"torn tails: %d from kills, %d injected, %d recovered; %d attestations and %d records in a chain that verifies; no plugin or grandchild survived",
		kills, early, inFlight, pending, starts, startRecs, natural, injected, recovered, attestations, rep.Records)
}

// waitServing waits until the daemon answers /health.
func waitServing(t *testing.T, env *daemontest.Env, p *daemontest.Proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if !p.Alive() {
			t.Fatalf("the daemon exited during its start; log:\n%s", p.Stderr())
		}
		if code, _, err := env.Do(http.MethodGet, "/health", ""); err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon does not serve after 60 s; log:\n%s", p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRefresher refreshes in a loop until the returned stop is called,
// which returns how many refreshes the daemon's death cut off (0 or 1).
func startRefresher(env *daemontest.Env) (stop func() int) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	cut := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, _, err := env.Do(http.MethodPost, "/api/v1/refresh", env.Token); err != nil {
				mu.Lock()
				cut++
				mu.Unlock()
				return
			}
		}
	}()
	var once sync.Once
	return func() int {
		once.Do(func() { close(done) })
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return cut
	}
}

// tornFilesOf lists the <audit>.torn-* files.
func tornFilesOf(t *testing.T, env *daemontest.Env) []string {
	t.Helper()
	matches, err := filepath.Glob(env.AuditPath + ".torn-*")
	if err != nil {
		t.Fatal(err)
	}
	return matches
}

// tornSaved reports whether a <audit>.torn-* file (mode 0600) holds exactly
// tail; for an empty tail (a natural tear whose bytes are unknown), whether
// there are more such files than before.
func tornSaved(t *testing.T, env *daemontest.Env, tail []byte, before int) bool {
	t.Helper()
	matches := tornFilesOf(t, env)
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", m, fi.Mode().Perm())
		}
	}
	if len(tail) == 0 {
		return len(matches) > before
	}
	for _, m := range matches {
		raw, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(raw, tail) {
			return true
		}
	}
	return false
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
