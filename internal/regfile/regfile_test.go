package regfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestRefusesWhatIsNotARegularFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Read(fifo, 64); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Fatalf("Read(fifo) = %v, want ErrNotRegular", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read(fifo) blocked")
	}
	for i, tc := range []struct {
		path  string
		limit int64
		ok    bool
	}{{dir, 64, false}, {"/dev/null", 64, false}, {file, 64, true}, {file, 5, false}, {filepath.Join(dir, "none"), 64, false}} {
		_, err := Read(tc.path, tc.limit)
		if (err == nil) != tc.ok {
			t.Errorf("Test %d: Read(%s, %d) = %v, want ok=%v", i, tc.path, tc.limit, err, tc.ok)
		}
	}
}

func TestReadContext(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "var")
	if err := os.WriteFile(file, []byte("01"), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadContext(context.Background(), file, 64); err != nil || string(data) != "01" {
		t.Errorf("ReadContext = %q, %v", data, err)
	}
	if _, err := ReadContext(context.Background(), file, 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadContext over the limit = %v, want ErrTooLarge", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if data, err := ReadContext(ctx, file, 64); !errors.Is(err, context.Canceled) || data != nil {
		t.Errorf("ReadContext after cancel = %q, %v, want context.Canceled", data, err)
	}
}
