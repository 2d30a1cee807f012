// Package hashset makes the hashing benchmark's workloads — one large file,
// or many files of mixed sizes — in a folder, and hashes them with each
// contender: the binaries plugin's own code in process, openssl dgst and
// sha256sum as subprocesses. Every contender's digests can be checked
// against the others', so they are known to have done the same work.
package hashset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/plugins/binaries"
)

// File is one file of a set.
type File struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Set is a group of files hashed together.
type Set struct {
	Name  string
	Files []File
}

// Bytes is the total size of the set.
func (s Set) Bytes() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// Paths lists the set's files.
func (s Set) Paths() []string {
	out := make([]string, len(s.Files))
	for i, f := range s.Files {
		out[i] = f.Path
	}
	return out
}

// MixedSizes returns n sizes, log-uniformly spread over three decades and
// scaled so that they add up to exactly total bytes: many small files and
// a few large ones, like the executables of a set of services. The same
// seed gives the same sizes.
func MixedSizes(n int, total int64, seed uint64) ([]int64, error) {
	if n < 1 || total < int64(n) {
		return nil, fmt.Errorf("mixed sizes: need n >= 1 and total >= n, got n=%d total=%d", n, total)
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	raw := make([]float64, n)
	sum := 0.0
	for i := range raw {
		raw[i] = math.Exp(r.Float64() * math.Log(1000)) // 1 .. 1000
		sum += raw[i]
	}
	sizes := make([]int64, n)
	var got int64
	for i, v := range raw {
		sizes[i] = max(1, int64(v/sum*float64(total)))
		got += sizes[i]
	}
	// Put the rounding difference on the largest file.
	big := 0
	for i, s := range sizes {
		if s > sizes[big] {
			big = i
		}
	}
	sizes[big] += total - got
	if sizes[big] < 1 {
		return nil, fmt.Errorf("mixed sizes: cannot spread %d bytes over %d files", total, n)
	}
	return sizes, nil
}

// FreeBytes returns the space available to an unprivileged writer in the
// file system holding dir.
func FreeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Create writes files of the given sizes into dir (which must exist) as
// <name>-00000.bin, ..., filled with pseudo-random bytes (different in
// every file), and flushes them to disk so that write-back does not run
// during the measurements.
func Create(dir, name string, sizes []int64) (Set, error) {
	set := Set{Name: name}
	block := make([]byte, 4<<20)
	r := rand.New(rand.NewChaCha8([32]byte{'a', 't', 't', 'e', 's', 't'}))
	for i := 0; i+8 <= len(block); i += 8 {
		binary.LittleEndian.PutUint64(block[i:], r.Uint64())
	}
	var counter uint64
	for i, size := range sizes {
		path := filepath.Join(dir, fmt.Sprintf("%s-%05d.bin", name, i))
		if err := writeFile(path, size, block, &counter); err != nil {
			return Set{}, err
		}
		set.Files = append(set.Files, File{Path: path, Size: size})
	}
	if err := syncFS(dir); err != nil {
		return Set{}, err
	}
	return set, nil
}

func writeFile(path string, size int64, block []byte, counter *uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for left := size; left > 0; {
		*counter++
		binary.LittleEndian.PutUint64(block, *counter) // no two chunks alike
		n := min(left, int64(len(block)))
		if _, err := w.Write(block[:n]); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

// Warm reads every file of the set once, so that the page cache holds it.
func Warm(ctx context.Context, s Set) error {
	buf := make([]byte, 1<<20)
	for _, f := range s.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		fh, err := os.Open(f.Path)
		if err != nil {
			return fmt.Errorf("warm %s: %w", f.Path, err)
		}
		_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{fh}, buf)
		fh.Close()
		if err != nil {
			return fmt.Errorf("warm %s: %w", f.Path, err)
		}
	}
	return nil
}

// Digests maps a file's path to its lowercase hex SHA-256.
type Digests map[string]string

// Contender hashes a set.
type Contender struct {
	Name string
	// Hash hashes every file of the set and returns the digests.
	Hash func(ctx context.Context, s Set) (Digests, error)
}

// Plugin is the binaries plugin's own hashing (binaries.HashFiles) with
// parallel files at once, in this process.
func Plugin(parallel int) Contender {
	return Contender{
		Name: fmt.Sprintf("binaries (%d worker%s)", parallel, plural(parallel)),
		Hash: func(ctx context.Context, s Set) (Digests, error) {
			targets := make([]binaries.Target, len(s.Files))
			for i, f := range s.Files {
				targets[i] = binaries.Target{Name: strconv.Itoa(i), Path: f.Path}
			}
			ds, err := binaries.HashFiles(ctx, targets, parallel)
			if err != nil {
				return nil, err
			}
			out := make(Digests, len(ds))
			for _, d := range ds {
				if d.Err != nil {
					return nil, fmt.Errorf("binaries: %w", d.Err)
				}
				out[d.Path] = d.SHA256
			}
			return out, nil
		},
	}
}

// OpenSSL is `openssl dgst -sha256` over the set's files: one process over
// all of them when parallel is 1, else parallel processes at a time, each
// over the next batch of files (what xargs -P parallel -n batch does, with
// each process's output kept apart).
func OpenSSL(parallel, batch int) Contender {
	name := "openssl dgst -sha256"
	if parallel > 1 {
		name = fmt.Sprintf("openssl dgst -sha256, %d processes at a time", parallel)
	}
	return Contender{Name: name, Hash: func(ctx context.Context, s Set) (Digests, error) {
		paths := s.Paths()
		if parallel <= 1 {
			out, err := run(ctx, "openssl", append([]string{"dgst", "-sha256"}, paths...)...)
			if err != nil {
				return nil, err
			}
			return ParseOpenSSL(out)
		}
		var batches [][]string
		for len(paths) > 0 {
			n := min(max(1, batch), len(paths))
			batches = append(batches, paths[:n])
			paths = paths[n:]
		}
		outs := make([][]byte, len(batches))
		errs := make([]error, len(batches))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= len(batches) {
						return
					}
					outs[i], errs[i] = run(ctx, "openssl", append([]string{"dgst", "-sha256"}, batches[i]...)...)
				}
			}()
		}
		wg.Wait()
		all := Digests{}
		for i := range batches {
			if errs[i] != nil {
				return nil, errs[i]
			}
			d, err := ParseOpenSSL(outs[i])
			if err != nil {
				return nil, err
			}
			maps.Copy(all, d)
		}
		return all, nil
	}}
}

