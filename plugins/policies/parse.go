package policies

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
)

// This file holds the policy digest construction: pure, no I/O.
//
// policy_digest is SHA-256 over the concatenation, for each policy file in
// the configured order, of
//
//	uint64be(len(path)) || path || uint64be(len(content)) || content
//
// where path is the file's absolute path as configured (UTF-8 bytes, no
// terminator), content its bytes, and uint64be an 8-byte big-endian
// length. Every field is length-prefixed, so the encoding is unambiguous:
// reordering the files, renaming one, or moving bytes from one file to the
// next all change the digest.

// File is one policy file in memory.
type File struct {
	Path    string
	Content []byte
}

// DigestFiles returns the policy digest (lowercase hex) of files in order.
// It is the reference form of the construction; the check streams the same
// bytes through a PolicyDigest.
func DigestFiles(files []File) string {
	d := NewPolicyDigest()
	for _, f := range files {
		// Cannot fail: each file's announced size is its length.
		_ = d.BeginFile(f.Path, int64(len(f.Content)))
		_, _ = d.Write(f.Content)
	}
	sum, _ := d.Sum()
	return sum
}

// PolicyDigest computes the policy digest one file at a time, in constant
// memory. It holds its caller to the announced sizes: a file's content must
// be exactly the size given to BeginFile.
type PolicyDigest struct {
	h         hash.Hash
	remaining int64 // content bytes still owed for the current file
}

// NewPolicyDigest returns an empty digest.
func NewPolicyDigest() *PolicyDigest { return &PolicyDigest{h: sha256.New()} }

// ErrContentLength is returned when a file's content does not match the
// size announced for it.
var ErrContentLength = errors.New("content length does not match the announced size")

// BeginFile starts the next file: its path and content size. The previous
// file's content must be complete.
func (d *PolicyDigest) BeginFile(path string, size int64) error {
	if d.remaining != 0 {
		return fmt.Errorf("begin %s: previous file is %d bytes short: %w", path, d.remaining, ErrContentLength)
	}
	if size < 0 {
		return fmt.Errorf("begin %s: negative size %d", path, size)
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(path)))
	d.h.Write(n[:])
	d.h.Write([]byte(path))
	binary.BigEndian.PutUint64(n[:], uint64(size))
	d.h.Write(n[:])
	d.remaining = size
	return nil
}

// Write adds content bytes of the current file. Writing more than the
// announced size is refused (nothing of p is written).
func (d *PolicyDigest) Write(p []byte) (int, error) {
	if int64(len(p)) > d.remaining {
		return 0, fmt.Errorf("%d bytes written, %d announced bytes left: %w", len(p), d.remaining, ErrContentLength)
	}
	d.h.Write(p)
	d.remaining -= int64(len(p))
	return len(p), nil
}

// Sum returns the digest as lowercase hex. The last file's content must be
// complete.
func (d *PolicyDigest) Sum() (string, error) {
	if d.remaining != 0 {
		return "", fmt.Errorf("last file is %d bytes short: %w", d.remaining, ErrContentLength)
	}
	return hex.EncodeToString(d.h.Sum(nil)), nil
}
