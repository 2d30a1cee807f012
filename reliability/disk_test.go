package reliability

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// mountSmallFS mounts a 256 KiB tmpfs on a fresh folder, or skips the test
// when this machine does not let us (mounting needs root, CAP_SYS_ADMIN).
func mountSmallFS(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "auditfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=256k,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs for the audit log (%v): the full-disk test needs root or CAP_SYS_ADMIN", err)
	}
	// Registered after t.TempDir's removal, so it runs before it; and after
	// the daemon's own cleanup, which the test registers later.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	})
	return dir
}

// fill writes a junk file in dir until the file system is full, down to
// the last byte, and returns its path and size.
func fill(t *testing.T, dir string) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "junk")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for chunk := 64 << 10; chunk >= 1; chunk /= 2 {
		buf := make([]byte, chunk)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, io.ErrShortWrite) {
				t.Fatalf("fill %s: %v", path, err)
			}
			break
		}
	}
	return path, n
}

// TestAuditDiskFull puts the audit log on a 256 KiB tmpfs and fills it while
// the daemon runs under read load. The daemon keeps serving (health 200,
// verify and attest answering the state, refreshes running), says so (a
// core.audit_write finding in every bundle while the disk is full, weighed
// medium: degraded, and an error in its log), and when the junk is removed
// writes the records it kept queued: no attestation is missing from the
// log, no record was dropped, and the chain verifies across the gap.
//
// One fill-and-free cycle (3 attestations while full) by default;
// ATTESTOR_STRESS=1 runs 5 cycles of 6.
func TestAuditDiskFull(t *testing.T) {
	t.Parallel()
	dir := mountSmallFS(t)
	cycles := reps(1, 5)
	full := reps(3, 6) // attestations while full, per cycle
	env := daemontest.New(t, daemontest.Options{})
	env.AuditPath = filepath.Join(dir, "audit.jsonl")
	quietPolicy(t, env, func(doc map[string]any) {
		doc["audit_log_path"] = env.AuditPath
		doc["refresh_interval"] = "1h" // attestations come from refreshes only
		doc["resident_plugins"] = true // cheap attestations: the disk is the subject
	})
	key := readKey(t, env)
	p := env.Start()
	load := startLoad(t, env, 2)
	base := refresh(t, env, key)
	baseScore, baseState := expectScore(base)
	if base.State != baseState || len(base.coreFindings()) > 0 {
		t.Fatalf("before the disk fills: %s", base.raw)
	}

	refreshes, failedWrites := 1, 0
	last := base.Sequence // the newest bundle's sequence
	for c := range cycles {
		junk, size := fill(t, dir)
		// Part of a record may still fit in the log's last page: the
		// first failure may take a refresh or two.
		var b bundleDoc
		for i := 0; ; i++ {
			b = refresh(t, env, key)
			refreshes++
			if hasAuditWrite(b) {
				break
			}
			if i == 8 {
				t.Fatalf("cycle %d: disk full (%d bytes of junk) but no core.audit_write after 8 refreshes: %s", c+1, size, b.raw)
			}
		}
		for i := range full {
			if i > 0 {
				b = refresh(t, env, key)
				refreshes++
			}
			failedWrites++
			if !hasAuditWrite(b) {
				t.Fatalf("cycle %d: attestation while the disk is full without core.audit_write: %s", c+1, b.raw)
			}
			// Weighed as the policy says: medium (5) on top, once for
			// this attestation's record and once more when an earlier
			// record (the last refresh's) failed too.
			score, st := expectScore(b)
			n := auditWrites(b)
			if b.Score != score || b.Score != baseScore+n*weights["medium"] || b.State != st || len(b.coreFindings()) != n {
				t.Fatalf("cycle %d: score %d state %s while full, want %d + %d×5 and %s: %s", c+1, b.Score, b.State, baseScore, n, st, b.raw)
			}
			// It keeps serving, and says the truth.
			if code, body := env.Get("/health"); code != http.StatusOK || !strings.Contains(string(body), `"state":"`+b.State+`"`) {
				t.Fatalf("cycle %d: /health = %d %s while full", c+1, code, body)
			}
			wantVerify := http.StatusServiceUnavailable
			if b.State == "attested" {
				wantVerify = http.StatusOK
			}
			if code, body := env.Get("/api/v1/verify"); code != wantVerify {
				t.Fatalf("cycle %d: /api/v1/verify = %d %s while full, state %s", c+1, code, body, b.State)
			}
		}
		if !strings.Contains(p.Stderr(), "audit log write failed") {
			t.Fatalf("cycle %d: the daemon's log does not say the audit log cannot be written:\n%s", c+1, p.Stderr())
		}
		// Space returns: the queued records are written, the finding goes.
		if err := os.Remove(junk); err != nil {
			t.Fatal(err)
		}
		b = refreshUntil(t, env, key, "no core.audit_write once space returned", func(b bundleDoc) bool {
			refreshes++
			return !hasAuditWrite(b)
		})
		last = b.Sequence
		if b.Score != baseScore || b.State != baseState {
			t.Fatalf("cycle %d: after space returned: score %d state %s, want %d %s", c+1, b.Score, b.State, baseScore, baseState)
		}
	}
	ls := load.stop()
	p.Stop()
	if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 5*time.Second); len(left) > 0 {
		t.Fatalf("plugin processes survive the daemon:\n%s", daemontest.Describe(left))
	}
	rep, err := audit.VerifyFile(env.AuditPath)
	if err != nil {
		t.Fatalf("audit chain across the full disk: %v", err)
	}
	if code, out, errOut := env.RunAttestctl(nil, "audit", "verify", env.AuditPath); code != 0 {
		t.Fatalf("attestctl audit verify exit %d:\n%s%s", code, out, errOut)
	}
	// Every attestation is in the log, in order, none dropped.
	recs := env.AuditRecords()
	var seqs []int
	for _, r := range recs {
		if r.Type == audit.TypeAttestation {
			n, _ := r.Data["sequence"].(float64)
			seqs = append(seqs, int(n))
		}
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("attestation %d follows %d in the audit log: records lost across the full disk", seqs[i], seqs[i-1])
		}
	}
	// The last bundle's sequence, not the refresh count: a refresh that
	// arrives while an attestation is still finishing (its bundle already
	// served) joins it instead of starting another.
	if len(seqs) == 0 || seqs[0] != 1 || uint64(seqs[len(seqs)-1]) != last || last > uint64(refreshes+1) {
		t.Fatalf("audit log holds attestations %v, want 1 to %d (the last bundle's sequence; %d refreshes)", seqs, last, refreshes)
	}
	if n := daemontest.CountAudit(recs, audit.TypeDropped, nil); n > 0 {
		t.Fatalf("%d dropped records", n)
	}
	if ls.Errors > 0 {
		t.Errorf("load: %s; first errors:\n%s", ls, strings.Join(ls.ErrorSamples, "\n"))
	}
	report(t, "%d fill-and-free cycles of a 256 KiB tmpfs; %d attestations with the audit log full, each reporting core.audit_write (degraded); "+
		"all %d attestations in the log afterwards, %d records, chain verifies; load: %s",
		cycles, failedWrites, len(seqs), rep.Records, ls)
}

func hasAuditWrite(b bundleDoc) bool { return auditWrites(b) > 0 }

// auditWrites counts the core.audit_write findings (medium) of b.
func auditWrites(b bundleDoc) int {
	n := 0
	for _, f := range b.coreFindings() {
		if f.Code == "core.audit_write" && f.Severity == "medium" {
			n++
		}
	}
	return n
}
