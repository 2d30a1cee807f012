package pluginhost

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/secure-ai/runtime-attestor/internal/declare"
	"github.com/secure-ai/runtime-attestor/internal/wire"
)

// The declare cache: the declarations the Declarer learnt, kept in one
// file of a folder only the daemon uses so that a restart with the same
// executables and configurations runs no declare run. An entry is keyed by
// the exact executable SHA-256, configuration SHA-256 and declare.Protocol
// and holds what the executable printed, which is checked again, as a
// fresh declare run's output is, each time it is read. The file carries an
// HMAC-SHA256 of its entries under a key derived from a daemon secret
// (DeclarerOptions.CacheSecret): a file written by anyone not holding that
// secret is ignored, with a warning, and rewritten.
const (
	// DeclareCacheFile is the file's name in DeclarerOptions.CacheDir.
	DeclareCacheFile = "declarations.json"
	// MaxDeclareCache bounds the file; a larger one is ignored and the
	// Declarer never writes one.
	MaxDeclareCache = 4 << 20
	// maxCacheEntries bounds the entries written: the declarations used
	// since the Declarer started, the first ones first.
	maxCacheEntries = 64
	cacheFormat     = "runtime-attestor declare cache"
	cacheMACLabel   = "runtime-attestor declare cache v1"
)

// cacheFile is the file: Entries is a JSON array of cacheEntry, MAC the
// hex HMAC of its bytes exactly as they appear in the file.
type cacheFile struct {
	Format  string          `json:"format"`
	MAC     string          `json:"mac"`
	Entries json.RawMessage `json:"entries"`
}

type cacheEntry struct {
	// Name is the plugin's; an entry without one (written before names
	// were part of the key) is left out, and declared again.
	Name         string          `json:"name,omitempty"`
	SHA256       string          `json:"sha256"`
	ConfigSHA256 string          `json:"config_sha256"`
	Protocol     int             `json:"protocol"`
	Declaration  json.RawMessage `json:"declaration"`
}

// labelledMAC is the HMAC of entries under the key derived from secret
// for label (one label per cache file, so that no file's MAC passes for
// another's).
func labelledMAC(secret []byte, label string, entries []byte) []byte {
	k := hmac.New(sha256.New, secret)
	k.Write([]byte(label))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write(entries)
	return m.Sum(nil)
}

// decodeCache parses the file's bytes strictly (no unknown member, nothing
// after the object, a MAC that matches, well-formed keys) into the raw
// declarations by key; entries of another protocol are left out.
func decodeCache(raw, secret []byte) (map[declKey]json.RawMessage, error) {
	var f cacheFile
	if err := strictJSON(raw, &f); err != nil {
		return nil, err
	}
	if f.Format != cacheFormat {
		return nil, fmt.Errorf("format %q, not %q", clip(f.Format), cacheFormat)
	}
	mac, err := hex.DecodeString(f.MAC)
	if err != nil || !hmac.Equal(mac, labelledMAC(secret, cacheMACLabel, f.Entries)) {
		return nil, errors.New("its MAC does not match: written by someone without the daemon's key, or with another key")
	}
	var entries []cacheEntry
	if err := strictJSON(f.Entries, &entries); err != nil {
		return nil, err
	}
	if len(entries) > maxCacheEntries {
		return nil, fmt.Errorf("%d entries, over the limit of %d", len(entries), maxCacheEntries)
	}
	out := map[declKey]json.RawMessage{}
	for i, e := range entries {
		if !isDigest(e.SHA256) || !isDigest(e.ConfigSHA256) {
			return nil, fmt.Errorf("entry %d: a digest is not 64 lowercase hex digits", i)
		}
		if e.Protocol == declare.Protocol && wire.ValidName(e.Name) {
			out[declKey{name: e.Name, sha: e.SHA256, config: e.ConfigSHA256}] = e.Declaration
		}
	}
	return out, nil
}

// strictJSON decodes exactly one JSON value of v's shape from raw.
func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not the expected JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more after the JSON object")
	}
	return nil
}

func isDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// encodeCache is the file holding entries, MACed under secret.
func encodeCache(entries []cacheEntry, secret []byte) ([]byte, error) {
	body, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(cacheFile{Format: cacheFormat, MAC: hex.EncodeToString(labelledMAC(secret, cacheMACLabel, body)), Entries: body})
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// privateDir checks that dir is a folder (not a symbolic link) owned by
// euid that nobody else may enter.
func privateDir(dir string, euid int) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("%s is not a folder (%s)", dir, st.Mode().Type())
	case sys == nil || int(sys.Uid) != euid:
		return fmt.Errorf("%s is not owned by the daemon's user (uid %d)", dir, euid)
	case st.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is mode %#o: only the daemon's user may enter it (chmod 0700 %s)", dir, st.Mode().Perm(), dir)
	}
	return nil
}