// Sha256sum is coreutils' sha256sum over all the set's files in one process.
func Sha256sum() Contender {
	return Contender{Name: "sha256sum", Hash: func(ctx context.Context, s Set) (Digests, error) {
		out, err := run(ctx, "sha256sum", append([]string{"--"}, s.Paths()...)...)
		if err != nil {
			return nil, err
		}
		return ParseSha256sum(out)
	}}
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ParseOpenSSL reads the output of openssl dgst: lines
// "SHA2-256(<path>)= <hex>" (OpenSSL 3) or "SHA256(<path>)= <hex>".
func ParseOpenSSL(out []byte) (Digests, error) {
	d := Digests{}
	for i, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		open := strings.IndexByte(line, '(')
		cl := strings.LastIndex(line, ")= ")
		if open < 0 || cl < open {
			return nil, fmt.Errorf("openssl output line %d: %q is not ALG(path)= hex", i+1, clip(line))
		}
		sum := line[cl+3:]
		if !isHex64(sum) {
			return nil, fmt.Errorf("openssl output line %d: %q is not a SHA-256", i+1, clip(sum))
		}
		d[line[open+1:cl]] = sum
	}
	return d, nil
}

// ParseSha256sum reads the output of sha256sum: lines "<hex>  <path>" (or
// "<hex> *<path>" in binary mode).
func ParseSha256sum(out []byte) (Digests, error) {
	d := Digests{}
	for i, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, `\`) {
			return nil, fmt.Errorf("sha256sum output line %d: escaped file name not supported", i+1)
		}
		if len(line) < 67 || !isHex64(line[:64]) || line[64] != ' ' || (line[65] != ' ' && line[65] != '*') {
			return nil, fmt.Errorf("sha256sum output line %d: %q is not <hex>  <path>", i+1, clip(line))
		}
		d[line[66:]] = line[:64]
	}
	return d, nil
}

// Check compares got with want for every file of s.
func Check(s Set, want, got Digests) error {
	if len(got) != len(s.Files) {
		return fmt.Errorf("%d digests for %d files", len(got), len(s.Files))
	}
	var errs []error
	for _, f := range s.Files {
		if got[f.Path] != want[f.Path] {
			errs = append(errs, fmt.Errorf("%s: digest %q, want %q", f.Path, got[f.Path], want[f.Path]))
			if len(errs) == 3 {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
