package pluginhost

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// racyMargin is how old a file's ctime must be, when its hash is taken,
// for the host to remember the hash: a write in the same timestamp tick as
// the hash (the kernel's file clock is coarse, a jiffy or more) could leave
// every field of the identity unchanged while the bytes change.
const racyMargin = time.Second

// verified is the last digest the host computed of a plugin's file, and
// the identity the file had, through the open descriptor, before and after
// the hash. See hash for what it may be trusted for.
type verified struct {
	id  fileID
	sha string
	sum []byte
}

// Digests remembers the digests verify computed, by plugin path, each for
// the file identity it holds for (see hash). A Declarer and a Host that
// check the same files share one (Declarer.Digests, Options.Digests), so
// that a file the declare run hashed is not hashed again for its start.
//
// With a Declarer's CacheDir they are also kept across restarts
// (digest_cache.go).
type Digests struct {
	mu    sync.Mutex
	m     map[string]*verified
	dirty bool // m changed since it was read from or written to the cache file
}

// NewDigests returns an empty Digests.
func NewDigests() *Digests { return &Digests{m: map[string]*verified{}} }

func (d *Digests) get(path string) *verified {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[path]
}

func (d *Digests) put(path string, v *verified) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v == nil {
		if _, ok := d.m[path]; ok {
			delete(d.m, path)
			d.dirty = true
		}
		return
	}
	if old := d.m[path]; old == nil || old.id != v.id || old.sha != v.sha {
		d.dirty = true
	}
	d.m[path] = v
}

// rememberable reports whether a digest of the file with identity id may
// be remembered and reused while id stays the same: only when root owns
// it (see hash).
func rememberable(id fileID) bool { return id.uid == 0 }

// fileID identifies the content of a plugin file without reading it: any
// write, chmod, chown or rename over it changes one of these.
type fileID struct {
	real         string // path with symlinks resolved
	dev, ino     uint64
	mode, uid    uint32
	size         int64
	mtime, ctime syscall.Timespec
}

func idOf(real string, st *syscall.Stat_t) fileID {
	return fileID{real: real, dev: st.Dev, ino: st.Ino, mode: st.Mode, uid: st.Uid, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// binFile is a verified plugin binary, held open: the host executes this
// descriptor, not the path.
type binFile struct {
	f   *os.File
	id  fileID
	sha string
	sum []byte
}

func (b *binFile) close() {
	if b != nil && b.f != nil {
		_ = b.f.Close()
		b.f = nil
	}
}

// resolve returns the path of p's file with symlinks resolved. A symlink is
// allowed only when it resolves inside the plugin directory.
func (h *Host) resolve(p *plugin) (string, *fault) {
	li, err := os.Lstat(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", &fault{kind: FaultMissing, msg: "no executable " + p.path}
	}
	if err != nil {
		return "", &fault{kind: FaultMissing, msg: fmt.Sprintf("cannot stat %s: %v", p.path, err)}
	}
	if li.Mode()&fs.ModeSymlink == 0 {
		return p.path, nil
	}
	real, err := filepath.EvalSymlinks(p.path)
	if err != nil {
		return "", &fault{kind: FaultMissing, msg: fmt.Sprintf("symlink %s leads nowhere: %v", p.path, err)}
	}
	if !strings.HasPrefix(real, h.realDir+string(filepath.Separator)) {
		return "", &fault{kind: FaultUntrusted, msg: fmt.Sprintf("symlink %s leads out of the plugin directory %s, to %s; not started", p.path, h.realDir, real)}
	}
	return real, nil
}

// checkStat refuses what the host must not execute.
func (h *Host) checkStat(p *plugin, real string, st *syscall.Stat_t) *fault {
	what := p.path
	if real != p.path {
		what = fmt.Sprintf("%s (-> %s)", p.path, real)
	}
	perm := st.Mode & 0o7777
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return &fault{kind: FaultUntrusted, msg: fmt.Sprintf("%s is not a regular file (%s); not started", what, fileType(st.Mode))}
	case perm&0o022 != 0:
		return &fault{kind: FaultUntrusted, msg: fmt.Sprintf("%s is group- or world-writable (mode %04o); not started", what, perm)}
	case st.Uid != 0 && int(st.Uid) != h.euid:
		return &fault{kind: FaultUntrusted, msg: fmt.Sprintf("%s is owned by uid %d, neither root nor the daemon's user (uid %d); not started", what, st.Uid, h.euid)}
	case perm&0o111 == 0:
		return &fault{kind: FaultMissing, msg: fmt.Sprintf("%s is not executable (mode %04o)", what, perm)}
	}
	return nil
}

func fileType(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return "a directory"
	case syscall.S_IFIFO:
		return "a named pipe"
	case syscall.S_IFSOCK:
		return "a socket"
	case syscall.S_IFCHR:
		return "a character device"
	case syscall.S_IFBLK:
		return "a block device"
	case syscall.S_IFLNK:
		return "a symlink"
	}
	return fmt.Sprintf("type %#o", mode&syscall.S_IFMT)
}