// readCache reads the cache file name of dir: a regular file (no link
// followed) owned by euid, mode 0600 or narrower, at most MaxDeclareCache
// bytes.
func readCache(dir, name string, euid int) ([]byte, error) {
	if err := privateDir(dir, euid); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	case sys == nil || int(sys.Uid) != euid:
		return nil, fmt.Errorf("%s is not owned by the daemon's user (uid %d)", path, euid)
	case st.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%s is mode %#o, not 0600", path, st.Mode().Perm())
	case st.Size() > MaxDeclareCache:
		return nil, fmt.Errorf("%s holds %d bytes, over the %d-byte limit", path, st.Size(), MaxDeclareCache)
	}
	raw, err := io.ReadAll(io.LimitReader(f, MaxDeclareCache+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxDeclareCache {
		return nil, fmt.Errorf("%s is over the %d-byte limit", path, MaxDeclareCache)
	}
	return raw, nil
}

// writeCache replaces the cache file name of dir with raw atomically: a
// temporary file (0600) in dir, written, synced and renamed over it, then
// the folder synced. dir is made 0700 when missing.
func writeCache(dir, name string, euid int, raw []byte) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := privateDir(dir, euid); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	return df.Sync()
}

// recall is the declaration of key from the cache file, checked as a
// declare run's output is; ok is false when the file has none (or one
// that fails the check, which is dropped and the file rewritten).
func (d *Declarer) recall(p *plugin, bf *binFile, key declKey) (declResult, bool) {
	if !d.loaded {
		d.load()
	}
	raw, ok := d.persisted[key]
	if !ok {
		return declResult{}, false
	}
	r := d.judge(p, bf, raw)
	if r.err != nil {
		d.log.Warn("a remembered declaration is refused; the plugin declares again", "plugin", p.name, "sha256", bf.sha, "error", r.err.Msg)
		delete(d.persisted, key)
		d.dirty = true
		return declResult{}, false
	}
	d.cache[key] = r
	d.log.Debug("declaration recalled", "plugin", p.name, "sha256", bf.sha)
	return r, true
}

// load reads the cache file once; a file that is not there is no
// declaration, one that is unusable a warning and a rewrite at Save.
func (d *Declarer) load() {
	d.loaded = true
	if d.opts.CacheDir == "" || len(d.opts.CacheSecret) == 0 {
		return
	}
	d.loadDigests()
	raw, err := readCache(d.opts.CacheDir, DeclareCacheFile, os.Geteuid())
	if errors.Is(err, os.ErrNotExist) {
		d.dirty = true
		return
	}
	if err == nil {
		d.persisted, err = decodeCache(raw, d.opts.CacheSecret)
	}
	if err != nil {
		d.log.Warn("declare cache ignored: every plugin declares again and the file is rewritten",
			"folder", d.opts.CacheDir, "error", err)
		d.dirty = true
	}
}

// use notes that key's declaration was asked for.
func (d *Declarer) use(key declKey) {
	for _, k := range d.used {
		if k == key {
			return
		}
	}
	d.used = append(d.used, key)
}

// Save writes the declarations asked for since the Declarer started to
// its cache file, when the file lacks one of them or was unusable;
// nothing without a CacheDir. Entries past maxCacheEntries, or that would
// take the file past MaxDeclareCache, are left out.
//
// It also writes the plugin files' verified digests (digest_cache.go) when
// they changed since they were read.
func (d *Declarer) Save() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.opts.CacheDir == "" || len(d.opts.CacheSecret) == 0 {
		return nil
	}
	return errors.Join(d.saveDigests(), d.saveDeclarations())
}

// saveDeclarations is Save's part for the declarations.
func (d *Declarer) saveDeclarations() error {
	if !d.dirty {
		return nil
	}
	var entries []cacheEntry
	size := 256
	for _, k := range d.used {
		r := d.cache[k]
		if r.err != nil || len(entries) == maxCacheEntries || size+len(r.raw)+256 > MaxDeclareCache {
			continue
		}
		var c bytes.Buffer
		if err := json.Compact(&c, r.raw); err != nil {
			continue
		}
		size += c.Len() + 256
		entries = append(entries, cacheEntry{Name: k.name, SHA256: k.sha, ConfigSHA256: k.config, Protocol: declare.Protocol, Declaration: c.Bytes()})
	}
	raw, err := encodeCache(entries, d.opts.CacheSecret)
	if err != nil {
		return fmt.Errorf("encode the declare cache: %w", err)
	}
	if err := writeCache(d.opts.CacheDir, DeclareCacheFile, os.Geteuid(), raw); err != nil {
		return fmt.Errorf("write the declare cache in %s: %w", d.opts.CacheDir, err)
	}
	d.dirty = false
	return nil
}
