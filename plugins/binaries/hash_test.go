package binaries

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
)

// Known SHA-256 test vectors (FIPS 180-2 examples).
var vectors = []struct {
	name, content, sum string
}{
	{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	{"448bit", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	{"million-a", strings.Repeat("a", 1000000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHashFilesVectors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var targets []Target
	for _, v := range vectors {
		p := filepath.Join(dir, v.name)
		writeFile(t, p, []byte(v.content))
		targets = append(targets, Target{Name: v.name, Path: p})
	}
	for _, parallel := range []int{1, 2, 8} {
		got, err := HashFiles(context.Background(), targets, parallel)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vectors {
			d := got[i]
			if d.Err != nil || d.SHA256 != v.sum || d.Name != v.name || d.Size != int64(len(v.content)) || d.ResolvedPath != targets[i].Path {
				t.Errorf("parallel %d: %s: got %+v, want sum %s", parallel, v.name, d, v.sum)
			}
		}
	}
}

// TestHashMatchesSha256sum cross-checks sizes around the buffer and
// mapping boundaries against coreutils' independent implementation.
func TestHashMatchesSha256sum(t *testing.T) {
	t.Parallel()
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("sha256sum not installed")
	}
	dir := t.TempDir()
	sizes := []int{1, defaultBufferSize - 1, defaultBufferSize, defaultBufferSize + 1, mapWindow, mapWindow + 1, 2*mapWindow + 17}
	var targets []Target
	for i, n := range sizes {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(j*31 + i + j>>13)
		}
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		writeFile(t, p, data)
		targets = append(targets, Target{Name: p, Path: p})
	}
	got, err := HashFiles(context.Background(), targets, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, tg := range targets {
		out, err := exec.Command(sha256sum, tg.Path).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Fields(string(out))[0]
		if got[i].Err != nil || got[i].SHA256 != want || got[i].Size != int64(sizes[i]) {
			t.Errorf("size %d: got %+v, sha256sum says %s", sizes[i], got[i], want)
		}
	}
}

// TestHashBadFiles covers every way a file can fail to be hashed.
func TestHashBadFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	bin := filepath.Join(root, "svc", "bin")
	elsewhere := filepath.Join(root, "elsewhere")
	writeFile(t, filepath.Join(bin, "a"), []byte("abc"))
	writeFile(t, filepath.Join(elsewhere, "x"), []byte("abc"))
	mustSymlink(t, "a", filepath.Join(bin, "link-in"))
	mustSymlink(t, filepath.Join(elsewhere, "x"), filepath.Join(bin, "link-out"))
	mustSymlink(t, filepath.Join(root, "nothing"), filepath.Join(bin, "dangling"))
	mustSymlink(t, elsewhere, filepath.Join(root, "svc", "libdir"))
	if err := os.Mkdir(filepath.Join(bin, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(bin, "fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	usrTarget, err := filepath.EvalSymlinks("/usr/bin/env")
	if err != nil {
		t.Skip("no /usr/bin/env on this machine")
	}
	mustSymlink(t, usrTarget, filepath.Join(bin, "link-usr"))
	abc := vectors[1].sum

	for i, tc := range []struct {
		path  string
		roots []string
		kind  Kind // "" means hashed
		sum   string
		msg   string
	}{
		{path: filepath.Join(bin, "a"), sum: abc},
		{path: filepath.Join(bin, "link-in"), sum: abc},
		{path: filepath.Join(bin, "link-usr")},
		{path: filepath.Join(root, "svc", "libdir", "x"), sum: abc}, // a symlinked directory is covered as resolved
		{path: filepath.Join(bin, "link-out"), kind: KindSymlinkOutOfPolicy, msg: "outside the allowed roots"},
		{path: filepath.Join(bin, "link-out"), roots: []string{elsewhere}, sum: abc},
		{path: filepath.Join(bin, "link-in"), roots: []string{elsewhere}, kind: KindSymlinkOutOfPolicy},
		{path: filepath.Join(bin, "link-in"), roots: []string{}, kind: KindSymlinkOutOfPolicy, msg: "allowed_symlink_roots is empty"},
		{path: filepath.Join(bin, "a"), roots: []string{}, sum: abc},
		{path: filepath.Join(bin, "missing"), kind: KindMissing, msg: "does not exist"},
		{path: filepath.Join(bin, "dangling"), kind: KindMissing, msg: "which does not exist"},
		{path: filepath.Join(bin, "a", "child"), kind: KindMissing},
		{path: filepath.Join(bin, "dir"), kind: KindNotRegular, msg: "directory"},
		{path: fifo, kind: KindNotRegular, msg: "named pipe"},
		{path: "/dev/null", kind: KindNotRegular, msg: "character device"},
		// A regular file whose read fails: /proc/self/mem at offset 0.
		{path: "/proc/self/mem", kind: KindUnreadable, msg: "read"},
	} {
		opt := Options{Parallel: 1, AllowedRoots: tc.roots}
		got, err := Hash(context.Background(), []Target{{Name: "svc", Path: tc.path}}, opt)
		if err != nil {
			t.Fatal(err)
		}
		d := got[0]
		if tc.kind == "" {
			if d.Err != nil || len(d.SHA256) != 64 || (tc.sum != "" && d.SHA256 != tc.sum) {
				t.Errorf("Test %d: %s: got %+v, want hashed %s", i, tc.path, d, tc.sum)
			}
			continue
		}
		var fe *FileError
		if !errors.As(d.Err, &fe) || fe.Kind != tc.kind || d.SHA256 != "" {
			t.Errorf("Test %d: %s: got %+v (err %v), want kind %s", i, tc.path, d, d.Err, tc.kind)
			continue
		}
		if !strings.Contains(fe.Error(), tc.msg) || !strings.HasPrefix(fe.Error(), tc.path) {
			t.Errorf("Test %d: %s: error %q, want it to start with the path and contain %q", i, tc.path, fe.Error(), tc.msg)
		}
	}
}

func TestHashUnreadableAsNonRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads a mode-000 file; /proc/self/mem covers read errors in TestHashBadFiles")
	}
	p := filepath.Join(t.TempDir(), "locked")
	writeFile(t, p, []byte("x"))
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	got, err := HashFiles(context.Background(), []Target{{Path: p}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var fe *FileError
	if !errors.As(got[0].Err, &fe) || fe.Kind != KindUnreadable {
		t.Fatalf("got %+v, want unreadable", got[0])
	}
}

func TestHashMaxFileBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	small, big := filepath.Join(dir, "small"), filepath.Join(dir, "big")
	writeFile(t, small, bytes.Repeat([]byte("x"), 10))
	writeFile(t, big, bytes.Repeat([]byte("x"), 11))
	got, err := Hash(context.Background(), []Target{{Path: small}, {Path: big}}, Options{Parallel: 2, MaxFileBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Err != nil {
		t.Errorf("10-byte file under a 10-byte cap: %v", got[0].Err)
	}
	var fe *FileError
	if !errors.As(got[1].Err, &fe) || fe.Kind != KindTooLarge || !strings.Contains(fe.Msg, "max_file_bytes") {
		t.Errorf("11-byte file under a 10-byte cap: %+v", got[1])
	}
}

// TestHashReaders drives the read loop with awkward readers: short reads,
// an error mid-stream, a stream that outgrows the cap.
func TestHashReaders(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789abcdef"), (3*defaultBufferSize+100)/16)
	want := sha256.Sum256(data)
	boom := errors.New("boom")
	loops := map[string]func(context.Context, io.Reader, hash.Hash, int64) (int64, error){
		"simple": hashSimple,
	}
	for name, loop := range loops {
		for i, tc := range []struct {
			r       func() io.Reader
			max     int64
			wantErr error
			kind    Kind
		}{
			{r: func() io.Reader { return bytes.NewReader(data) }},
			{r: func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
			{r: func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:5000])) }},
			{r: func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
			{r: func() io.Reader { return io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(boom)) }, wantErr: boom},
			{r: func() io.Reader { return bytes.NewReader(data) }, max: int64(len(data)) - 1, kind: KindTooLarge},
			{r: func() io.Reader { return bytes.NewReader(data) }, max: int64(len(data))},
		} {
			h := sha256.New()
			r := tc.r()
			n, err := loop(context.Background(), r, h, tc.max)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("%s Test %d: err = %v, want %v", name, i, err, tc.wantErr)
				}
			case tc.kind != "":
				var fe *FileError
				if !errors.As(err, &fe) || fe.Kind != tc.kind {
					t.Errorf("%s Test %d: err = %v, want kind %s", name, i, err, tc.kind)
				}
			default:
				if err != nil {
					t.Errorf("%s Test %d: err = %v", name, i, err)
					continue
				}
				exp := want
				if i == 2 {
					exp = sha256.Sum256(data[:5000])
				}
				if !bytes.Equal(h.Sum(nil), exp[:]) || (i != 2 && n != int64(len(data))) {
					t.Errorf("%s Test %d: digest %x (n %d), want %x", name, i, h.Sum(nil), n, exp)
				}
			}
		}
	}
}

// cancelReader cancels its context on the first read, then keeps giving data.
type cancelReader struct {
	cancel context.CancelFunc
	reads  int
}

func (c *cancelReader) Read(p []byte) (int, error) {
	c.reads++
	c.cancel()
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestHashCancel(t *testing.T) {
	t.Parallel()
	for name, loop := range map[string]func(context.Context, io.Reader, hash.Hash, int64) (int64, error){"simple": hashSimple} {
		ctx, cancel := context.WithCancel(context.Background())
		r := &cancelReader{cancel: cancel}
		// An endless reader: only the context can stop the loop.
		_, err := loop(ctx, r, sha256.New(), 0)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want context.Canceled", name, err)
		}
	}
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, []byte("abc"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := HashFiles(ctx, []Target{{Path: p}}, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("HashFiles with a cancelled context: err = %v", err)
	}
	if _, err := HashFiles(context.Background(), nil, 0); err == nil {
		t.Fatal("HashFiles accepted parallel 0")
	}
}

// TestHashLargeSparseConstantMemory hashes a 128 MiB sparse file and checks
// that memory allocated does not grow with the file. Not parallel: it
// counts the whole process's allocations, which no other test then makes.
func TestHashLargeSparseConstantMemory(t *testing.T) {
	const size = 128 << 20
	p := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(zeroReader{}, size)); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := HashFiles(context.Background(), []Target{{Path: p}}, 1)
	runtime.ReadMemStats(&after)
	if err != nil || got[0].Err != nil {
		t.Fatalf("hash: %v %v", err, got[0].Err)
	}
	if got[0].SHA256 != want || got[0].Size != size {
		t.Fatalf("got %s (%d bytes), want %s", got[0].SHA256, got[0].Size, want)
	}
	// The runtime allocates a little too; the bound only has to be far
	// below the file's size.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Fatalf("hashing %d bytes allocated %d bytes; memory must not grow with the file", size, alloc)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkHash measures HashFiles on one large file (the mapped path)
// and on many small files with one and two workers. Sizes are small so that
// `go test -bench` is quick; `make bench` runs the 1 GiB comparison with
// openssl.
func BenchmarkHash(b *testing.B) {
	dir := b.TempDir()
	mk := func(name string, n int) Target {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		p := filepath.Join(dir, name)
		writeFile(b, p, data)
		return Target{Name: name, Path: p}
	}
	big := []Target{mk("big", 32<<20)}
	var small []Target
	for i := range 256 {
		small = append(small, mk(fmt.Sprintf("small%d", i), 128<<10))
	}
	for _, bc := range []struct {
		name     string
		files    []Target
		parallel int
	}{
		{"one-32MiB", big, 1},
		{"256x128KiB-seq", small, 1},
		{"256x128KiB-par2", small, 2},
	} {
		var total int64
		for _, f := range bc.files {
			fi, _ := os.Stat(f.Path)
			total += fi.Size()
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				got, err := HashFiles(context.Background(), bc.files, bc.parallel)
				if err != nil || got[0].Err != nil {
					b.Fatal(err, got[0].Err)
				}
			}
		})
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }

// TestHashMappedChanges: a file cut shorter while it is hashed through a
// mapping gives an error, not a crash (the fault past its new end is
// recovered); one that grew after its size was read is hashed to its end,
// and its growth past max_file_bytes is refused.
func TestHashMappedChanges(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("mapped bytes, "), (2*mapWindow+3*defaultBufferSize)/14)
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, data)
	open := func() *os.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	// Grew: fstat said less than there is.
	h := sha256.New()
	n, err := hashFile(t.Context(), open(), int64(len(data))-mapWindow-100, h, 0)
	want := sha256.Sum256(data)
	if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("grown file: n %d err %v, want all %d bytes hashed", n, err, len(data))
	}
	_, err = hashFile(t.Context(), open(), int64(len(data))-100, sha256.New(), int64(len(data))-50)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Kind != KindTooLarge {
		t.Fatalf("grown past the cap: %v, want %s", err, KindTooLarge)
	}
	// Shrank: truncated after its size was read.
	f := open()
	if err := os.Truncate(p, defaultBufferSize); err != nil {
		t.Fatal(err)
	}
	if _, err := hashMapped(t.Context(), f, int64(len(data)), sha256.New()); !errors.Is(err, errShrank) {
		t.Fatalf("truncated while mapped: %v, want %v", err, errShrank)
	}
	// Cut by a few bytes, within the last page: no fault, zeros read.
	writeFile(t, p, data)
	f = open()
	if err := os.Truncate(p, int64(len(data))-50); err != nil {
		t.Fatal(err)
	}
	if _, err := hashFile(t.Context(), f, int64(len(data)), sha256.New(), 0); !errors.Is(err, errShrank) {
		t.Fatalf("cut within its last page: %v, want %v", err, errShrank)
	}
}