// identify checks p's file by its metadata only, and returns its identity.
func (h *Host) identify(p *plugin) (fileID, *fault) {
	real, f := h.resolve(p)
	if f != nil {
		return fileID{}, f
	}
	var st syscall.Stat_t
	if err := syscall.Stat(real, &st); err != nil {
		return fileID{}, &fault{kind: FaultMissing, msg: fmt.Sprintf("cannot stat %s: %v", real, err)}
	}
	if f := h.checkStat(p, real, &st); f != nil {
		return fileID{}, f
	}
	return idOf(real, &st), nil
}

// verify checks p's file, opens it, checks the open file again (the
// descriptor is what will run), hashes it through the descriptor, unless
// its identity read from that descriptor is the one its remembered digest
// holds for (see hash), and compares the digest with the pin.
func (h *Host) verify(p *plugin) (*binFile, *fault) {
	id, f := h.identify(p)
	if f != nil {
		return nil, f
	}
	// O_NONBLOCK: a named pipe swapped in must not block the open.
	file, err := os.OpenFile(id.real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &fault{kind: FaultUntrusted, msg: fmt.Sprintf("%s became a symlink while it was being verified; not started", id.real)}
		}
		return nil, &fault{kind: FaultMissing, msg: fmt.Sprintf("cannot open %s: %v", id.real, err)}
	}
	bf := &binFile{f: file}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(file.Fd()), &st); err != nil {
		bf.close()
		return nil, &fault{kind: FaultMissing, msg: fmt.Sprintf("cannot stat %s: %v", id.real, err)}
	}
	if f := h.checkStat(p, id.real, &st); f != nil {
		bf.close()
		return nil, f
	}
	if st.Dev != id.dev || st.Ino != id.ino {
		bf.close()
		return nil, &fault{kind: FaultUntrusted, msg: fmt.Sprintf("%s was replaced while it was being verified; not started", id.real)}
	}
	bf.id = idOf(id.real, &st)
	if v := h.digests.get(p.path); v != nil && v.id == bf.id && rememberable(bf.id) {
		bf.sum, bf.sha = v.sum, v.sha // the digest of this very file, unchanged
	} else if f := h.hash(p, bf); f != nil {
		bf.close()
		return nil, f
	}
	if pin := p.spec.SHA256; pin != "" && subtle.ConstantTimeCompare([]byte(bf.sha), []byte(pin)) != 1 {
		bf.close()
		return nil, &fault{kind: FaultUntrusted, msg: fmt.Sprintf("%s has sha256 %s, not the pinned %s; not started", p.path, bf.sha, pin)}
	}
	return bf, nil
}

// hash computes bf's SHA-256 through its descriptor and remembers it for p
// when the file's identity (device, inode, size, mode, owner, mtime, ctime,
// read with fstat on the same descriptor) did not change while it was read
// and its ctime is older than the racy margin.
//
// The remembered digest stands for the file only while all of that stays
// equal: any write, truncate, chmod, chown, rename over or replacement
// changes the ctime (and usually more), and no unprivileged process can set
// a ctime; the plugin file's owner can set mtime but not ctime. Root can
// (by setting the system clock back, or by writing the block device under
// the file system); the cache assumes a root that does so is out of scope,
// as root can also replace the daemon, its policy and its pins. A daemon
// restart keeps them only through the cache file a Declarer with a
// CacheDir writes (digest_cache.go), which holds the same identity and is
// trusted no further.
//
// Only the digest of a file owned by root is remembered (rememberable): a
// process that can open a file for writing can also change it through a
// shared memory mapping, and a write to an already writable mapped page
// changes neither mtime nor ctime. Only root can write a root-owned
// plugin file (checkStat refuses group- and world-writable ones), so the
// shipped layout (plugins installed by root) is hashed once; a plugin file
// owned by the daemon's own user, as in a development checkout, is hashed
// at every start.
func (h *Host) hash(p *plugin, bf *binFile) *fault {
	h.hashes.Add(1)
	start := time.Now()
	sum := sha256.New()
	if _, err := io.Copy(sum, bf.f); err != nil {
		return &fault{kind: FaultMissing, msg: fmt.Sprintf("cannot read %s: %v", bf.id.real, err)}
	}
	bf.sum = sum.Sum(nil)
	bf.sha = hex.EncodeToString(bf.sum)
	h.digests.put(p.path, nil)
	var st syscall.Stat_t
	if err := syscall.Fstat(int(bf.f.Fd()), &st); err != nil || idOf(bf.id.real, &st) != bf.id {
		return nil // changed while it was read: hashed again next time
	}
	if ctime := time.Unix(st.Ctim.Unix()); ctime.Add(h.racyMargin).Before(start) && rememberable(bf.id) {
		h.digests.put(p.path, &verified{id: bf.id, sha: bf.sha, sum: bf.sum})
	}
	return nil
}
