package ostree

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// fs-verity parameters composefs uses: SHA-256, 4096-byte blocks, no salt.
const (
	verityBlockSize    = 4096
	verityHashSHA256   = 1
	verityLogBlockSize = 12
)

// FSVerityDigest computes the fs-verity file digest of r's content, as
// `fsverity digest` prints it (without its "sha256:" prefix) and as the
// kernel reports it for a verity-enabled file: SHA-256 over the
// fsverity_descriptor (version 1, SHA-256, 4096-byte blocks, no salt, the
// data size and the Merkle tree's root hash). composefs names an image by
// this digest, which is what the composefs= kernel argument carries.
func FSVerityDigest(r io.Reader, limit int64) (string, error) {
	level, size, err := hashDataBlocks(r, limit)
	if err != nil {
		return "", err
	}
	var root [sha256.Size]byte
	switch {
	case size == 0:
		// An empty file's root hash is all zeros.
	case len(level) == sha256.Size:
		copy(root[:], level)
	default:
		for len(level) > sha256.Size {
			level = hashLevel(level)
		}
		copy(root[:], level)
	}
	var desc [256]byte
	desc[0] = 1 // version
	desc[1] = verityHashSHA256
	desc[2] = verityLogBlockSize
	// desc[3] salt size 0, desc[4:8] signature size 0.
	binary.LittleEndian.PutUint64(desc[8:16], uint64(size))
	copy(desc[16:], root[:])
	sum := sha256.Sum256(desc[:])
	return hex.EncodeToString(sum[:]), nil
}

// hashDataBlocks hashes every (zero-padded) data block of r, returning the
// concatenated hashes and the data size.
func hashDataBlocks(r io.Reader, limit int64) ([]byte, int64, error) {
	var hashes []byte
	var size int64
	block := make([]byte, verityBlockSize)
	for {
		n, err := io.ReadFull(r, block)
		if n > 0 {
			size += int64(n)
			if size > limit {
				return nil, 0, fmt.Errorf("larger than %d bytes", limit)
			}
			clear(block[n:])
			s := sha256.Sum256(block)
			hashes = append(hashes, s[:]...)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return hashes, size, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read: %w", err)
		}
	}
}

// hashLevel hashes one Merkle tree level: its hashes packed into
// zero-padded blocks, each block hashed.
func hashLevel(level []byte) []byte {
	var next []byte
	block := make([]byte, verityBlockSize)
	for off := 0; off < len(level); off += verityBlockSize {
		n := copy(block, level[off:])
		clear(block[n:])
		s := sha256.Sum256(block)
		next = append(next, s[:]...)
	}
	return next
}
