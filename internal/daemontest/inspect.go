package daemontest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"
)

// AuditRecord is one line of the audit log, decoded loosely (the chain is
// audit.Verify's business).
type AuditRecord struct {
	Seq  uint64         `json:"seq"`
	Time string         `json:"time"`
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
	// Line is the record's line as written, without its newline.
	Line string `json:"-"`
}

// AuditRecords reads the audit log at AuditPath; nil when it does not
// exist. A line that is not JSON fails the test.
func (e *Env) AuditRecords() []AuditRecord {
	e.t.Helper()
	raw, err := os.ReadFile(e.AuditPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("read audit log: %v", err)
	}
	var out []AuditRecord
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 2<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		var r AuditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			e.t.Fatalf("audit log line %d is not JSON: %v: %.200s", len(out)+1, err, line)
		}
		r.Line = line
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		e.t.Fatalf("read audit log: %v", err)
	}
	return out
}

// CountAudit counts the records of type typ for which match (nil: all)
// holds.
func CountAudit(recs []AuditRecord, typ string, match func(data map[string]any) bool) int {
	n := 0
	for _, r := range recs {
		if r.Type == typ && (match == nil || match(r.Data)) {
			n++
		}
	}
	return n
}

// WaitAudit polls the audit log for up to d until cond holds and returns
// the records; it fails the test with what (and the daemon's log, when p
// is not nil) otherwise.
func (e *Env) WaitAudit(p *Proc, d time.Duration, what string, cond func([]AuditRecord) bool) []AuditRecord {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		recs := e.AuditRecords()
		if cond(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			log := ""
			if p != nil {
				log = p.Stderr()
			}
			e.t.Fatalf("audit log: no %s after %s (%d records); log:\n%s", what, d, len(recs), tail(log, 4000))
		}
		if p != nil {
			select {
			case <-p.done:
				e.t.Fatalf("daemon exited while waiting for %s in the audit log (%v); log:\n%s", what, p.err, tail(p.Stderr(), 4000))
			default:
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Render replaces in a policy template the placeholders @PLUGIN_DIR@,
// @RUN@ (the folder of key, token and audit log), @DIR@ (the test's
// folder), @ROOT@ (the repository), @LISTEN@ (the Env's address),
// @DAEMON@ and @ATTESTCTL@ (the executables).
func (e *Env) Render(tmpl string) string {
	return strings.NewReplacer(
		"@PLUGIN_DIR@", e.PluginDir,
		"@RUN@", e.RunDir,
		"@DIR@", e.Dir,
		"@ROOT@", e.Root,
		"@LISTEN@", e.Addr,
		"@DAEMON@", e.Daemon,
		"@ATTESTCTL@", e.Attestctl,
	).Replace(tmpl)
}

// SHA256 returns the lowercase hex SHA-256 of s.
func SHA256(s []byte) string {
	sum := sha256.Sum256(s)
	return hex.EncodeToString(sum[:])
}

// PolicySHA256 returns the SHA-256 of the policy file as it is now.
func (e *Env) PolicySHA256() string {
	e.t.Helper()
	raw, err := os.ReadFile(e.PolicyPath)
	if err != nil {
		e.t.Fatal(err)
	}
	return SHA256(raw)
}

// RunAttestctl runs attestctl with args (stdin may be nil) and returns its
// exit code, stdout and stderr. It fails the test if attestctl cannot be
// run at all.
func (e *Env) RunAttestctl(stdin []byte, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	cmd := exec.Command(e.Attestctl, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		e.t.Fatalf("run attestctl %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// Counters returns the attestation counters of /api/security/status.
func (e *Env) Counters() (attest, refresh uint64) {
	e.t.Helper()
	var s struct {
		AttestCount  uint64 `json:"attest_count"`
		RefreshCount uint64 `json:"refresh_count"`
	}
	_, body := e.Get("/api/security/status")
	if err := json.Unmarshal(body, &s); err != nil {
		e.t.Fatalf("/api/security/status: %v: %s", err, body)
	}
	return s.AttestCount, s.RefreshCount
}

// PID returns the daemon's process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Alive reports whether the daemon still runs.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// RefusedCount sums the counts of the coalesced refresh_refused records:
// how many refused refresh requests they stand for, and in how many
// records.
func RefusedCount(recs []AuditRecord) (requests, records int) {
	for _, r := range recs {
		if r.Type != "refresh_refused" {
			continue
		}
		records++
		if n, ok := r.Data["count"].(float64); ok {
			requests += int(n)
		}
	}
	return requests, records
}
