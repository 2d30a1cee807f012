package audit

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// diskFull: the kernel reports a full file system as ENOSPC, or as a short
// write when part of the record still fit.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, io.ErrShortWrite)
}

// mountTmpfs mounts a 64 KiB tmpfs on a fresh temp dir, or skips.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v): needs root and CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestDiskFull fills a small tmpfs: Append fails with ENOSPC, leaves no
// partial line, keeps the record queued, and once space is freed writes it
// and the next one, chain intact.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t)
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(TypeStart, map[string]any{"note": "before the disk fills"}); err != nil {
		t.Fatal(err)
	}
	// Fill the file system.
	filler := filepath.Join(dir, "filler")
	f, err := os.OpenFile(filler, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	_ = f.Close()
	before, _ := os.ReadFile(path)

	// A record larger than what is left in the log's last page.
	big := map[string]any{"pad": strings.Repeat("x", 6000), "n": 1}
	err = l.Append(TypeAttestation, big)
	if !diskFull(err) {
		t.Fatalf("append on a full disk: %v, want ENOSPC or a short write", err)
	}
	t.Logf("full disk: %v", err)
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Fatalf("a failed append left %d bytes behind", len(after)-len(before))
	}
	if _, err := VerifyFile(path); err != nil {
		t.Fatalf("log after a failed append: %v", err)
	}
	// Still full: fails again, nothing written.
	if err := l.Append(TypeRefresh, map[string]any{"pad": strings.Repeat("y", 6000)}); !diskFull(err) {
		t.Fatalf("second append on a full disk: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(TypeStateChange, map[string]any{"from": "attested", "to": "degraded"}); err != nil {
		t.Fatalf("append after space was freed: %v", err)
	}
	rep, err := VerifyFile(path)
	if err != nil || rep.Records != 4 {
		t.Fatalf("after recovery: %+v %v", rep, err)
	}
	var types []string
	for _, line := range lines(t, path) {
		var r Record
		_ = json.Unmarshal(line, &r)
		types = append(types, r.Type)
	}
	if strings.Join(types, ",") != "start,attestation,refresh,state_change" {
		t.Fatalf("records in order %v", types)
	}
}

// TestDiskFullAfterRemoval: the file is removed while the disk is full; the
// new file cannot take its "reopened" record until space is freed, and gets
// exactly one, followed by the queued records in order.
func TestDiskFullAfterRemoval(t *testing.T) {
	dir := mountTmpfs(t)
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(TypeStart, nil); err != nil {
		t.Fatal(err)
	}
	_, head := l.Head()
	// Keep the old file's pages allocated (as logrotate's renamed copy
	// would), then remove the path.
	if err := os.Link(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.OpenFile(filler, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	_ = f.Close()
	for i := 0; i < 3; i++ {
		if err := l.Append(TypeRefresh, map[string]any{"n": i}); !diskFull(err) {
			t.Fatalf("append %d on a full disk: %v", i, err)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(TypeStop, nil); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, line := range lines(t, path) {
		r := record(t, line)
		types = append(types, r.Type)
		if r.Type == TypeReopened && r.Prev != head {
			t.Errorf("reopened links to %s, want %s", r.Prev, head)
		}
	}
	if got := strings.Join(types, ","); got != "reopened,refresh,refresh,refresh,stop" {
		t.Fatalf("records %s", got)
	}
	if _, err := VerifyFile(path); err != nil {
		t.Fatal(err)
	}
}
