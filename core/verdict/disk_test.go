package verdict

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/swtpmtest"
)

// TestFullDiskExtendsNothing: a verdict whose record cannot be written to
// the log (the file system is full) is not extended into the PCR, so the
// log still replays to the PCR and measuring goes on once there is room.
func TestFullDiskExtendsNothing(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "verdictfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=64k,mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v): the full-disk test needs root or CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	sw := swtpmtest.Start(t)
	tp := evidence.New(evidence.Options{Open: sw.Open})
	logPath := filepath.Join(dir, "verdict.log")
	m := New(Options{TPM: tp, PCR: testPCR, LogPath: logPath})

	// Fill the file system to its last byte, then free one page: the log's
	// records fill that page, and the one that crosses its end finds no
	// room.
	filler := filepath.Join(dir, "filler")
	f, err := os.OpenFile(filler, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{'x'}, 4096)
	size := int64(0)
	for len(chunk) > 0 {
		n, err := f.Write(chunk)
		size += int64(n)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			chunk = chunk[:len(chunk)/2]
		}
	}
	if err := f.Truncate(size - 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	measured := 0
	for i := uint64(1); ; i++ {
		if i > 64 {
			t.Fatal("every verdict was reported measured although the file system is full")
		}
		st, codes := state.Attested, []string(nil)
		if i%2 == 0 {
			st, codes = state.Degraded, []string{"x.y"}
		}
		before := readPCR(t, tp)
		if err := m.Measure(context.Background(), testBundle(t, i, st, codes...), nil); err == nil {
			measured++
			continue
		}
		if !bytes.Equal(readPCR(t, tp), before) {
			t.Fatal("the PCR was extended for a verdict the log does not hold")
		}
		break
	}
	if recs, err := Parse(logOf(t, logPath), testPCR); err != nil || len(recs) != measured {
		t.Fatalf("log has %d records (%v), want the %d measured", len(recs), err, measured)
	}

	// Room again: the log still replays to the PCR, measuring goes on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before := readPCR(t, tp)
	measure(t, m, testBundle(t, 100, state.Failed, "x.z"))
	if recs, err := Parse(logOf(t, logPath), testPCR); err != nil || len(recs) != measured+1 {
		t.Errorf("log has %d records (%v), want %d", len(recs), err, measured+1)
	}
	if bytes.Equal(readPCR(t, tp), before) {
		t.Error("the verdict after the disk was freed was not extended")
	}
}
