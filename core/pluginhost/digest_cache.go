package pluginhost

import (
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// The digest cache: the verified digests of plugin files (Digests), kept
// beside the declare cache (DigestCacheFile in DeclarerOptions.CacheDir,
// the same private folder, format and MAC scheme under a label of its own)
// so that a restart does not read every plugin executable again. An entry
// holds a plugin path, the file identity its digest was taken for (device,
// inode, mode, owner, size, mtime and ctime, nanoseconds included) and the
// digest. It is used exactly as an in-memory digest is: only when the
// identity fstat reads from the descriptor about to be executed is the
// same in every field (Host.verify); any difference hashes the file again,
// pinned or not. What an entry asserts is therefore what the in-memory
// cache asserts (Host.hash): no unprivileged process can set a ctime, and
// a root that sets the clock back or edits the block device is out of
// scope, as it can replace the daemon and its policy too.
const (
	// DigestCacheFile is the file's name in DeclarerOptions.CacheDir.
	DigestCacheFile = "digests.json"
	// maxDigestEntries bounds the entries read and written.
	maxDigestEntries = 256
	digestFormat     = "runtime-attestor digest cache"
	digestMACLabel   = "runtime-attestor digest cache v1"
)

// digestEntry is one remembered digest; times are [seconds, nanoseconds].
type digestEntry struct {
	Path   string   `json:"path"`
	Real   string   `json:"real"`
	Dev    uint64   `json:"dev"`
	Ino    uint64   `json:"ino"`
	Mode   uint32   `json:"mode"`
	UID    uint32   `json:"uid"`
	Size   int64    `json:"size"`
	Mtime  [2]int64 `json:"mtime"`
	Ctime  [2]int64 `json:"ctime"`
	SHA256 string   `json:"sha256"`
}

func entryOf(path string, v *verified) digestEntry {
	return digestEntry{Path: path, Real: v.id.real, Dev: v.id.dev, Ino: v.id.ino, Mode: v.id.mode, UID: v.id.uid, Size: v.id.size,
		Mtime: [2]int64{v.id.mtime.Sec, v.id.mtime.Nsec}, Ctime: [2]int64{v.id.ctime.Sec, v.id.ctime.Nsec}, SHA256: v.sha}
}

// verified is e as a remembered digest, or an error naming what is wrong.
func (e digestEntry) verified() (*verified, error) {
	switch {
	case !filepath.IsAbs(e.Path) || filepath.Clean(e.Path) != e.Path:
		return nil, errors.New("a path is not absolute and clean")
	case !filepath.IsAbs(e.Real) || filepath.Clean(e.Real) != e.Real:
		return nil, errors.New("a resolved path is not absolute and clean")
	case !isDigest(e.SHA256):
		return nil, errors.New("a digest is not 64 lowercase hex digits")
	case e.Size < 0 || !validTime(e.Mtime) || !validTime(e.Ctime):
		return nil, errors.New("a size or time is out of range")
	}
	sum, _ := hex.DecodeString(e.SHA256)
	return &verified{
		id: fileID{real: e.Real, dev: e.Dev, ino: e.Ino, mode: e.Mode, uid: e.UID, size: e.Size,
			mtime: syscall.Timespec{Sec: e.Mtime[0], Nsec: e.Mtime[1]}, ctime: syscall.Timespec{Sec: e.Ctime[0], Nsec: e.Ctime[1]}},
		sha: e.SHA256, sum: sum,
	}, nil
}

func validTime(t [2]int64) bool { return t[0] >= 0 && t[1] >= 0 && t[1] < 1e9 }

// decodeDigests parses the file's bytes strictly (as decodeCache does)
// into remembered digests by plugin path.
func decodeDigests(raw, secret []byte) (map[string]*verified, error) {
	var f cacheFile
	if err := strictJSON(raw, &f); err != nil {
		return nil, err
	}
	if f.Format != digestFormat {
		return nil, fmt.Errorf("format %q, not %q", clip(f.Format), digestFormat)
	}
	mac, err := hex.DecodeString(f.MAC)
	if err != nil || !hmac.Equal(mac, labelledMAC(secret, digestMACLabel, f.Entries)) {
		return nil, errors.New("its MAC does not match: written by someone without the daemon's key, or with another key")
	}
	var entries []digestEntry
	if err := strictJSON(f.Entries, &entries); err != nil {
		return nil, err
	}
	if len(entries) > maxDigestEntries {
		return nil, fmt.Errorf("%d entries, over the limit of %d", len(entries), maxDigestEntries)
	}
	out := make(map[string]*verified, len(entries))
	for i, e := range entries {
		v, err := e.verified()
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out[e.Path] = v
	}
	return out, nil
}

// encodeDigests is the file holding m (at most maxDigestEntries, by
// path), MACed under secret.
func encodeDigests(m map[string]*verified, secret []byte) ([]byte, error) {
	paths := make([]string, 0, len(m))
	for p := range m {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	entries := make([]digestEntry, 0, min(len(paths), maxDigestEntries))
	for _, p := range paths[:min(len(paths), maxDigestEntries)] {
		entries = append(entries, entryOf(p, m[p]))
	}
	body, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(cacheFile{Format: digestFormat, MAC: hex.EncodeToString(labelledMAC(secret, digestMACLabel, body)), Entries: body})
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// loadDigests reads the digest cache file into the Declarer's Digests,
// leaving alone any digest they already hold; a missing file is no digest,
// an unusable one a warning and a rewrite at Save.
func (d *Declarer) loadDigests() {
	raw, err := readCache(d.opts.CacheDir, DigestCacheFile, os.Geteuid())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var m map[string]*verified
	if err == nil {
		m, err = decodeDigests(raw, d.opts.CacheSecret)
	}
	if err != nil {
		d.log.Warn("digest cache ignored: every plugin file is hashed again and the file is rewritten",
			"folder", d.opts.CacheDir, "error", err)
		d.digests.mu.Lock()
		d.digests.dirty = true
		d.digests.mu.Unlock()
		return
	}
	d.digests.mu.Lock()
	defer d.digests.mu.Unlock()
	for p, v := range m {
		if _, ok := d.digests.m[p]; !ok {
			d.digests.m[p] = v
		}
	}
}

// saveDigests is Save's part for the digests: the file is written when
// they changed since it was read or last written.
func (d *Declarer) saveDigests() error {
	d.digests.mu.Lock()
	defer d.digests.mu.Unlock()
	if !d.digests.dirty {
		return nil
	}
	raw, err := encodeDigests(d.digests.m, d.opts.CacheSecret)
	if err != nil {
		return fmt.Errorf("encode the digest cache: %w", err)
	}
	if err := writeCache(d.opts.CacheDir, DigestCacheFile, os.Geteuid(), raw); err != nil {
		return fmt.Errorf("write the digest cache in %s: %w", d.opts.CacheDir, err)
	}
	d.digests.dirty = false
	return nil
}
