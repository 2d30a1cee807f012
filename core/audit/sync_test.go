package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// spySync records every sync with what the file held at that moment, and
// can be told to fail.
type spySync struct {
	mu      sync.Mutex
	events  []string
	logPath string
	failDir error
}

func (s *spySync) file(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("file %s %d", filepath.Base(f.Name()), st.Size()))
	return f.Sync()
}

func (s *spySync) dir(path string) error {
	st, err := os.Stat(s.logPath)
	size := int64(-1)
	if err == nil {
		size = st.Size()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("dir %s %d", filepath.Base(path), size))
	if s.failDir != nil {
		return s.failDir
	}
	return osSync{}.dir(path)
}

func (s *spySync) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.events
	s.events = nil
	return out
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestAppendSyncsRecordThenFolder: before Append returns, the record is
// fsynced (with the record already in the file), and, for a file the log
// created, its folder is synced after that; later records sync only the
// file. Skipping either sync fails this test.
func TestAppendSyncsRecordThenFolder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "logs")
	path := filepath.Join(dir, "audit.jsonl")
	spy := &spySync{logPath: path}
	l, err := open(path, Options{Logger: hclog.NewNullLogger()}, spy)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := spy.take(); len(got) != 0 {
		t.Fatalf("Open of a new log synced %v before any record", got)
	}

	steps := []struct {
		name   string
		before func()
		want   func(size int64) []string
	}{
		{"first record of a new file", nil, func(n int64) []string {
			return []string{fmt.Sprintf("file audit.jsonl %d", n), fmt.Sprintf("dir logs %d", n)}
		}},
		{"second record", nil, func(n int64) []string {
			return []string{fmt.Sprintf("file audit.jsonl %d", n)}
		}},
		{"file removed: recreated", func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, func(n int64) []string {
			// The "reopened" record, then the caller's: each synced, the
			// folder once, after the first.
			return []string{"file audit.jsonl", "dir logs", fmt.Sprintf("file audit.jsonl %d", n)}
		}},
	}
	for i, tc := range steps {
		if tc.before != nil {
			tc.before()
		}
		if err := l.Append(TypeAttestation, map[string]any{"i": i}); err != nil {
			t.Fatalf("Test %d: %s: %v", i, tc.name, err)
		}
		got := spy.take()
		want := tc.want(fileSize(t, path))
		if len(got) != len(want) {
			t.Fatalf("Test %d: %s: syncs %q, want %q", i, tc.name, got, want)
		}
		for j := range want {
			if !strings.HasPrefix(got[j], want[j]) {
				t.Fatalf("Test %d: %s: sync %d is %q, want %q (all: %q)", i, tc.name, j, got[j], want[j], got)
			}
		}
	}
}

// TestFolderSyncFailureReported: a folder sync that fails is Append's
// error, and the record (already in the file) is not written twice.
func TestFolderSyncFailureReported(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	boom := errors.New("injected folder sync failure")
	spy := &spySync{logPath: path, failDir: boom}
	l, err := open(path, Options{Logger: hclog.NewNullLogger()}, spy)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(TypeAttestation, nil); !errors.Is(err, boom) {
		t.Fatalf("Append: %v, want the folder sync error", err)
	}
	spy.mu.Lock()
	spy.failDir = nil
	spy.mu.Unlock()
	if err := l.Append(TypeAttestation, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFile(path)
	if err != nil || rep.Records != 2 {
		t.Fatalf("verify: %+v %v, want 2 records", rep, err)
	}
}
